"""The doors of the API: rate limits per client, the CORS policy, and security headers.

`init_app(app, settings)` (one of create_app's EXTENSIONS) installs:

- **Rate limits** (Flask-Limiter), counted per client address: `settings.rate_limit_reads` for
  every GET and HEAD except /healthz and /readyz, `settings.rate_limit_writes` for POST /movies
  ("" disables either one). Over a limit the answer is 429 problem+json with `Retry-After` in
  seconds. `memory://` storage counts in each worker process (N workers let a client make N
  times the limit); a shared store such as `redis://host:6379` makes the count global. If the
  store fails, the request is served and the failure logged: limits must not take the API down.
- **Client address**: `X-Forwarded-For` is believed only when `settings.trusted_proxies` says
  how many proxies in front of the app append to it (werkzeug's ProxyFix); otherwise the
  address is the TCP peer, so a client cannot pick its own rate-limit bucket.
- **CORS**: `*` in `settings.cors_origins` lets any site read (GET/HEAD, no credentials); an
  origin listed by name may also send `Authorization` and `Content-Type`, i.e. POST /movies.
  Preflight OPTIONS requests are answered here (204). No origins: no CORS headers at all.
- **Body cap without Content-Length**: a chunked body is read up to MAX_CONTENT_LENGTH + 1
  bytes; over the cap it is a 413 like any other oversize body (werkzeug alone would stop
  reading at the cap and hand the view a silently truncated body).
- **Headers on every response**: `X-Content-Type-Options: nosniff`, `Referrer-Policy:
  no-referrer`, a deny-all `Content-Security-Policy` outside /docs (Swagger UI runs inline
  script), and `Cache-Control: no-store` on errors unless a view chose otherwise. Successful
  responses keep whatever caching headers the views set.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable

from flask import Flask, Response, current_app, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits.errors import ConfigurationError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from movies.config import ConfigError, Settings
from movies.errors import problem_response

UNLIMITED_ENDPOINTS = frozenset({"movies.healthz", "movies.readyz"})
READ_METHODS = ("GET", "HEAD")
WRITE_METHODS = ("POST",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DOCS_PREFIX = "/docs"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
EXPOSED_HEADERS = "ETag, Link, Location, Retry-After, X-Request-ID"
READ_REQUEST_HEADERS = "If-None-Match, X-Request-ID"
WRITE_REQUEST_HEADERS = "Authorization, Content-Type, If-None-Match, X-Request-ID"
PREFLIGHT_MAX_AGE_S = "600"


def init_app(app: Flask, settings: Settings) -> None:
    """Install the client address fix, CORS, rate limits and security headers on `app`.

    :raise ConfigError: if the rate-limit storage URI cannot be used.
    """
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    if settings.cors_origins:
        # Before the rate limiter's hook: a preflight is answered without counting.
        app.before_request(_answer_preflight(settings.cors_origins))
    _limit_rates(app, settings)
    app.before_request(buffer_unsized_body)
    app.after_request(_add_headers(settings.cors_origins))


def client_address() -> str:
    """The rate-limit key: the client's address (the trusted proxies' view of it, if any)."""
    return request.remote_addr or "unknown"


def buffer_unsized_body() -> None:
    """Read a body sent without Content-Length (chunked) into memory, up to the body cap.

    :raise RequestEntityTooLarge: (413) if the body is longer than MAX_CONTENT_LENGTH.
    """
    environ = request.environ
    if "HTTP_TRANSFER_ENCODING" not in environ or request.content_length is not None:
        return
    if not environ.get("wsgi.input_terminated"):
        return  # werkzeug reads no body at all then: nothing to cap
    cap = current_app.config["MAX_CONTENT_LENGTH"]
    stream, chunks, size = environ["wsgi.input"], [], 0
    while size <= cap:
        chunk = stream.read(cap + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > cap:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(b"".join(chunks))


def _limit_rates(app: Flask, settings: Settings) -> None:
    limits = []
    if settings.rate_limit_reads:
        limits.append(
            ApplicationLimit(settings.rate_limit_reads, scope="reads", methods=READ_METHODS)
        )
    if settings.rate_limit_writes:
        limits.append(
            ApplicationLimit(settings.rate_limit_writes, scope="writes", methods=WRITE_METHODS)
        )
    if not limits:
        return
    try:
        limiter = Limiter(
            client_address,
            application_limits=limits,
            storage_uri=settings.rate_limit_storage_uri,
            strategy="fixed-window",
            headers_enabled=False,
            swallow_errors=True,
            key_prefix="movies",
        )
        limiter.init_app(app)
    except ConfigurationError as exc:
        raise ConfigError(f"MOVIES_RATE_LIMIT_STORAGE_URI cannot be used: {exc}") from None
    limiter.request_filter(lambda: request.endpoint in UNLIMITED_ENDPOINTS)

    def too_many_requests(exc: RateLimitExceeded) -> Response:
        current, window_s = limiter.current_limit, exc.limit.limit.get_expiry()
        # reset_at is whole seconds, rounded up: never promise more than one window.
        left_s = math.ceil(current.reset_at - time.time()) if current else window_s
        retry_after = min(max(1, left_s), window_s)
        return problem_response(
            429,
            f"too many requests: at most {exc.limit.limit} per client; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    app.register_error_handler(RateLimitExceeded, too_many_requests)


def _answer_preflight(origins: tuple[str, ...]) -> Callable[[], Response | None]:
    any_reader = "*" in origins
    writers = frozenset(origins) - {"*"}

    def answer_preflight() -> Response | None:
        """204 to a CORS preflight on a known route; other OPTIONS requests go on as usual."""
        if request.method != "OPTIONS" or request.url_rule is None:
            return None
        origin = request.environ.get("HTTP_ORIGIN")
        if not origin or "HTTP_ACCESS_CONTROL_REQUEST_METHOD" not in request.environ:
            return None
        response = Response(status=204)
        # Each method of a path may be its own rule (GET /movies, POST /movies): ask the map.
        adapter = current_app.url_map.bind_to_environ(request.environ)
        route_methods = set(adapter.allowed_methods())
        if origin in writers:
            methods, request_headers = route_methods, WRITE_REQUEST_HEADERS
        elif any_reader:
            methods, request_headers = route_methods & SAFE_METHODS, READ_REQUEST_HEADERS
        else:
            return response  # no Access-Control-* headers: the browser refuses
        response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
        response.headers["Access-Control-Allow-Headers"] = request_headers
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE_S
        return response

    return answer_preflight


def _add_headers(origins: tuple[str, ...]) -> Callable[[Response], Response]:
    any_reader = "*" in origins
    writers = frozenset(origins) - {"*"}

    def add_headers(response: Response) -> Response:
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        if not request.path.startswith(DOCS_PREFIX):
            headers["Content-Security-Policy"] = API_CSP
        if response.status_code >= 400 and "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        if writers:
            response.vary.add("Origin")  # the allowed origin is echoed per request
        origin = request.environ.get("HTTP_ORIGIN")
        if origin and (any_reader or origin in writers):
            headers["Access-Control-Allow-Origin"] = origin if origin in writers else "*"
            headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response

    return add_headers
