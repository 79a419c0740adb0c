"""The API behind pgbouncer in transaction mode, as `make scale-up` runs it.

A primary and its streaming replica (scale/pg_servers.py, as in test_read_replica.py), each with
a pgbouncer in front of it configured as the scale topology configures them (scale/pgbouncers.py;
Debian's package, which `make test` installs when missing). If any of them cannot be started the
tests fail, they do not skip.

- A replica that dies behind its still-running pooler: the pooler keeps accepting connections,
  so the read fails at its first statement; it is read again from the primary, in the same
  request, and answered 200.
- The statement timeout (MOVIES_STATEMENT_TIMEOUT_MS), which the app's connection `options`
  cannot carry through pgbouncer, still cancels a slow statement: 503 problem+json.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pg_servers
import pgbouncers
import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from movies import schema
from movies.api.connection import db, get_connection
from movies.api.routing import REPLICA_BIND
from movies.app import create_app
from movies.config import Settings
from movies.db import create_engine

SECRET = "pooler-test-key"
TOKENS = ("pooler-token",)
AUTH = {"Authorization": f"Bearer {TOKENS[0]}"}
USER = pg_servers.DB_SUPERUSER
TIMEOUT_MS = 300


@dataclass(frozen=True)
class Cluster:
    primary: pg_servers.PgServer
    replica: pg_servers.PgServer
    primary_pooler: pgbouncers.Bouncer
    replica_pooler: pgbouncers.Bouncer


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Database `movies` (schema applied) on a primary and a replica, a pgbouncer before each."""
    # Not under pytest's basetemp: another pytest run resets that folder's mode to 0700, which
    # would cut these servers (run as another user) off from their own files.
    folder = Path(tempfile.mkdtemp(prefix="movies-test-pooler-"))
    primary = pg_servers.init_primary(folder, pg_servers.free_port(), {"fsync": "off"})
    replica = None
    poolers: list[pgbouncers.Bouncer] = []
    try:
        admin = create_engine(primary.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE movies")
        admin.dispose()
        engine = create_engine(primary.url("movies"))
        schema.apply(engine)
        engine.dispose()
        replica = pg_servers.init_replica(primary, folder, "replica", pg_servers.free_port())
        for server in (primary, replica):
            poolers.append(
                pgbouncers.start(
                    _pooler_folder(server.data),
                    pg_servers.free_port(),
                    server.port,
                    "movies",
                    [USER],
                )
            )
        yield Cluster(primary, replica, *poolers)
    finally:
        for pooler in poolers:
            pgbouncers.stop(pooler)
        for server in (replica, primary):
            if server is not None:
                pg_servers.stop(server, "immediate")
        shutil.rmtree(folder, ignore_errors=True)


def _pooler_folder(data: Path) -> Path:
    return data.with_name(f"pgbouncer-{data.name}")


def _wait_until_serving(pooler: pgbouncers.Bouncer, timeout_s: float = 10) -> None:
    """Until a query through `pooler` succeeds (it refuses them for a while after its server
    came back: server_login_retry)."""
    engine = create_engine(pooler.url("movies", USER), pool_size=1)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                return
            except sa.exc.OperationalError:
                assert time.monotonic() < deadline, "the pooler does not serve its server again"
                time.sleep(0.1)
    finally:
        engine.dispose()


def _app(**settings: object) -> Flask:
    return create_app(
        Settings(
            secret_key=SECRET,
            api_tokens=TOKENS,
            rate_limit_reads="",
            rate_limit_writes="",
            response_cache_mb=0,
            prepared_statements=False,  # transaction pooling (see topology.py)
            db_connect_timeout_s=2,
            **settings,  # type: ignore[arg-type]
        )
    )


def _close(application: Flask) -> None:
    with application.app_context():
        for engine in db.engines.values():
            engine.dispose()


def test_replica_stopped_behind_its_running_pooler_reads_from_the_primary(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    application = _app(
        database_url=cluster.primary_pooler.url("movies", USER),
        database_read_url=cluster.replica_pooler.url("movies", USER),
    )
    client = application.test_client()
    try:
        created = client.post("/movies", json={"title": "Pooled", "year": 1999}, headers=AUTH)
        assert created.status_code == 201, created.json
        location = created.headers["Location"]
        with application.app_context(), db.engine.connect() as conn:
            lsn = conn.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar()
        pg_servers.wait_for_replay(lsn, cluster.replica.url("movies"))
        paths = [location, "/movies?q=Pooled", "/genres", "/readyz"]
        for path in paths:  # every read from the replica, through its pooler
            assert client.get(path).status_code in (200, 503), path  # /readyz: no load yet
        with application.test_request_context():
            assert get_connection().engine is db.engines[REPLICA_BIND]

        pg_servers.stop(cluster.replica, "immediate")
        try:
            caplog.clear()
            for _ in range(3):  # a pooled connection first, then new ones the pooler accepts
                application.extensions["movies.caching"].versions.expire()
                for path in paths[:3]:
                    started = time.monotonic()
                    response = client.get(path)
                    assert response.status_code == 200, (path, response.json)
                    # The pooler fails a query that waits for a server after its
                    # query_wait_timeout; new ones at once.
                    assert time.monotonic() - started < pgbouncers.QUERY_WAIT_TIMEOUT_S + 2
                assert client.get(location).json["title"] == "Pooled"
                assert client.get("/readyz").json["detail"] == "no dataset has been loaded yet"
            assert "read replica unreachable, reading from the primary" in caplog.text
            assert "Traceback" not in caplog.text
        finally:
            pg_servers.start(cluster.replica)
            _wait_until_serving(cluster.replica_pooler)
    finally:
        _close(application)


@contextmanager
def movie_locked(cluster: Cluster, *, on_replica: bool = False) -> Iterator[None]:
    """An ACCESS EXCLUSIVE lock on `movie` held on the primary (replayed on the replica too,
    where it blocks reads as well once `on_replica` has seen it). Released after at most 10 s,
    so that a test whose request waits for it fails rather than hangs."""
    locker = create_engine(cluster.primary.url("movies"))
    replica = create_engine(cluster.replica.url("movies"))
    try:
        with locker.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE movie IN ACCESS EXCLUSIVE MODE")
            release = threading.Timer(10, conn.connection.dbapi_connection.rollback)
            release.start()
            if on_replica:
                # A commit elsewhere flushes the WAL, the lock's record with it, to the replica.
                with locker.connect() as other:
                    other.exec_driver_sql("SELECT txid_current()")
                    other.commit()
                deadline = time.monotonic() + 5
                while not _replica_holds_lock(replica):
                    assert time.monotonic() < deadline, "the replica did not replay the lock"
                    time.sleep(0.05)
            try:
                yield
            finally:
                release.cancel()
                conn.rollback()
    finally:
        locker.dispose()
        replica.dispose()


def _replica_holds_lock(replica: sa.Engine) -> bool:
    with replica.connect() as conn:
        return (
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks"
                " WHERE relation = 'movie'::regclass AND mode = 'AccessExclusiveLock'"
            ).scalar()
            > 0
        )


def _assert_cancelled(response: TestResponse, seconds: float) -> None:
    assert response.status_code == 503, response.data[:300]
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 503
    assert "took too long" in response.json["detail"]
    assert seconds < 3


def test_statement_timeout_applies_behind_the_pooler(cluster: Cluster) -> None:
    application = _app(
        database_url=cluster.primary_pooler.url("movies", USER), statement_timeout_ms=TIMEOUT_MS
    )
    client = application.test_client()
    try:
        with application.app_context(), db.engine.connect() as conn:
            # pgbouncer dropped the connection's `options`: without the app's SET LOCAL the
            # server's default (none) would apply.
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == f"{TIMEOUT_MS}ms"
        assert client.get("/movies").status_code == 200
        with movie_locked(cluster):
            started = time.monotonic()
            response = client.get("/movies")
            _assert_cancelled(response, time.monotonic() - started)
        assert client.get("/movies").status_code == 200
    finally:
        _close(application)


def test_statement_timeout_on_the_replica_is_not_tried_again_on_the_primary(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    application = _app(
        database_url=cluster.primary_pooler.url("movies", USER),
        database_read_url=cluster.replica_pooler.url("movies", USER),
        statement_timeout_ms=TIMEOUT_MS,
    )
    client = application.test_client()
    try:
        assert client.get("/movies").status_code == 200
        caplog.clear()
        with movie_locked(cluster, on_replica=True):
            for path in ("/movies", "/movies/1"):
                application.extensions["movies.caching"].versions.expire()
                started = time.monotonic()
                response = client.get(path)
                _assert_cancelled(response, time.monotonic() - started)
        assert "reading from the primary" not in caplog.text
    finally:
        _close(application)
