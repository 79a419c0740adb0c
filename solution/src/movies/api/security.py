"""The doors of the API: rate limits per client, the CORS policy, and security headers.

`init_app(app, settings)` (one of create_app's EXTENSIONS) installs the preflights and the body
cap, `add_door_headers` the rate limits and the headers (WSGI layers, so that answers given
before Flask are counted and get the headers too), and `trust_proxies` the client address fix:

- **Rate limits**, counted per client address by `limits` (Flask-Limiter's engine):
  `settings.rate_limit_reads` for every GET and HEAD except /healthz and /readyz (unknown
  routes included), `settings.rate_limit_writes` for POST /movies
  ("" disables either one). Over a limit the answer is 429 problem+json with `Retry-After` in
  seconds. `memory://` storage counts in each worker process (N workers let a client make N
  times the limit); a shared store such as `redis://host:6379` makes the count global. If the
  store fails, the request is served and the failure logged: limits must not take the API down.
- **Client address**: `X-Forwarded-For` is believed only when `settings.trusted_proxies` says
  how many proxies in front of the app append to it (werkzeug's ProxyFix); otherwise the
  address is the TCP peer, so a client cannot pick its own rate-limit bucket.
- **CORS**: `*` in `settings.cors_origins` lets any site read (GET/HEAD, no credentials); an
  origin listed by name may also send `Authorization` and `Content-Type`, i.e. POST /movies.
  Preflight OPTIONS requests are answered here (204). Every response then says `Vary: Origin`,
  since its CORS headers depend on the request's Origin (a shared cache keeps one copy per
  origin). No origins: no CORS headers at all, and no `Vary: Origin`.
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
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, current_app, request
from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from movies.config import ConfigError, Settings
from movies.errors import ProblemError, problem_response

log = logging.getLogger(__name__)

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})
READ_METHODS = ("GET", "HEAD")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DOCS_PREFIX = "/docs"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
EXPOSED_HEADERS = "ETag, Link, Location, Retry-After, X-Request-ID"
READ_REQUEST_HEADERS = "If-None-Match, X-Request-ID"
WRITE_REQUEST_HEADERS = "Authorization, Content-Type, If-None-Match, X-Request-ID"
PREFLIGHT_MAX_AGE_S = "600"
MEMORY_URI = "memory://"


class WorkerMemoryStorage(MemoryStorage):
    """`memory://` counters without the expiry thread of `limits`' MemoryStorage.

    That storage starts a new timer thread after every increment that finds the last one done:
    about a hundred thread starts a second under load, which tripled the limiter's cost per
    request. Here an expired counter is dropped when next read (as MemoryStorage does too), and
    every `SWEEP_EVERY` increments one pass drops all expired ones, so memory stays bounded by
    the clients of the current window. Fixed-window counting only (incr/get/get_expiry).
    """

    STORAGE_SCHEME = ["movies-memory"]
    SWEEP_EVERY = 10_000

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.timer.cancel()
        self.increments = 0

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self.increments += 1
        if self.increments % self.SWEEP_EVERY == 0:
            self.sweep()
        self.get(key)
        with self.locks[key]:
            self.storage[key] += amount
            if self.storage[key] == amount:
                self.expirations[key] = time.time() + expiry
        return self.storage.get(key, 0)

    def sweep(self) -> None:
        """Drop every expired counter."""
        now = time.time()
        for key in [key for key, at in self.expirations.items() if at <= now]:
            self.get(key)


def init_app(app: Flask, settings: Settings) -> None:
    """Install CORS preflights and the body cap on `app` (one before_request hook), and keep the
    rate limits for `add_door_headers`.

    :raise ConfigError: if the rate-limit storage URI cannot be used.
    """
    # A preflight is answered before the body is read; rate limits count before Flask.
    checks: list[Callable[[], Response | None]] = []
    if settings.cors_origins:
        checks.append(_answer_preflight(settings.cors_origins))
    if settings.rate_limit_reads or settings.rate_limit_writes:
        app.extensions["movies.rate_limits"] = RateLimits(settings)
    checks.append(buffer_unsized_body)

    @app.before_request
    def guard_the_doors() -> Response | None:
        for check in checks:
            answer = check()
            if answer is not None:
                return answer
        return None


def add_door_headers(app: Flask, settings: Settings) -> None:
    """Count every request against its client's rate limit, then give every response of `app`
    the door headers: wrap `app.wsgi_app` in `RateLimited` and `DoorHeaders`.

    Call it after adding the WSGI layers whose answers need them.
    """
    limits = app.extensions.get("movies.rate_limits")
    if limits is not None:
        app.wsgi_app = RateLimited(app.wsgi_app, limits)  # type: ignore[method-assign]
    app.wsgi_app = DoorHeaders(app.wsgi_app, settings.cors_origins)  # type: ignore[method-assign]


def trust_proxies(app: Flask, settings: Settings) -> None:
    """Take the client address from X-Forwarded-For if `settings.trusted_proxies` says so.

    Installed last, around every other WSGI layer, so that each of them sees the client's
    address.
    """
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


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


class RateLimits:
    """Fixed-window request counters per client address: one budget for reads, one for writes.

    `limits` (the engine under Flask-Limiter) does the counting, so every storage it knows
    works. One WSGI layer (`RateLimited`) does the whole check: Flask-Limiter's own per-request
    machinery (resolving decorated, default, blueprint and application limits and exemptions
    for every request) cost a read several times more than the count itself.
    """

    def __init__(self, settings: Settings) -> None:
        """:raise ConfigError: if the storage URI cannot be used."""
        try:
            self.storage = storage_from_string(_storage_uri(settings.rate_limit_storage_uri))
        except ConfigurationError as exc:
            raise ConfigError(f"MOVIES_RATE_LIMIT_STORAGE_URI cannot be used: {exc}") from None
        self.counter = FixedWindowRateLimiter(self.storage)
        self.by_method: dict[str, tuple[str, list[RateLimitItem]]] = {}
        if settings.rate_limit_reads:
            reads = parse_many(settings.rate_limit_reads)
            self.by_method.update((method, ("reads", reads)) for method in READ_METHODS)
        if settings.rate_limit_writes:
            self.by_method["POST"] = ("writes", parse_many(settings.rate_limit_writes))

    def count(self, method: str, client: str | None) -> ProblemError | None:
        """Count a request; the 429 to answer if it is over its client's budget, else None."""
        budget = self.by_method.get(method)
        if budget is None:
            return None
        scope, items = budget
        client = client or "unknown"
        try:
            for item in items:
                if not self.counter.hit(item, "movies", scope, client):
                    return self._exceeded(item, scope, client)
        except Exception:
            # A rate-limit store that fails must not take the API down with it.
            log.exception("rate-limit storage failed; request served without counting")
        return None

    def _exceeded(self, item: RateLimitItem, scope: str, client: str) -> ProblemError:
        reset_at, _ = self.counter.get_window_stats(item, "movies", scope, client)
        # reset_at is in whole seconds, rounded up: never promise more than one window.
        retry_after = min(max(1, math.ceil(reset_at - time.time())), item.get_expiry())
        return ProblemError(
            f"too many requests: at most {item} per client; retry after {retry_after} s",
            status=429,
            headers={"Retry-After": str(retry_after)},
        )


