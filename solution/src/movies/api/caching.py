"""Conditional GET (ETag, Last-Modified, Cache-Control; 304 if unchanged) and the response cache.

Every data response depends on three things only: the loaded dataset, the user movies and the
URL. The data version stands for the first two: the latest `dataset_load` row (a load inserts
it in the transaction that swaps the new data in) and the number and latest creation time of
the user movies (POST /movies is the only other write, and it only adds rows; a count cannot
miss a row whose creation time is older than one already counted). The ETag is a digest of the
version and the URL: weak (`W/"..."`), since a JSON body is equivalent, not byte-for-byte fixed.

Each worker reads the version at most once per VERSION_TTL_S (one tiny query) and a write in
that worker forgets it, so a 304 costs no database work at all; another worker's POST or a load
shows in the ETags within VERSION_TTL_S. The version is always read before the data it labels,
so a response can only carry an older version than its data (the client refetches once more),
never a newer one (which could keep stale data behind a 304).

`If-None-Match` wins over `If-Modified-Since` (RFC 9110 §13.2.2); `Last-Modified` has whole
seconds, so two changes within one second are told apart by the ETag only.

Since the ETag names the data version and the URL, it also names the body: each worker keeps the
finished 200 responses of data GETs by ETag (`ResponseCache`, least recently used out first,
`settings.response_cache_mb` MiB) and answers a repeated URL without a query. A new version
empties the cache, so a cached body is exactly as fresh as its ETag: a load or a POST shows
within VERSION_TTL_S, as above. Streamed responses (the export) are never kept.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.http import http_date

from movies import repository
from movies.api.connection import get_connection
from movies.config import Settings

VERSION_TTL_S = 1.0
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_ETAG_KEY = "movies.etag"  # (version tag, ETag) of this request, in its WSGI environ


@dataclass(frozen=True)
class DataVersion:
    """What the data responses depend on, as a digest and the latest change time."""

    tag: bytes
    last_modified: datetime | None
    last_modified_header: str | None = None  # the HTTP date, formatted once per version


def read_version() -> DataVersion:
    """The current data version, from the request's connection."""
    load_id, loaded_at, user_movies, user_created_at = repository.data_version(get_connection())
    tag = f"{load_id}|{loaded_at}|{user_movies}|{user_created_at}".encode()
    changes = [t for t in (loaded_at, user_created_at) if t is not None]
    last_modified = max(changes) if changes else None
    return DataVersion(tag, last_modified, http_date(last_modified) if last_modified else None)


class VersionCache:
    """The data version, read at most once per `ttl_s` seconds (per worker)."""

    def __init__(self, ttl_s: float = VERSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._value: DataVersion | None = None
        self._expires = float("-inf")
        self._lock = threading.Lock()

    def get(self, read: Callable[[], DataVersion] = read_version) -> DataVersion:
        """The cached version, or a fresh one once it is `ttl_s` old."""
        value = self._value
        if value is None or time.monotonic() >= self._expires:
            value = read()
            with self._lock:
                self._value, self._expires = value, time.monotonic() + self.ttl_s
        return value

    def peek(self) -> DataVersion | None:
        """The cached version if it is younger than `ttl_s`, else None (nothing is read)."""
        value = self._value
        if value is None or time.monotonic() >= self._expires:
            return None
        return value

    def expire(self) -> None:
        """Forget the version: the next request reads it again."""
        with self._lock:
            self._value, self._expires = None, float("-inf")


@dataclass(frozen=True)
class _CachedResponse:
    body: bytes
    headers: list[tuple[str, str]]  # the view's own (Content-Type, Link...)


class ResponseCache:
    """Finished responses by ETag, within `max_bytes`, for one data version at a time."""

    # No single response may take more than this share of the budget.
    MAX_ENTRY_SHARE = 16

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _CachedResponse] = OrderedDict()
        self._bytes = 0
        self._version: bytes | None = None
        self._lock = threading.Lock()

    def get(self, version: DataVersion, etag: str) -> _CachedResponse | None:
        """The response kept for `etag`, if it was made from `version`."""
        if version.tag != self._version:
            return None
        with self._lock:
            entry = self._entries.get(etag)
            if entry is not None:
                self._entries.move_to_end(etag)
        return entry

    def get_stats(self) -> tuple[int, int]:
        """(entries, bytes of their bodies)."""
        return len(self._entries), self._bytes

    def put(self, version: DataVersion, etag: str, response: Response) -> None:
        """Keep a finished, buffered response (an older version's entries are dropped)."""
        if response.is_streamed:
            return
        body = response.get_data()
        if len(body) * self.MAX_ENTRY_SHARE > self.max_bytes:
            return
        entry = _CachedResponse(body, list(response.headers.items()))
        with self._lock:
            if version.tag != self._version:
                self._entries.clear()
                self._bytes, self._version = 0, version.tag
            old = self._entries.pop(etag, None)
            self._bytes += len(body) - (len(old.body) if old else 0)
            self._entries[etag] = entry
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted.body)


