"""The error family and every error handler: one RFC 9457 `application/problem+json` shape.

Every error body is built by `problem_response`:
    {"type": "about:blank", "status": 400, "title": "Bad Request", "detail": "...",
     "errors": [{"param": "limit", "message": "..."}]}      # `errors` only for validation
Routing errors (404/405), oversize bodies (413), database failures (SQLSTATE mapped to HTTP) and
unexpected exceptions (500, logged with the traceback server-side, never sent) use it too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import sqlalchemy.exc
from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """An error the API reports to the client as problem+json."""

    status = 500

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.errors = errors
        self.headers = dict(headers or {})


class ValidationError(ProblemError):
    """Bad request parameters or body; `errors` names each offending parameter or field."""

    status = 400

    def __init__(self, errors: list[dict[str, str]], detail: str | None = None) -> None:
        super().__init__(
            detail or "; ".join(f"{e['param']}: {e['message']}" for e in errors), errors=errors
        )


class NotFoundError(ProblemError):
    """The requested resource does not exist."""

    status = 404


class ConflictError(ProblemError):
    """The request conflicts with existing data (e.g. a duplicate imdb_id)."""

    status = 409


class UnauthorizedError(ProblemError):
    """Missing or wrong bearer token."""

    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="movies"'})


class WritesDisabledError(ProblemError):
    """Writes are refused because no API token is configured."""

    status = 403


class UnavailableError(ProblemError):
    """The database is unreachable, shutting down, or too slow."""

    status = 503


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Build the one error body of the API."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "status": status,
        "title": HTTPStatus(status).phrase,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


# SQLSTATE classes and codes that mean "try again later" rather than "bad request".
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "53300", "57014", "55P03", "40P01"}


def database_problem(exc: sqlalchemy.exc.DBAPIError) -> ProblemError:
    """Map a database error to the HTTP error it means (SQLSTATE → status)."""
    code = getattr(exc.orig, "pgcode", None) or ""
    if code == "23505":
        return ConflictError("a movie with these values already exists")
    if code == "57014":
        return UnavailableError("the query took too long and was cancelled; narrow the filters")
    if (
        code.startswith("08")
        or code in _UNAVAILABLE_SQLSTATES
        or exc.connection_invalidated
        or isinstance(exc, sqlalchemy.exc.OperationalError)
    ):
        return UnavailableError("the database is unavailable; try again shortly")
    return ProblemError("internal error")


def register_error_handlers(app: Flask) -> None:
    """Install the handlers that turn every failure into problem+json."""

    @app.errorhandler(ProblemError)
    def handle_problem(exc: ProblemError) -> Response:
        return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {
            name: value
            for name, value in exc.get_headers()
            if name.lower() not in ("content-type", "content-length")
        }
        return problem_response(status, _http_detail(exc), headers=headers)

    @app.errorhandler(sqlalchemy.exc.DBAPIError)
    def handle_database(exc: sqlalchemy.exc.DBAPIError) -> Response:
        problem = database_problem(exc)
        if problem.status >= 500 and problem.status != 503:
            log.exception("database error")
        else:
            log.warning("database error mapped to %s: %s", problem.status, exc.orig)
        return handle_problem(problem)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem_response(500, "internal error; the server logged the details")


def _http_detail(exc: HTTPException) -> str:
    if exc.code == 404:
        return "no such resource; see /openapi.json for the routes"
    if exc.code == 405:
        return "method not allowed on this resource"
    if exc.code == 413:
        return "request body too large"
    return exc.description or HTTPStatus(exc.code or 500).phrase
