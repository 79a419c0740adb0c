"""Read/write routing on a real primary and streaming replica (DATABASE_READ_URL).

The two servers come from Debian's PostgreSQL binaries where they are installed (15 here; the
rest of the suite runs on pgserver's 16, so the schema is checked on both), else from pgserver's,
made with initdb and
`pg_basebackup -R` in a temporary folder on free ports (scale/pg_servers.py). If they cannot be
started the tests fail, they do not skip.

The replica's replay is paused to make it lag on purpose: a read that reaches it then cannot see
a movie just written, which tells which server answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pg_servers
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from movies.api.connection import db, get_connection, read_engine
from movies.api.routing import REPLICA_BIND, WRITE_LSN_COOKIE
from movies.app import create_app
from movies.config import Settings
from movies.db import create_engine
from movies.prepared import PREPARED_OPTION, fetch_all

SECRET = "replica-test-key"
TOKENS = ("replica-token",)
NO_RATE_LIMITS = {"rate_limit_reads": "", "rate_limit_writes": ""}
AUTH = {"Authorization": f"Bearer {TOKENS[0]}"}
MOVIE = {"title": "Read your writes", "year": 2001, "genres": ["Drama"]}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(primary URL, replica URL) of database `movies` on a primary and its streaming replica."""
    folder = tmp_path_factory.mktemp("replication")
    primary = pg_servers.init_primary(folder, pg_servers.free_port(), {"fsync": "off"})
    replica = None
    try:
        admin = create_engine(primary.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE movies")
        admin.dispose()
        replica = pg_servers.init_replica(primary, folder, "replica", pg_servers.free_port())
        yield primary.url("movies"), replica.url("movies")
    finally:
        for server in (replica, primary):
            if server is not None:
                pg_servers.stop(server, "immediate")


@pytest.fixture(scope="module")
def replica_app(servers: tuple[str, str]) -> Iterator[Flask]:
    primary_url, replica_url = servers
    settings = Settings(
        database_url=primary_url,
        database_read_url=replica_url,
        secret_key=SECRET,
        api_tokens=TOKENS,
        response_cache_mb=0,
        **NO_RATE_LIMITS,
    )
    application = create_app(settings)
    with application.app_context():
        primary_lsn = _current_lsn(db.engine)
    # The schema was applied on the primary: wait until the replica has it too.
    pg_servers.wait_for_replay(primary_lsn, replica_url)
    yield application
    _close(application)


def _close(application: Flask) -> None:
    with application.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def paused_replica(replica_app: Flask, servers: tuple[str, str]) -> Iterator[sa.Engine]:
    """The replica with WAL replay paused for the test (resumed and caught up afterwards)."""
    primary = create_engine(servers[0], isolation_level="AUTOCOMMIT")
    replica = create_engine(servers[1], isolation_level="AUTOCOMMIT")
    with replica.connect() as conn:
        conn.exec_driver_sql("SELECT pg_wal_replay_pause()")
    yield replica
    with replica.connect() as conn:
        conn.exec_driver_sql("SELECT pg_wal_replay_resume()")
    pg_servers.wait_for_replay(_current_lsn(primary), servers[1])
    primary.dispose()
    replica.dispose()


def _current_lsn(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar()


def _create(client: FlaskClient) -> str:
    response = client.post("/movies", json=MOVIE, headers=AUTH)
    assert response.status_code == 201, response.json
    return response.headers["Location"]


def test_get_reads_from_the_replica(replica_app: Flask, paused_replica: sa.Engine) -> None:
    location = _create(replica_app.test_client())
    # Another client (no cookie) reads from the replica, which has not replayed the insert yet.
    assert replica_app.test_client().get(location).status_code == 404


def test_post_writes_to_the_primary(
    replica_app: Flask, paused_replica: sa.Engine, servers: tuple[str, str]
) -> None:
    location = _create(replica_app.test_client())
    primary = create_engine(servers[0])
    with primary.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT count(*) FROM movie WHERE id = %(id)s", {"id": location.rsplit("/", 1)[1]}
        ).scalar()
    primary.dispose()
    assert found == 1


def test_writer_reads_its_write_at_once_while_the_replica_lags(
    replica_app: Flask, paused_replica: sa.Engine
) -> None:
    client = replica_app.test_client()
    location = _create(client)
    assert client.get_cookie(WRITE_LSN_COOKIE) is not None
    response = client.get(location)
    assert response.status_code == 200
    assert response.json["title"] == MOVIE["title"]
    listed = client.get("/movies", query_string={"q": MOVIE["title"], "limit": 100}).json
    assert location.rsplit("/", 1)[1] in [m["id"] for m in listed["items"]]


def test_writer_reads_from_the_replica_once_it_has_replayed(
    replica_app: Flask, servers: tuple[str, str]
) -> None:
    client = replica_app.test_client()
    _create(client)
    with replica_app.app_context():
        primary_lsn = _current_lsn(db.engine)
    pg_servers.wait_for_replay(primary_lsn, servers[1])
    cookie = client.get_cookie(WRITE_LSN_COOKIE)
    with replica_app.test_request_context(headers={"Cookie": f"{cookie.key}={cookie.value}"}):
        assert get_connection().engine is db.engines[REPLICA_BIND]


def test_forged_write_cookie_is_ignored(replica_app: Flask, paused_replica: sa.Engine) -> None:
    location = _create(replica_app.test_client())
    reader = replica_app.test_client()
    reader.set_cookie(WRITE_LSN_COOKIE, "FFFFFFFF/FFFFFFFF")
    assert reader.get(location).status_code == 404


def test_write_cookie_signed_with_another_key_is_ignored(
    replica_app: Flask, paused_replica: sa.Engine, servers: tuple[str, str]
) -> None:
    writer = replica_app.test_client()
    location = _create(writer)
    other = create_app(
        Settings(
            database_url=servers[0],
            database_read_url=servers[1],
            secret_key="another-key",
            response_cache_mb=0,
            **NO_RATE_LIMITS,
        )
    )
    try:
        reader = other.test_client()
        reader.set_cookie(WRITE_LSN_COOKIE, writer.get_cookie(WRITE_LSN_COOKIE).value)
        assert reader.get(location).status_code == 404
    finally:
        _close(other)


def test_without_read_url_reads_and_writes_share_the_primary(servers: tuple[str, str]) -> None:
    application = create_app(
        Settings(database_url=servers[0], secret_key=SECRET, api_tokens=TOKENS, **NO_RATE_LIMITS)
    )
    try:
        client = application.test_client()
        location = _create(client)
        assert client.get_cookie(WRITE_LSN_COOKIE) is None
        assert client.get(location).status_code == 200
        with application.app_context():
            assert REPLICA_BIND not in db.engines
            assert read_engine() is db.engine
    finally:
        _close(application)


def test_prepared_statements_off_sends_plain_sql(servers: tuple[str, str]) -> None:
    engine = create_engine(servers[0], execution_options={PREPARED_OPTION: False})
    with engine.connect() as conn:
        for _ in range(3):
            assert fetch_all(conn, "SELECT %(n)s::int", {"n": 1}, bound=("n",)) == [(1,)]
        prepared = conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar()
    engine.dispose()
    assert prepared == 0


def test_prepared_statements_on_prepare_repeated_sql(servers: tuple[str, str]) -> None:
    engine = create_engine(servers[0])
    with engine.connect() as conn:
        for _ in range(3):
            assert fetch_all(conn, "SELECT %(n)s::int", {"n": 1}, bound=("n",)) == [(1,)]
        prepared = conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar()
    engine.dispose()
    assert prepared == 1


def test_schema_on_the_replica_matches_the_primary(
    replica_app: Flask, servers: tuple[str, str]
) -> None:
    tables = (
        "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind IN ('r', 'p')"
    )
    found = []
    for url in servers:
        engine = create_engine(url)
        with engine.connect() as conn:
            found.append(conn.exec_driver_sql(tables).scalar())
        engine.dispose()
    assert found[0] == found[1]
    assert "movie" in found[0]


def test_settings_read_the_replica_url_and_prepared_switch() -> None:
    settings = Settings.from_env(
        {"DATABASE_READ_URL": " postgresql://r/movies ", "MOVIES_PREPARED_STATEMENTS": "off"}
    )
    assert settings.database_read_url == "postgresql://r/movies"
    assert settings.prepared_statements is False
    assert Settings.from_env({}).prepared_statements is True
    assert Settings.from_env({}).database_read_url is None


def test_unreachable_replica_sends_reads_to_the_primary(
    servers: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    nothing_listens = f"postgresql://postgres@127.0.0.1:{pg_servers.free_port()}/movies"
    application = create_app(
        Settings(
            database_url=servers[0],
            database_read_url=nothing_listens,
            secret_key=SECRET,
            api_tokens=TOKENS,
            db_connect_timeout_s=1,
            **NO_RATE_LIMITS,
        )
    )
    try:
        client = application.test_client()
        location = _create(client)
        assert application.test_client().get(location).status_code == 200
        assert "read replica unreachable, reading from the primary" in caplog.text
    finally:
        _close(application)


def _exported_ids(application: Flask) -> list[str]:
    response = application.test_client().get(
        "/movies/export", query_string={"format": "ndjson", "q": MOVIE["title"]}
    )
    assert response.status_code == 200
    return [json.loads(line)["id"] for line in response.get_data(as_text=True).splitlines()]


def test_export_reads_from_the_replica_by_default(
    replica_app: Flask, paused_replica: sa.Engine
) -> None:
    location = _create(replica_app.test_client())
    assert location.rsplit("/", 1)[1] not in _exported_ids(replica_app)


def test_export_reads_from_database_export_url(
    servers: tuple[str, str], paused_replica: sa.Engine
) -> None:
    # The export URL is the primary here: it has the movie the paused replica has not replayed.
    application = create_app(
        Settings(
            database_url=servers[0],
            database_read_url=servers[1],
            database_export_url=servers[0],
            secret_key=SECRET,
            api_tokens=TOKENS,
            response_cache_mb=0,
            **NO_RATE_LIMITS,
        )
    )
    try:
        location = _create(application.test_client())
        assert location.rsplit("/", 1)[1] in _exported_ids(application)
    finally:
        _close(application)