@dataclass(frozen=True)
class _Caching:
    versions: VersionCache
    cache_control: str
    responses: ResponseCache | None


def init_app(app: Flask, settings: Settings) -> None:
    """Keep a version cache per app; forget it after every successful write of this worker."""
    responses = None
    if settings.response_cache_mb:
        responses = ResponseCache(settings.response_cache_mb * 1024 * 1024)
    state = _Caching(VersionCache(), f"public, max-age={settings.cache_max_age_s}", responses)
    app.extensions["movies.caching"] = state

    @app.after_request
    def forget_version_after_write(response: Response) -> Response:
        if request.method not in _READS and response.status_code < 400:
            state.versions.expire()
        return response


def etag_of(version: DataVersion, environ: dict[str, Any]) -> str:
    """The ETag of the response to the request `environ` for data `version` (without W/"...").

    Kept in `environ` for that version: a request the edge layer passes on to Flask reaches
    `conditional` with the ETag already worked out.
    """
    known = environ.get(_ETAG_KEY)
    if known is not None and known[0] == version.tag:
        return known[1]
    digest = hashlib.blake2b(version.tag, digest_size=12)
    digest.update(b"|")
    # The raw bytes of path and query (WSGI carries them as latin-1 strings).
    digest.update(environ.get("PATH_INFO", "").encode("latin-1"))
    digest.update(b"?")
    digest.update(environ.get("QUERY_STRING", "").encode("latin-1"))
    etag = base64.urlsafe_b64encode(digest.digest()).decode()
    environ[_ETAG_KEY] = (version.tag, etag)
    return etag


def _not_modified(etag: str, last_modified: datetime | None) -> bool:
    given = request.headers.get("If-None-Match")
    if given is not None:
        # The common case, a client sending back the ETag it got, needs no header parsing.
        return given == f'W/"{etag}"' or request.if_none_match.contains_weak(etag)
    since = request.if_modified_since
    if since is None or last_modified is None:
        return False
    return last_modified.replace(microsecond=0) <= since


def conditional(view: Callable[..., Any]) -> Callable[..., Response]:
    """Decorate a data GET view: validators and Cache-Control on 200, 304 when the client's copy
    is current; the view runs only if neither the client nor the response cache has the body."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        state: _Caching = current_app.extensions["movies.caching"]
        version = state.versions.get()
        etag = etag_of(version, request.environ)
        if _not_modified(etag, version.last_modified):
            # A 304 carries no Last-Modified (werkzeug drops it): RFC 9110 does not ask for it.
            response = current_app.response_class(status=304)
        else:
            response = _cached_or_fresh(state, version, etag, view, args, kwargs)
            if response.status_code != 200:
                return response
            if version.last_modified_header is not None:
                response.headers["Last-Modified"] = version.last_modified_header
        response.headers["ETag"] = f'W/"{etag}"'
        response.headers["Cache-Control"] = state.cache_control
        return response

    return wrapper


def _cached_or_fresh(
    state: _Caching,
    version: DataVersion,
    etag: str,
    view: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Response:
    """The kept response for `etag`, or the view's (kept for next time when it is a 200)."""
    if state.responses is None:
        return current_app.make_response(view(*args, **kwargs))
    cached = state.responses.get(version, etag)
    if cached is not None:
        return current_app.response_class(cached.body, headers=cached.headers)
    response = current_app.make_response(view(*args, **kwargs))
    if response.status_code == 200:
        state.responses.put(version, etag, response)
    return response
