"""Least privilege: what the movies_api and movies_loader roles may and may not do.

Each test works in a fresh database (schema applied by the superuser, as the compose database's
init scripts do) and switches to a role with SET ROLE, so the checks are PostgreSQL's own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from movies import schema
from movies.config import Settings
from movies.db import create_engine

INSUFFICIENT_PRIVILEGE = "42501"

SEED = """
INSERT INTO movie_imdb (id, source, title, year, rating, votes, genres)
VALUES ('tt0000001', 'imdb', 'NA', 1999, 7.5, 10, '{Drama}'),
       ('tt12345678', 'imdb', 'A "bare" quote', NULL, NULL, NULL, '{}');
INSERT INTO movie_genre_imdb (movie_id, source, genre_id)
SELECT 'tt0000001', 'imdb', id FROM genre WHERE name = 'Drama';
INSERT INTO dataset_load (source, rows_read, movies, rated_movies, genre_links, skipped_rows,
                          seconds)
VALUES ('test', 2, 2, 1, 1, 0, 0.1);
"""


def role_engine(url: str, role: str) -> sa.Engine:
    """An engine whose every connection runs as `role` (SET ROLE, committed at connect)."""
    engine = create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def set_role(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {role}")
        dbapi_connection.commit()

    return engine


@pytest.fixture
def seeded_url(database_url: str) -> str:
    admin = create_engine(database_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(SEED)
    admin.dispose()
    return database_url


@pytest.fixture
def as_role(seeded_url: str) -> Iterator[Callable[[str], sa.Engine]]:
    engines: list[sa.Engine] = []

    def make(role: str) -> sa.Engine:
        engines.append(role_engine(seeded_url, role))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def assert_denied(engine: sa.Engine, statement: str) -> None:
    with pytest.raises(sa.exc.ProgrammingError) as caught, engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert caught.value.orig.pgcode == INSUFFICIENT_PRIVILEGE, caught.value


def test_connections_really_run_as_the_role(as_role: Callable[[str], sa.Engine]) -> None:
    with as_role("movies_api").connect() as conn:
        assert conn.exec_driver_sql("SELECT current_user").scalar_one() == "movies_api"


def test_api_role_reads_everything_it_serves(as_role: Callable[[str], sa.Engine]) -> None:
    with as_role("movies_api").connect() as conn:
        titles = conn.exec_driver_sql("SELECT title FROM movie ORDER BY id").scalars().all()
        assert titles == ["NA", 'A "bare" quote']
        assert conn.exec_driver_sql("SELECT count(*) FROM movie_imdb").scalar_one() == 2
        assert conn.exec_driver_sql("SELECT count(*) FROM movie_genre").scalar_one() == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM genre").scalar_one() == 28
        assert conn.exec_driver_sql("SELECT movies FROM dataset_load").scalar_one() == 2


def test_api_role_inserts_user_movies_and_their_genres(
    as_role: Callable[[str], sa.Engine],
) -> None:
    with as_role("movies_api").begin() as conn:
        new_id = conn.exec_driver_sql(
            "INSERT INTO movie_user (title, genres) VALUES ('Mine', '{Drama}') RETURNING id"
        ).scalar_one()
        conn.exec_driver_sql(
            "INSERT INTO movie_genre_user (movie_id, genre_id) "
            f"SELECT '{new_id}', id FROM genre WHERE name = 'Drama'"
        )
    with as_role("movies_api").connect() as conn:
        row = conn.exec_driver_sql(f"SELECT source, title FROM movie WHERE id = '{new_id}'").one()
    assert new_id.startswith("um") and tuple(row) == ("user", "Mine")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO movie_imdb (id, source, title) VALUES ('tt9999999', 'imdb', 'Forged')",
        "INSERT INTO movie (id, source, title) VALUES ('tt9999999', 'imdb', 'Forged')",
        "INSERT INTO movie_genre_imdb (movie_id, source, genre_id) VALUES ('tt0000001', 'imdb', 1)",
        "INSERT INTO genre (name) VALUES ('Forged')",
        "INSERT INTO dataset_load (source, rows_read, movies, rated_movies, genre_links, "
        "skipped_rows, seconds) VALUES ('x', 0, 0, 0, 0, 0, 0)",
        "UPDATE movie_imdb SET title = 'Defaced'",
        "UPDATE movie SET title = 'Defaced'",
        "UPDATE movie_user SET title = 'Defaced'",
        "DELETE FROM movie_imdb",
        "DELETE FROM movie",
        "DELETE FROM movie_user",
        "DELETE FROM movie_genre_imdb",
        "TRUNCATE movie_imdb",
        "TRUNCATE movie",
        "TRUNCATE movie_genre",
        "DROP TABLE movie_imdb",
        "DROP TABLE movie CASCADE",
        "ALTER TABLE movie_imdb ADD COLUMN defaced integer",
        "ALTER TABLE movie DETACH PARTITION movie_imdb",
        "ALTER TABLE movie_user DISABLE TRIGGER ALL",
        "CREATE TABLE intruder (x integer)",
        "CREATE INDEX intruder_idx ON movie_imdb (votes)",
        "SELECT setval('movie_user_number', 1)",
    ],
)
def test_api_role_cannot_touch_imdb_data_or_the_schema(
    as_role: Callable[[str], sa.Engine], statement: str
) -> None:
    assert_denied(as_role("movies_api"), statement)


def test_api_role_leaves_an_up_to_date_schema_alone(as_role: Callable[[str], sa.Engine]) -> None:
    assert schema.apply(as_role("movies_api")) is False


@pytest.fixture
def seeded_legacy_url(make_legacy_database: Callable[[], str]) -> str:
    """A database made before numbered migrations (see tests/conftest.py), seeded."""
    url = make_legacy_database()
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(SEED)
    admin.dispose()
    return url


def recorded_versions(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        if conn.exec_driver_sql("SELECT to_regclass('schema_migration')").scalar() is None:
            return []
        versions = conn.exec_driver_sql("SELECT version FROM schema_migration ORDER BY 1")
        return versions.scalars().all()


def test_api_role_cannot_migrate(seeded_legacy_url: str) -> None:
    api = role_engine(seeded_legacy_url, "movies_api")
    try:
        with pytest.raises(sa.exc.ProgrammingError) as caught:
            schema.apply(api)
        assert caught.value.orig.pgcode == INSUFFICIENT_PRIVILEGE
        assert recorded_versions(api) == []
    finally:
        api.dispose()


def test_loader_role_migrates_and_the_api_reads_the_record(seeded_legacy_url: str) -> None:
    """The compose upgrade: the loader, which owns the tables, applies what the API may not."""
    loader = role_engine(seeded_legacy_url, "movies_loader")
    api = role_engine(seeded_legacy_url, "movies_api")
    try:
        assert schema.apply(loader) is True
        expected = [migration.version for migration in schema.migrations()]
        assert recorded_versions(api) == expected
        assert schema.apply(api) is False
        with api.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM movie").scalar_one() == 2
            owner = conn.exec_driver_sql(
                "SELECT relowner::regrole::text FROM pg_class WHERE relname = 'schema_migration'"
            )
            assert owner.scalar_one() == "movies_loader"
        assert_denied(api, "DELETE FROM schema_migration")
    finally:
        loader.dispose()
        api.dispose()


def test_loader_role_applies_the_schema_again(as_role: Callable[[str], sa.Engine]) -> None:
    loader = as_role("movies_loader")
    assert schema.apply(loader) is False
    with loader.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM movie").scalar_one() == 2


def test_loader_role_swaps_partitions_and_api_reads_the_new_ones(
    as_role: Callable[[str], sa.Engine],
) -> None:
    """The loader's swap, by hand: staging tables beside the live ones, DETACH/ATTACH, DROP."""
    with as_role("movies_loader").begin() as conn:
        for table, like in (
            ("movie_imdb_next", "movie_imdb"),
            ("movie_genre_imdb_next", "movie_genre_imdb"),
        ):
            conn.exec_driver_sql(
                f"CREATE TABLE {table} (LIKE {like} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
        conn.exec_driver_sql(
            "INSERT INTO movie_imdb_next (id, source, title, genres) "
            "VALUES ('tt7654321', 'imdb', 'null', '{Comedy}')"
        )
        conn.exec_driver_sql(
            "INSERT INTO movie_genre_imdb_next (movie_id, source, genre_id) "
            "SELECT 'tt7654321', 'imdb', id FROM genre WHERE name = 'Comedy'"
        )
        for parent, live in (("movie", "movie_imdb"), ("movie_genre", "movie_genre_imdb")):
            conn.exec_driver_sql(f"ALTER TABLE {parent} DETACH PARTITION {live}")
            conn.exec_driver_sql(f"DROP TABLE {live}")
            conn.exec_driver_sql(f"ALTER TABLE {live}_next RENAME TO {live}")
            conn.exec_driver_sql(
                f"ALTER TABLE {parent} ATTACH PARTITION {live} FOR VALUES IN ('imdb')"
            )
        conn.exec_driver_sql("TRUNCATE dataset_load")
    api = as_role("movies_api")
    with api.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, title FROM movie").all() == [("tt7654321", "null")]
        # read directly too: the default privilege covers tables the loader creates
        assert conn.exec_driver_sql("SELECT id FROM movie_imdb").scalars().all() == ["tt7654321"]
        assert conn.exec_driver_sql("SELECT count(*) FROM movie_genre_imdb").scalar_one() == 1
    assert_denied(api, "DELETE FROM movie_imdb")
    assert_denied(api, "INSERT INTO movie_imdb (id, source, title) VALUES ('tt1', 'imdb', 'x')")


@pytest.fixture
def run_database_as(server_url: str, seeded_url: str) -> Iterator[Callable[[str], str]]:
    """Make every new connection to the seeded database run as a role; return its URL.

    A per-database default (ALTER ROLE ... IN DATABASE ... SET role), so code that builds its own
    engine from the URL (the app factory, the loader) runs as the role, as in compose.
    """
    name = sa.make_url(seeded_url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")

    def run_as(role: str) -> str:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER ROLE SESSION_USER IN DATABASE "{name}" SET role = {role}')
        return seeded_url

    yield run_as
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER ROLE SESSION_USER IN DATABASE "{name}" RESET role')
    admin.dispose()


def test_api_serves_and_creates_movies_as_its_role(
    run_database_as: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    from movies.app import create_app

    url = run_database_as("movies_api")
    caplog.set_level(logging.INFO, logger="movies.app")
    app = create_app(Settings(database_url=url, api_tokens=("secret-token",)))
    try:
        assert "Traceback" not in caplog.text
        with app.app_context():
            engine = app.extensions["sqlalchemy"].engine
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT current_user").scalar_one() == "movies_api"
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        listed = client.get("/movies?sort=title").get_json()["items"]
        assert [m["title"] for m in listed] == ['A "bare" quote', "NA"]
        created = client.post(
            "/movies",
            json={"title": "Made through the API", "genres": ["Drama"]},
            headers={"Authorization": "Bearer secret-token"},
        )
        assert created.status_code == 201, created.get_json()
        fetched = client.get(created.headers["Location"]).get_json()
        assert fetched["title"] == "Made through the API" and fetched["genres"] == ["Drama"]
    finally:
        with app.app_context():
            app.extensions["sqlalchemy"].engine.dispose()


def test_loader_runs_a_full_load_as_its_role(
    run_database_as: Callable[[str], str], tmp_path: Path
) -> None:
    from movies.loader import run_load
    from movies.synthetic import MANIFEST, generate

    generate(tmp_path / "files", scale=0.001, seed=7)
    expected = json.loads((tmp_path / "files" / MANIFEST).read_text())
    url = run_database_as("movies_loader")
    run_load(url, str(tmp_path / "files"), downloads=tmp_path / "downloads", force=True)

    api = role_engine(url, "movies_api")
    try:
        with api.connect() as conn:
            movies = conn.exec_driver_sql("SELECT count(*) FROM movie WHERE source = 'imdb'")
            assert movies.scalar_one() == expected["loadable_movies"]
            # the swapped-in partitions: owned by the loader, readable by the API directly
            owners = conn.exec_driver_sql(
                "SELECT relname, relowner::regrole::text FROM pg_class "
                "WHERE relname IN ('movie_imdb', 'movie_genre_imdb') ORDER BY relname"
            ).all()
            assert owners == [
                ("movie_genre_imdb", "movies_loader"),
                ("movie_imdb", "movies_loader"),
            ]
            direct = conn.exec_driver_sql("SELECT count(*) FROM movie_imdb").scalar_one()
            assert direct == expected["loadable_movies"]
            assert conn.exec_driver_sql("SELECT count(*) FROM dataset_load").scalar_one() == 2
        assert_denied(api, "DELETE FROM movie_imdb")
        assert_denied(api, "TRUNCATE movie_genre_imdb")
    finally:
        api.dispose()
