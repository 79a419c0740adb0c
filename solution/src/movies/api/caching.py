"""Conditional GET: `ETag`, `Last-Modified` and `Cache-Control` on the data GETs; 304 if unchanged.

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
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
import time
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

    def expire(self) -> None:
        """Forget the version: the next request reads it again."""
        with self._lock:
            self._value, self._expires = None, float("-inf")


@dataclass(frozen=True)
class _Caching:
    versions: VersionCache
    cache_control: str


def init_app(app: Flask, settings: Settings) -> None:
    """Keep a version cache per app; forget it after every successful write of this worker."""
    state = _Caching(VersionCache(), f"public, max-age={settings.cache_max_age_s}")
    app.extensions["movies.caching"] = state

    @app.after_request
    def forget_version_after_write(response: Response) -> Response:
        if request.method not in _READS and response.status_code < 400:
            state.versions.expire()
        return response


def _etag(version: DataVersion) -> str:
    digest = hashlib.blake2b(version.tag, digest_size=12)
    digest.update(b"|")
    digest.update(request.path.encode())
    digest.update(b"?")
    digest.update(request.query_string)
    return base64.urlsafe_b64encode(digest.digest()).decode()


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
    is current (the view does not run)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        state: _Caching = current_app.extensions["movies.caching"]
        version = state.versions.get()
        etag = _etag(version)
        if _not_modified(etag, version.last_modified):
            # A 304 carries no Last-Modified (werkzeug drops it): RFC 9110 does not ask for it.
            response = current_app.response_class(status=304)
        else:
            response = current_app.make_response(view(*args, **kwargs))
            if response.status_code != 200:
                return response
            if version.last_modified_header is not None:
                response.headers["Last-Modified"] = version.last_modified_header
        response.headers["ETag"] = f'W/"{etag}"'
        response.headers["Cache-Control"] = state.cache_control
        return response

    return wrapper
