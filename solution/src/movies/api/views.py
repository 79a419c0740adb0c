"""The routes: parse → one repository call → serialise. No SQL here."""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy.exc
from flask import Blueprint, Response, current_app, jsonify, request

from movies import repository
from movies.api.auth import require_token
from movies.api.caching import current_version, genre_counts_cache
from movies.api.connection import export_engine, get_connection, reads_replica_or_primary
from movies.api.export import export_response
from movies.api.params import (
    MOVIE_ID,
    parse_export_args,
    parse_json_object,
    parse_list_args,
    parse_new_movie,
)
from movies.api.routing import remember_write
from movies.api.serializers import dataset_json, facets_json, movie_json
from movies.config import Settings
from movies.cursor import encode_cursor
from movies.errors import ConflictError, NotFoundError, ProblemError, UnavailableError
from movies.query import keyset_to_json

bp = Blueprint("movies", __name__)


def _settings() -> Settings:
    return current_app.config["MOVIES_SETTINGS"]


def _vocabulary() -> repository.GenreVocabulary:
    return current_app.extensions["movies.genres"]


def _next_url(cursor: str) -> str:
    # Cursors are base64url plus ".": safe in a query string as they are.
    kept = [
        p
        for p in request.query_string.decode("latin-1").split("&")
        if p and not p.startswith("cursor=")
    ]
    kept.append(f"cursor={cursor}")
    return f"{request.path}?{'&'.join(kept)}"


def _self_url() -> str:
    query_string = request.query_string.decode("latin-1")
    return f"{request.path}?{query_string}" if query_string else request.path


@bp.get("/movies")
@reads_replica_or_primary
def list_movies() -> Response:
    """List movies: filters, sort, keyset pagination. :raise 400: on any bad parameter."""
    version = current_version()  # read before the page: never newer than the page's data
    conn = get_connection()
    settings = _settings()
    parsed = parse_list_args(
        request.args, partial(_vocabulary().resolve, conn), settings.secret_key
    )
    rows, next_keyset = repository.list_movies(conn, parsed.query, parsed.after, _vocabulary())
    next_cursor = None
    if next_keyset is not None:
        next_cursor = encode_cursor(
            keyset_to_json(next_keyset),
            next_keyset.id,
            parsed.query.fingerprint(),
            settings.secret_key,
        )
    next_url = _next_url(next_cursor) if next_cursor else None
    body: dict[str, Any] = {
        "version": version.load_id,
        "items": [movie_json(row) for row in rows],
        "next_cursor": next_cursor,
        "links": {"self": _self_url(), "next": next_url},
    }
    if parsed.count == "exact":
        body["total"] = repository.count_movies(conn, parsed.query)
    elif parsed.count == "estimate":
        body["total"] = repository.estimate_movies(conn, parsed.query)
    if parsed.facets:
        cache = current_app.extensions.setdefault("movies.facets", repository.ImdbFacetCache())
        counts = repository.facet_counts(conn, parsed.query, parsed.facets, cache)
        body["facets"] = facets_json(counts)
    response = jsonify(body)
    if next_url:
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@bp.get("/movies/export")
@reads_replica_or_primary
def export_movies() -> Response:
    """Every movie matching GET /movies' filters, in its order, streamed as NDJSON or CSV.

    :raise 400: on any bad parameter (limit, cursor, count and facets are not taken here).
    """
    settings = _settings()
    parsed = parse_export_args(
        request.args, partial(_vocabulary().resolve, get_connection()), settings.secret_key
    )
    return export_response(parsed, export_engine(), settings.export_statement_timeout_ms)


@bp.get("/movies/<movie_id>")
@reads_replica_or_primary
def get_movie(movie_id: str) -> Response:
    """One movie. :raise 404: if no movie has this id (whatever its shape)."""
    row = repository.get_movie(get_connection(), movie_id) if MOVIE_ID.fullmatch(movie_id) else None
    if row is None:
        raise NotFoundError(f"no movie with id {movie_id[:40]!r}")
    return jsonify(movie_json(row))


@bp.post("/movies")
def create_movie() -> tuple[Response, int, dict[str, str]]:
    """Create a user movie.

    :raise 401/403: without a valid token or when writes are disabled.
    :raise 415/413/400: for a non-JSON, oversize or invalid body. :raise 409: duplicate imdb_id.
    """
    require_token(request.headers.get("Authorization"), _settings().api_tokens)
    if not request.is_json:
        raise ProblemError("send the movie as JSON (Content-Type: application/json)", status=415)
    data = parse_json_object(request.get_data(cache=False))
    conn = get_connection(write=True)
    fields = parse_new_movie(data, partial(_vocabulary().resolve, conn))
    if "imdb_id" in fields and repository.imdb_id_taken(conn, fields["imdb_id"]):
        raise ConflictError(f"a movie with imdb_id {fields['imdb_id']} already exists")
    row = repository.insert_movie(conn, fields)
    conn.commit()
    response = jsonify(movie_json(row))
    remember_write(response, conn)
    return response, 201, {"Location": f"/movies/{row.id}"}


@bp.get("/genres")
@reads_replica_or_primary
def list_genres() -> Response:
    """Every genre with its number of movies (counted once per data version)."""

    def count() -> list[dict[str, Any]]:
        counts = repository.genre_counts(get_connection())
        return [{"name": name, "movies": movies} for name, movies in counts]

    return jsonify({"items": genre_counts_cache().get(current_version(), count)})


@bp.get("/dataset")
@reads_replica_or_primary
def get_dataset() -> Response:
    """The latest completed load. :raise 404: if nothing was ever loaded."""
    row = repository.latest_load(get_connection())
    if row is None:
        raise NotFoundError("no dataset has been loaded yet; run `movies load`")
    return jsonify(dataset_json(row))


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up (no database check)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready to serve. :raise 503: if the database is unreachable or holds no dataset yet."""
    try:
        loaded = _has_dataset()
    except sqlalchemy.exc.DBAPIError as exc:
        raise UnavailableError(f"database unreachable: {type(exc.orig).__name__}") from None
    if not loaded:
        raise UnavailableError("no dataset has been loaded yet")
    return jsonify({"status": "ready"})


@reads_replica_or_primary
def _has_dataset() -> bool:
    return repository.has_dataset(get_connection())
