"""GET /movies/export: every movie matching a list query, streamed as NDJSON or CSV.

Rows come from a server-side cursor in batches (`repository.hold_movies`) on a connection of
the export's own, and leave as one chunk per batch: a worker's memory stays flat whatever the
size of the export. The cursor is held (WITH HOLD): the query runs to the end in a short
transaction of its own, PostgreSQL keeps the result, and the batches are fetched from it outside
any transaction. A client that reads for minutes therefore holds no lock on the movie tables, and
a load's swap (which needs them exclusively) neither fails nor makes every reader queue behind it.
The query runs and its first batch is read before the response starts, so a bad or slow query is
still a proper error response; a failure later can only cut the stream short (and is logged).
The whole export is one statement, so it is one consistent snapshot, even across a load.

NDJSON: one Movie object per line, exactly as GET /movies shows it.
CSV: a header row with the Movie fields in order, then one row per movie; genres joined with
"," in one (quoted) field — IMDb's own separator, which no genre name contains; null is an empty
field, booleans are `true`/`false`; RFC 4180 quoting and CRLF line ends (Python's csv module).
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app
from werkzeug.wsgi import ClosingIterator

from movies import repository
from movies.api.params import ExportRequest
from movies.api.serializers import imdb_url, movie_json
from movies.query import MovieQuery

log = logging.getLogger(__name__)

MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
CSV_FIELDS = (
    "id",
    "title",
    "original_title",
    "year",
    "genres",
    "rating",
    "votes",
    "runtime_minutes",
    "is_adult",
    "imdb_url",
    "source",
    "score",
)
CSV_GENRE_SEPARATOR = ","
Batches = Iterator[list[tuple]]


def export_response(parsed: ExportRequest, engine: sa.Engine, timeout_ms: int) -> Response:
    """The streamed export of `parsed` (rows read with `engine`, statement limit `timeout_ms`).

    :raise sqlalchemy.exc.DBAPIError: if the query fails before its first rows.
    """
    batches = _batches(engine, parsed.query, timeout_ms)
    first = next(batches, [])
    if parsed.format == "csv":
        body = _csv_chunks(first, batches)
    else:
        body = _ndjson_chunks(first, batches, _json_encoder())
    response = Response(
        ClosingIterator(body, [batches.close]), content_type=MEDIA_TYPES[parsed.format]
    )
    response.headers["Content-Disposition"] = f"attachment; filename=movies.{parsed.format}"
    return response


def _json_encoder() -> Callable[[Any], bytes]:
    """The app's JSON encoding (as GET /movies uses it), straight to bytes when it can."""
    provider = current_app.json
    encode = getattr(provider, "encode", None)
    return encode if callable(encode) else lambda obj: provider.dumps(obj).encode()


def _batches(engine: sa.Engine, query: MovieQuery, timeout_ms: int) -> Batches:
    with engine.connect() as conn:
        conn.execution_options(isolation_level="READ COMMITTED")
        with _cancelled_after(conn, timeout_ms), conn.begin():
            held = repository.hold_movies(conn, query)
        # The commit ran the query into the held cursor and released the table locks; fetching
        # in autocommit keeps even a snapshot from being held while the client reads slowly.
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield from held.batches()


@contextmanager
def _cancelled_after(conn: sa.Connection, timeout_ms: int) -> Iterator[None]:
    """Cancel the connection's running statement (the held cursor's run at commit, which
    `statement_timeout` does not cover) if the block lasts over `timeout_ms` (0: never)."""
    if not timeout_ms:
        yield
        return
    timer = threading.Timer(timeout_ms / 1000, conn.connection.dbapi_connection.cancel)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


_heartbeat: Callable[[], None] | None = None


def set_heartbeat(notify: Callable[[], None]) -> None:
    """Call `notify` after each chunk sent: a sync gunicorn worker's heartbeat, which it would
    otherwise give only between requests (gunicorn_conf.post_fork)."""
    global _heartbeat
    _heartbeat = notify


def _logged(chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        for chunk in chunks:
            yield chunk
            if _heartbeat is not None:
                _heartbeat()
    except Exception:
        log.exception("export cut short")
        raise


def _ndjson_chunks(
    first: list[tuple], batches: Batches, encode: Callable[[Any], bytes]
) -> Iterator[bytes]:
    def chunks() -> Iterator[bytes]:
        rows = first
        while rows:
            yield b"\n".join([encode(movie_json(row)) for row in rows]) + b"\n"
            rows = next(batches, [])

    return _logged(chunks())


def csv_row(row: tuple) -> tuple:
    """A movie row (`query.MOVIE_COLUMNS` order) as one CSV row, in CSV_FIELDS order.

    The same values as `movie_json` (one pass, no dict: a full export writes 700,000 of these);
    ratings and scores keep their exact decimal text.
    """
    (
        movie_id,
        source,
        title,
        original_title,
        year,
        genres,
        rating,
        votes,
        runtime_minutes,
        is_adult,
        imdb_id,
        score,
    ) = row
    return (
        movie_id,
        title,
        original_title,
        year,
        CSV_GENRE_SEPARATOR.join(genres),
        rating,
        votes,
        runtime_minutes,
        "true" if is_adult else "false",
        imdb_url(movie_id, source, imdb_id),
        source,
        score,
    )


def _csv_chunks(first: list[tuple], batches: Batches) -> Iterator[bytes]:
    def chunks() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_FIELDS)
        rows = first
        while True:
            writer.writerows([csv_row(row) for row in rows])
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            rows = next(batches, [])
            if not rows:
                return

    return _logged(chunks())
