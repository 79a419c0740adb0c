"""Logging: one configuration for every process, and one access line per request with its id.

`configure_logging(settings)` sets the root logger's level and format (text, or JSON lines for log
collectors). `init_app(app)` gives every request an id (the caller's `X-Request-ID` when it is
sane, else a fresh one), returns it as `X-Request-ID`, stamps it on every log record emitted while
the request runs, and logs one line per request: method, path, status, duration, request id.
It does so as a WSGI layer (`RequestLog`) around the app, so that every response gets them, the
ones answered before Flask (api/caching.py) included, at the cost of a list append per header.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, has_request_context, request

from movies.config import Settings

REQUEST_ID_HEADER = "X-Request-ID"
ACCESS_LOGGER = "movies.access"
REQUEST_ID_KEY = "movies.request_id"  # the request's id, in its WSGI environ

# A caller's id is echoed into logs and headers: printable, no spaces, bounded, or it is replaced.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+/=-]{1,128}")
# Control characters (a decoded %0A in a path) would forge log lines in the text format.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Fields of the access line, copied into JSON records as top-level keys.
_ACCESS_FIELDS = ("method", "path", "status", "duration_ms")
_HANDLER_MARK = "_movies_handler"

log = logging.getLogger(ACCESS_LOGGER)


class RequestIdFilter(logging.Filter):
    """Stamps `record.request_id` (the current request's id, or "-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


class StderrHandler(logging.StreamHandler):
    """Writes to the current `sys.stderr`, looked up at each record (test runners swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, access fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for name in _ACCESS_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings: Settings) -> None:
    """Send every logger's records to stderr at `settings.log_level` in `settings.log_format`.

    Idempotent: calling it again replaces the handler it installed, never adds a second one.
    """
    handler = StderrHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # No format here names the thread or the calling line: spare every record looking them up
    # (the logging HOWTO's "Optimization"). Process ids stay: gunicorn's own log lines name them.
    logging.logThreads = logging.logMultiprocessing = False
    logging._srcfile = None
    # pgserver logs every pg_ctl/initdb command line with its full output at INFO: detail for
    # debugging the embedded server, noise otherwise.
    logging.getLogger("pgserver").setLevel(
        logging.DEBUG if settings.log_level == "debug" else logging.WARNING
    )


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is sane (1-128 URL-safe characters), else a new random one
    (32 hex digits, as a uuid4's)."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return os.urandom(16).hex()


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    return request.environ.get(REQUEST_ID_KEY) if has_request_context() else None


def init_app(app: Flask, settings: Settings | None = None) -> None:
    """Give every response of `app` a request id and an access line: wrap `app.wsgi_app` in a
    `RequestLog`. Call it after adding the WSGI layers whose answers it should see.

    `settings` is unused (the signature of create_app's extensions): the log level and format
    belong to the process, set by `configure_logging` in the gunicorn config or the CLI.
    """
    app.wsgi_app = RequestLog(app.wsgi_app)  # type: ignore[method-assign]


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RequestLog:
    """The WSGI layer of `init_app`: the request id and the access line of every request."""

    def __init__(self, wsgi_app: WsgiApp) -> None:
        self.wsgi_app = wsgi_app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        environ[REQUEST_ID_KEY] = request_id
        statuses: list[str] = []

        def start_with_id(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            headers.append((REQUEST_ID_HEADER, request_id))
            statuses.append(status)
            return start_response(status, headers, *exc_info)

        body = self.wsgi_app(environ, start_with_id)
        if statuses and log.isEnabledFor(logging.INFO):
            path = _wsgi_text(environ.get("PATH_INFO", "")) or "/"
            query = environ.get("QUERY_STRING")
            full_path = f"{path}?{_wsgi_text(query)}" if query else path
            status = int(statuses[-1][:3])
            log_access(environ["REQUEST_METHOD"], full_path, status, started, request_id)
        return body


def _wsgi_text(raw: str) -> str:
    """A WSGI string (latin-1 of the raw bytes) as the text it encodes, as Flask reads it."""
    return raw.encode("latin-1").decode("utf-8", "replace")


def log_access(method: str, path: str, status: int, started: float, request_id: str) -> None:
    """Log the access line of a request that began at `started` (time.perf_counter())."""
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    if not path.isprintable():
        path = _CONTROL_CHARACTERS.sub(_escape, path)
    log.info(
        "%s %s %s %.2fms",
        method,
        path,
        status,
        duration_ms,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
        },
    )


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"
