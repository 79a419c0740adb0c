"""Answers that need no view, given before Flask: a 304 for a current ETag, a kept response.

A data GET whose ETag the client holds, or whose response the worker keeps (movies.api.caching),
needs no routing, no parameters and no query, and Flask's request handling would cost more than
the answer itself. `FastAnswers`, a WSGI layer in front of Flask, gives these answers after
counting them against the rate limit (a request over its budget goes on to Flask, which answers
the 429). The WSGI layers around it give them what they give every response: the door headers
(security.DoorHeaders), the request id and the access line (observability.RequestLog).
Anything else goes to Flask, as do these requests whenever the worker must read the data
version again; the `conditional` views then give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from movies.api.caching import DataVersion, etag_of
from movies.api.security import READ_METHODS, REFUSED_KEY

# The paths of the data GETs (the views decorated with `conditional`).
DATA_PREFIXES = ("/movies", "/genres", "/dataset")

Answer = tuple[str, list[tuple[str, str]], bytes]


class FastAnswers:
    """The WSGI layer; `app.extensions` holds the caching state and the rate limits."""

    def __init__(self, app: Flask) -> None:
        self.next_layer = app.wsgi_app
        self.extensions = app.extensions

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        answer = self._answer(environ)
        if answer is None:
            return self.next_layer(environ, start_response)
        method = environ["REQUEST_METHOD"]
        rate_limits = self.extensions.get("movies.rate_limits")
        if rate_limits is not None:
            refused = rate_limits.count(method, environ.get("REMOTE_ADDR"))
            if refused is not None:
                environ[REFUSED_KEY] = refused
                return self.next_layer(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return [b""] if method == "HEAD" else [body]

    def _answer(self, environ: dict[str, Any]) -> Answer | None:
        """The 304 or the kept 200 for this request, or None if Flask must answer."""
        if environ["REQUEST_METHOD"] not in READ_METHODS:
            return None
        if not environ.get("PATH_INFO", "").startswith(DATA_PREFIXES):
            return None
        caching = self.extensions["movies.caching"]
        version: DataVersion | None = caching.versions.peek()
        if version is None:
            return None
        etag = f'W/"{etag_of(version, environ)}"'
        validators = [("ETag", etag), ("Cache-Control", caching.cache_control)]
        given = environ.get("HTTP_IF_NONE_MATCH")
        if given is not None:
            # The common form, the one ETag the client got; lists and * are Flask's to parse.
            return ("304 Not Modified", validators, b"") if given == etag else None
        if caching.responses is None or "HTTP_IF_MODIFIED_SINCE" in environ:
            return None
        kept = caching.responses.get(version, etag[3:-1])
        if kept is None:
            return None
        headers = [*kept.headers, *validators]
        if version.last_modified_header is not None:
            headers.append(("Last-Modified", version.last_modified_header))
        return "200 OK", headers, kept.body
