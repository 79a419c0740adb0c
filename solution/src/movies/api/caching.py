"""Conditional GETs and kept responses, answered in one place: a WSGI layer in front of Flask.

Every data response (GET or HEAD of /movies..., /genres, /dataset) depends on three things only:
the loaded dataset, the user movies and the URL. The data version stands for the first two: the
latest `dataset_load` row (a load inserts it in the transaction that swaps the new data in) and
the number and latest creation time of the user movies (POST /movies is the only other write,
and it only adds rows). The ETag is a digest of the version and the URL: weak (`W/"..."`), since
a JSON body is equivalent, not byte-for-byte fixed.

`CachedResponses` answers a data GET before Flask when it can, and otherwise asks Flask and
finishes Flask's answer:

- a client's `If-None-Match` naming the current ETag gets a 304 at once: that ETag was only ever
  given with a 200 for this URL and version, so the 304 replaces a 200;
- a kept response (`ResponseCache`) is answered without routing, parameters or query;
- anything else goes to Flask; a 200 gets the validators and `Cache-Control`, is kept for the
  next request, and becomes a 304 if the client's `If-Modified-Since` or `If-None-Match: *`
  says its copy is current. Errors (400, 404...) stay what they are: a conditional header never
  hides them.

`Last-Modified` is when the latest change became visible (a load stamps its commit, not its
start), and is sent only once no change can come within the same whole second (SETTLE_S), so
`If-Modified-Since` never hides a newer dataset or user movie. `If-None-Match` wins over
`If-Modified-Since` (RFC 9110 §13.2.2).

The layer sits before Flask because Flask's request handling costs more than a kept answer:
answered by Flask, a kept /movies page ran at about half the requests/s of the bare-Flask
ceiling; answered here, at or above it. The rate limit and the door headers are WSGI layers
around it, so its answers are counted, logged and given CORS headers like every other. The
response cache (`response_cache`) counts what an entry holds in memory, not only its body.

Each worker reads the version at most once per VERSION_TTL_S (one tiny query) and a write in
that worker forgets it: another worker's POST or a load shows in the ETags within
VERSION_TTL_S. The version is always read before the data it labels, so a response can only
carry an older version than its data (the client refetches once more), never a newer one.

The process-level caches of a worker, and what invalidates each:

| cache | where | invalidated by |
|---|---|---|
| data version | `VersionCache` here | age VERSION_TTL_S; a write of this worker |
| kept responses | `response_cache.ResponseCache` | a new data version (all at once); LRU |
| genre counts of /genres | `PerVersion` here | a new data version |
| unfiltered IMDb facet counts | `repository.ImdbFacetCache` | a new load id (read per request) |
| genre names, sizes | `repository.GenreVocabulary` | an unknown name, sizes asked; 10 s apart |
| statement texts, cursor fingerprints | `lru_cache`s in `query` | never: pure functions |
| prepared statements | `prepared`, per pooled connection | LRU; the connection's replacement |
| rate-limit counters | `security.WorkerMemoryStorage` | their window's end |
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from flask import Flask, Response, current_app, request
from werkzeug.datastructures import ETags
from werkzeug.http import http_date, parse_date, parse_etags

from movies import repository
from movies.api.connection import db
from movies.api.response_cache import Headers, KeptResponse, ResponseCache
from movies.api.routing import REPLICA_BIND, WRITE_LSN_COOKIE, read_again_on_primary
from movies.config import Settings
from movies.errors import database_problem, problem_response

VERSION_TTL_S = 1.0
# Last-Modified is sent once the read is this many seconds past the start of its second.
SETTLE_S = 2.0
# The paths of the data GETs (every GET route but /healthz, /readyz and the docs).
DATA_PREFIXES = ("/movies", "/genres", "/dataset")
READ_METHODS = frozenset({"GET", "HEAD"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
T = TypeVar("T")


@dataclass(frozen=True)
class DataVersion:
    """What the data responses depend on, as a digest and the latest change time."""

    tag: bytes
    last_modified: datetime | None
    last_modified_header: str | None = None  # the HTTP date, formatted once per version
    load_id: int | None = None  # the dataset (load) the data come from; None before any load


def read_version(conn: sa.Connection) -> DataVersion:
    """The current data version, read on `conn`."""
    load_id, loaded_at, user_movies, user_created_at, read_at = repository.data_version(conn)
    tag = f"{load_id}|{loaded_at}|{user_movies}|{user_created_at}".encode()
    changes = [t for t in (loaded_at, user_created_at) if t is not None]
    last_modified = max(changes) if changes else None
    header = None
    if last_modified is not None and _second_is_over(last_modified, read_at):
        header = http_date(last_modified)
    return DataVersion(tag, last_modified, header, load_id)


def _second_is_over(last_modified: datetime, read_at: datetime) -> bool:
    """Whether no change can still come with the same whole-second Last-Modified.

    A client's If-Modified-Since has whole seconds: a change later in the second of the last
    one would look unmodified. Changes are stamped in commit order (a load just before its
    commit, under the swap's locks; user movies one at a time), so once the read is a second
    past the end of that second (SETTLE_S in all), every change of that second is in it.
    """
    return read_at - last_modified.replace(microsecond=0) >= timedelta(seconds=SETTLE_S)


class VersionCache:
    """The data version, read at most once per `ttl_s` seconds (per worker)."""

    def __init__(self, ttl_s: float = VERSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._value: DataVersion | None = None
        self._expires = float("-inf")
        self._lock = threading.Lock()

    def get(self, read: Callable[[], DataVersion]) -> DataVersion:
        """The cached version, or `read()` once it is `ttl_s` old."""
        value = self._value
        if value is None or time.monotonic() >= self._expires:
            value = read()
            with self._lock:
                self._value, self._expires = value, time.monotonic() + self.ttl_s
        return value

    def expire(self) -> None:
        """Forget the version: the next request reads it again."""
        with self._lock:
            self._value, self._expires = None, float("-inf")


class PerVersion(Generic[T]):
    """One value computed for the current data version, recomputed when the version changes."""

    def __init__(self) -> None:
        self._kept: tuple[bytes, T] | None = None

    def get(self, version: DataVersion, compute: Callable[[], T]) -> T:
        """The value kept for `version`, or `compute()` (read after `version`, so never older)."""
        kept = self._kept
        if kept is not None and kept[0] == version.tag:
            return kept[1]
        value = compute()
        self._kept = (version.tag, value)
        return value


@dataclass(frozen=True)
class Caching:
    """A worker's caching state (app.extensions["movies.caching"])."""

    versions: VersionCache
    cache_control: str
    responses: ResponseCache | None
    genre_counts: PerVersion[list[dict[str, Any]]]
    primary: sa.Engine
    replica: sa.Engine | None  # the read replica's (api/routing.py), if there is one

    def version(self) -> DataVersion:
        """The current data version (read at most once per VERSION_TTL_S)."""
        return self.versions.get(self._read_version)

    def _read_version(self) -> DataVersion:
        # Where the reads go: a version read on the primary could be newer than the replica's
        # data, and a stale body would be kept under the new ETag. The primary's only when the
        # replica cannot be reached or its connection is lost (as for every read,
        # api/routing.py).
        if self.replica is not None:
            conn = None
            try:
                conn = self.replica.connect()
                return read_version(conn)
            except sa.exc.DBAPIError as exc:
                if not read_again_on_primary(self.replica, conn, exc):
                    raise
            finally:
                if conn is not None:
                    conn.close()
        with self.primary.connect() as conn:
            version = read_version(conn)
        if self.replica is None:
            return version
        # Some reads may still reach the replica meanwhile: a tag of its own keeps what they
        # answer from passing, once kept, for the replica's data of the same version later.
        return replace(version, tag=version.tag + b"|primary")


def init_app(app: Flask, settings: Settings) -> None:
    """Keep the caching state per app; forget the version after every write of this worker."""
    responses = None
    if settings.response_cache_mb:
        responses = ResponseCache(settings.response_cache_mb * 1024 * 1024)
    with app.app_context():
        primary, replica = db.engine, db.engines.get(REPLICA_BIND)
    cache_control = f"public, max-age={settings.cache_max_age_s}"
    state = Caching(VersionCache(), cache_control, responses, PerVersion(), primary, replica)
    app.extensions["movies.caching"] = state

    @app.after_request
    def forget_version_after_write(response: Response) -> Response:
        if request.method in WRITE_METHODS and response.status_code < 400:
            state.versions.expire()
        return response


def current_version() -> DataVersion:
    """The data version, for a view (never older than the one its response's ETag names)."""
    return current_app.extensions["movies.caching"].version()


def genre_counts_cache() -> PerVersion[list[dict[str, Any]]]:
    """The worker's genre counts of /genres, kept for one data version."""
    return current_app.extensions["movies.caching"].genre_counts


def etag_of(version: DataVersion, environ: dict[str, Any]) -> str:
    """The ETag of the response to the request `environ` for data `version` (without W/"...")."""
    digest = hashlib.blake2b(version.tag, digest_size=12)
    digest.update(b"|")
    # The raw bytes of path and query (WSGI carries them as latin-1 strings).
    digest.update(environ.get("PATH_INFO", "").encode("latin-1"))
    digest.update(b"?")
    digest.update(environ.get("QUERY_STRING", "").encode("latin-1"))
    return base64.urlsafe_b64encode(digest.digest()).decode()


def names_current_etag(if_none_match: str, quoted: str, etag: str) -> bool:
    """Whether `If-None-Match` lists this ETag itself (weak comparison); `*` does not count."""
    if if_none_match == quoted:  # the common case: the one ETag the client got back
        return True
    given: ETags = parse_etags(if_none_match)
    return not given.star_tag and given.contains_weak(etag)


def copy_is_current(environ: dict[str, Any], version: DataVersion) -> bool:
    """Whether the client's copy of a 200 response of `version` is current by `If-None-Match: *`
    or `If-Modified-Since` (the latter only when no If-None-Match was sent)."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        return parse_etags(if_none_match).star_tag
    since = parse_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
    if since is None or version.last_modified is None:
        return False
    return version.last_modified.replace(microsecond=0) <= since


class CachedResponses:
    """The WSGI layer: validators, 304s and kept responses for the data GETs of `flask_app`."""

    def __init__(self, flask_app: WsgiApp, state: Caching) -> None:
        self.flask_app = flask_app
        self.state = state

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method not in READ_METHODS or not environ.get("PATH_INFO", "").startswith(DATA_PREFIXES):
            return self.flask_app(environ, start_response)
        if WRITE_LSN_COOKIE in environ.get("HTTP_COOKIE", ""):
            # A client that has just written reads it back through Flask (from the primary if
            # the replica lags, api/routing.py), never from a kept answer of the replica's data.
            return self.flask_app(environ, start_response)
        try:
            version = self.state.version()
        except sa.exc.OperationalError as exc:
            # The database is down: the 503 now, not after a second wait in the view.
            problem = database_problem(exc)
            return problem_response(problem.status, problem.detail)(environ, start_response)
        except sa.exc.DBAPIError:
            # Not the database's absence (an empty one, say): Flask sets it up and answers.
            return self.flask_app(environ, start_response)
        etag = etag_of(version, environ)
        quoted = f'W/"{etag}"'
        validators = [("ETag", quoted), ("Cache-Control", self.state.cache_control)]
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match is not None and names_current_etag(if_none_match, quoted, etag):
            start_response("304 Not Modified", validators)
            return [b""]
        if version.last_modified_header is not None:
            validators.append(("Last-Modified", version.last_modified_header))
        kept = self.state.responses and self.state.responses.get(version, etag)
        if kept:
            return self._answer_ok(environ, start_response, version, kept, validators)
        return self._ask_flask(environ, start_response, version, etag, validators)

    def _answer_ok(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        version: DataVersion,
        kept: KeptResponse,
        validators: Headers,
    ) -> Iterable[bytes]:
        """The kept 200 (or a 304 in its place if the client's copy is current)."""
        if copy_is_current(environ, version):
            start_response("304 Not Modified", validators)
            return [b""]
        start_response("200 OK", [*kept.headers, *validators])
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [kept.body]

    def _ask_flask(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        version: DataVersion,
        etag: str,
        validators: Headers,
    ) -> Iterable[bytes]:
        """Flask's answer; a 200 with validators, kept, or a 304 in its place."""
        started: list[tuple[str, Headers]] = []

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Any:
            if not status.startswith("200"):
                return start_response(status, headers, exc_info)
            started.append((status, headers))
            return lambda _data: None  # Flask writes through its iterable only

        body = self.flask_app(environ, capture)
        if not started:
            return body
        status, headers = started[0]
        if copy_is_current(environ, version):
            _close(body)
            start_response("304 Not Modified", validators)
            return [b""]
        if self.state.responses is not None and _is_buffered(environ, headers):
            data = b"".join(body)
            _close(body)
            self.state.responses.put(version, etag, data, headers)
            body = [data]
        start_response(status, [*headers, *validators])
        return body


def _is_buffered(environ: dict[str, Any], headers: Headers) -> bool:
    """A GET's whole body, of a known length (a streamed export has none): one worth keeping."""
    return environ["REQUEST_METHOD"] == "GET" and any(
        name == "Content-Length" for name, _ in headers
    )


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()
