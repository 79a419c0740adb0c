"""Shared fixtures: a real PostgreSQL for the whole session (embedded unless DATABASE_URL is set).

Each fixture hands out a database, never a shared mutable one: `make_database()` creates a fresh
database with the schema applied, so loader tests can reload freely while API tests read a seeded
one. If PostgreSQL cannot be started the suite fails loudly; it never skips.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from movies import schema
from movies.db import create_engine
from movies.embedded import start_embedded, stop_embedded

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "imdb-real"
REPO = Path(__file__).resolve().parents[2]
LEGACY_SCHEMA = Path(__file__).resolve().parent / "fixtures" / "schema-1f498af"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--compose",
        action="store_true",
        help="run against the `db` service of docker-compose.yml, started with pytest-docker "
        "(needs a Docker engine); default: the embedded PostgreSQL or DATABASE_URL",
    )


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of the session's PostgreSQL server (its maintenance database)."""
    if request.config.getoption("--compose"):
        yield request.getfixturevalue("compose_server_url")
        return
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    # Not under pytest's basetemp: a second pytest run resets that folder's mode to 0700, which
    # would cut this server off from its own files.
    folder = Path(tempfile.mkdtemp(prefix="movies-test-pg-"))
    try:
        yield start_embedded(folder / "pgdata")
    finally:
        # Stopped before its folder goes: a server whose data directory is gone can no longer be
        # stopped by pg_ctl, and would outlive the run.
        stop_embedded(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)


# --compose: pytest-docker starts the compose `db` (settings from .env.example, a throwaway
# project removed with its volumes afterwards) and publishes it on a free localhost port.
@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    binary = Path(sys.executable).with_name("docker-compose")
    command = f'"{binary}"' if binary.exists() else "docker compose"
    env_file = REPO / ".env.example"
    return f'{command} --env-file "{env_file}"'


@pytest.fixture(scope="session")
def docker_compose_file() -> list[str]:
    return [str(REPO / "docker-compose.yml"), str(REPO / "solution/tests/deploy/compose.test.yml")]


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up --wait db"]


@pytest.fixture(scope="session")
def compose_server_url(docker_ip: str, docker_services) -> str:
    """URL of the compose database's superuser, on the port the test override publishes."""
    port = docker_services.port_for("db", 5432)
    settings = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    return f"postgresql://postgres:{settings['POSTGRES_PASSWORD']}@{docker_ip}:{port}/movies"


@pytest.fixture(scope="session")
def make_empty_database(server_url: str) -> Iterator[Callable[[], str]]:
    """Factory: create a new database without any schema; return its URL."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    counter = itertools.count(1)
    created: list[str] = []

    def make() -> str:
        name = f"movies_test_{os.getpid()}_{next(counter)}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING "UTF8"')
        created.append(name)
        return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def make_database(make_empty_database: Callable[[], str]) -> Callable[[], str]:
    """Factory: create a new, empty database with the schema applied; return its URL."""

    def make() -> str:
        url = make_empty_database()
        engine = create_engine(url)
        schema.apply(engine)
        engine.dispose()
        return url

    return make


@pytest.fixture(scope="session")
def make_legacy_database(make_empty_database: Callable[[], str]) -> Callable[[], str]:
    """Factory: a database made as before numbered migrations; return its URL.

    The init scripts of commit 1f498af (tests/fixtures/schema-1f498af), run the way that
    commit's `apply_schema` ran them: in one transaction, then their digest kept in
    `schema_state`.
    """

    def make() -> str:
        url = make_empty_database()
        with psycopg2.connect(url) as conn, conn.cursor() as cursor:  # commits at the end
            for script in sorted(LEGACY_SCHEMA.glob("*.sql")):
                cursor.execute(script.read_text(encoding="utf-8"))  # no parameters: % stays
            cursor.execute("INSERT INTO schema_state (digest) VALUES ('1f498af')")
        conn.close()
        return url

    return make


@pytest.fixture
def database_url(make_database: Callable[[], str]) -> str:
    """A fresh database with the schema and no data, for tests that write or load."""
    return make_database()


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on the fresh database of `database_url`."""
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared folder of real IMDb rows; tests that need it skip when it is absent."""
    if not (REAL_DATA / "title.basics.tsv.gz").exists():
        pytest.skip(f"real IMDb sample not present at {REAL_DATA}")
    return REAL_DATA
