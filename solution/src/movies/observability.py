"""Logging: one configuration for every process, and one access line per request with its id.

`configure_logging(settings)` sets the root logger's level and format (text, or JSON lines for log
collectors). `init_app(app)` gives every request an id (the caller's `X-Request-ID` when it is
sane, else a fresh one), returns it as `X-Request-ID`, stamps it on every log record emitted while
the request runs, and logs one line per request: method, path, status, duration, request id.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, g, has_request_context, request

from movies.config import Settings

REQUEST_ID_HEADER = "X-Request-ID"
ACCESS_LOGGER = "movies.access"

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
            record.request_id = g.get("request_id", "-") if has_request_context() else "-"
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
    # pgserver logs every pg_ctl/initdb command line with its full output at INFO: detail for
    # debugging the embedded server, noise otherwise.
    logging.getLogger("pgserver").setLevel(
        logging.DEBUG if settings.log_level == "debug" else logging.WARNING
    )


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is sane (1-128 URL-safe characters), else a new uuid4 hex."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    return g.get("request_id") if has_request_context() else None


def init_app(app: Flask, settings: Settings | None = None) -> None:
    """Attach request ids and the per-request access log line to `app`.

    `settings` is unused (the signature of create_app's extensions): the log level and format
    belong to the process, set by `configure_logging` in the gunicorn config or the CLI.
    """
    # First of the app's before_request hooks, whenever it is registered: a request that another
    # hook turns away (503, 429) still carries the caller's id and its full duration.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_finish_request)


def _start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id_from(request.environ.get("HTTP_X_REQUEST_ID"))


def _finish_request(response: Response) -> Response:
    context = g._get_current_object()
    request_id = getattr(context, "request_id", None) or request_id_from(None)
    response.headers[REQUEST_ID_HEADER] = request_id
    if log.isEnabledFor(logging.INFO):
        started = getattr(context, "request_started", None)
        log_access(
            request.method,
            request.full_path.rstrip("?"),
            response.status_code,
            started,
            request_id,
        )
    return response


def log_access(method: str, path: str, status: int, started: float | None, request_id: str) -> None:
    """Log the access line of a request that began at `started` (time.perf_counter())."""
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else 0.0
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