def _storage_uri(uri: str) -> str:
    if uri.rstrip("/") == MEMORY_URI.rstrip("/"):
        return WorkerMemoryStorage.STORAGE_SCHEME[0] + "://"
    return uri


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


class RateLimited:
    """The WSGI layer that counts every request (but the health probes') against its client's
    budget and answers 429 problem+json with Retry-After when the budget is used up."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], limits: RateLimits) -> None:
        self.wsgi_app = wsgi_app
        self.limits = limits

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in UNLIMITED_PATHS:
            refused = self.limits.count(environ["REQUEST_METHOD"], environ.get("REMOTE_ADDR"))
            if refused is not None:
                answer = problem_response(refused.status, refused.detail, headers=refused.headers)
                return answer(environ, start_response)
        return self.wsgi_app(environ, start_response)


class DoorHeaders:
    """The WSGI layer of `add_door_headers`: security headers, CORS for the configured origins,
    and `Cache-Control: no-store` on errors that chose no caching (errors are not to be cached)."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], origins: tuple[str, ...]) -> None:
        self.wsgi_app = wsgi_app
        self.any_reader = "*" in origins
        self.writers = frozenset(origins) - {"*"}

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        door_headers = self.for_response(environ.get("PATH_INFO", ""), environ.get("HTTP_ORIGIN"))

        def start_with_doors(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            headers.extend(door_headers)
            if status[0] in "45" and not any(n.lower() == "cache-control" for n, _ in headers):
                headers.append(("Cache-Control", "no-store"))
            if self.any_reader or self.writers:
                # Whether and what Access-Control-Allow-Origin says depends on the request's
                # Origin: a shared cache must not give one origin's answer to another.
                _vary_on_origin(headers)
            return start_response(status, headers, *exc_info)

        return self.wsgi_app(environ, start_with_doors)

    def for_response(self, path: str, origin: str | None) -> list[tuple[str, str]]:
        """The headers for a response to `path` from a page of `origin`."""
        headers = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]
        if not path.startswith(DOCS_PREFIX):
            headers.append(("Content-Security-Policy", API_CSP))
        if origin and (self.any_reader or origin in self.writers):
            allowed = origin if origin in self.writers else "*"
            headers.append(("Access-Control-Allow-Origin", allowed))
            headers.append(("Access-Control-Expose-Headers", EXPOSED_HEADERS))
        return headers


def _vary_on_origin(headers: list[tuple[str, str]]) -> None:
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            if "origin" not in value.lower():
                headers[index] = (name, f"{value}, Origin")
            return
    headers.append(("Vary", "Origin"))
