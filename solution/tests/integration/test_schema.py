"""The schema on every path: a new database, migrations of an existing one, concurrent appliers.

"Legacy" databases are made by the init scripts of commit 1f498af (tests/fixtures), the last
schema before numbered migrations: every database deployed until then looks like one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from movies import schema
from movies.db import create_engine

# Everything a migration could make differ between two databases, data aside: relations with
# their owner, privileges and partition bounds, columns in order, defaults, indexes,
# constraints, sequences, functions and default privileges.
DESCRIBE_SCHEMA = """
SELECT 'relation', c.relname, concat_ws(' ', c.relkind, c.relowner::regrole, c.relacl,
       pg_get_expr(c.relpartbound, c.oid), pg_get_partkeydef(c.oid))
FROM pg_class AS c WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'column', concat_ws('.', c.relname, a.attnum, a.attname),
       concat_ws(' ', format_type(a.atttypid, a.atttypmod), a.attnotnull, co.collname,
                 a.attidentity, pg_get_expr(d.adbin, d.adrelid))
FROM pg_attribute AS a
JOIN pg_class AS c ON c.oid = a.attrelid
LEFT JOIN pg_collation AS co ON co.oid = a.attcollation
LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index', c.relname, pg_get_indexdef(c.oid)
FROM pg_class AS c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('i', 'I')
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'sequence', seqrelid::regclass::text,
       concat_ws(' ', format_type(seqtypid, NULL), seqstart, seqincrement, seqmin, seqmax, seqcycle)
FROM pg_sequence
UNION ALL
SELECT 'function', p.oid::regprocedure::text, pg_get_functiondef(p.oid)
FROM pg_proc AS p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'default privilege', defaclrole::regrole::text, defaclacl::text FROM pg_default_acl
ORDER BY 1, 2, 3
"""

LEGACY_DATA = """
INSERT INTO movie_imdb (id, source, title, year, rating, votes, genres, search_title, score)
VALUES ('tt0000001', 'imdb', 'Old', 1994, 7.5, 100, '{Drama}', 'old', 7.1);
INSERT INTO movie_genre_imdb (movie_id, source, genre_id, year, rating, genre_bits)
SELECT 'tt0000001', 'imdb', id, 1994, 7.5, 1 << id FROM genre WHERE name = 'Drama';
INSERT INTO movie_user (title, genres) VALUES ('Mine', '{Drama}');
INSERT INTO dataset_load (source, rows_read, movies, rated_movies, genre_links, skipped_rows,
                          seconds, mean_rating)
VALUES ('test', 1, 1, 1, 1, 0, 0.1, 7.5);
"""


def describe(url: str) -> list[tuple[str, str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(DESCRIBE_SCHEMA)]
    finally:
        engine.dispose()


def recorded(engine: sa.Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT version, name FROM schema_migration ORDER BY 1"))
        return [tuple(row) for row in rows]


def every_migration() -> list[tuple[int, str]]:
    return [(migration.version, migration.name) for migration in schema.migrations()]


SHIPPED_MIGRATIONS = schema.migrations()


def with_extra_migrations(monkeypatch: pytest.MonkeyPatch, *extra: schema.Migration) -> None:
    """Make `extra` the newest migrations, as if the code shipped them."""
    monkeypatch.setattr(schema, "migrations", lambda: SHIPPED_MIGRATIONS + list(extra))


@pytest.fixture
def legacy_url(make_legacy_database: Callable[[], str]) -> str:
    return make_legacy_database()


@pytest.fixture
def legacy(legacy_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(legacy_url)
    yield engine
    engine.dispose()


def test_migration_files_are_numbered_from_one_without_gaps() -> None:
    versions = [version for version, _name in every_migration()]
    assert versions == list(range(1, len(versions) + 1))
    assert every_migration()[0] == (1, "baseline")


def test_new_database_is_recorded_at_the_latest_version(engine: sa.Engine) -> None:
    assert recorded(engine) == every_migration()
    assert schema.apply(engine) is False


def test_new_database_is_created_from_the_definition_alone(
    make_empty_database: Callable[[], str],
) -> None:
    url = make_empty_database()
    engine = create_engine(url)
    try:
        assert schema.apply(engine) is True
        assert schema.apply(engine) is False
        with engine.connect() as conn:
            names = conn.execute(sa.text("SELECT name FROM genre ORDER BY name")).scalars().all()
    finally:
        engine.dispose()
    assert len(names) == 28
    assert "Film-Noir" in names and "Sci-Fi" in names


def test_compose_init_scripts_make_an_up_to_date_database(
    make_empty_database: Callable[[], str],
) -> None:
    """The db container runs the top-level scripts of sql-scripts/, each on its own (psql -f);
    the migrations/ folder is skipped. The API then finds nothing to do (it may do nothing)."""
    url = make_empty_database()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        for script in schema.init_scripts():
            with engine.connect() as conn:
                conn.connection.cursor().execute(script.sql)
        assert recorded(engine) == every_migration()
        api = create_engine(url, connect_args={"options": "-c role=movies_api"})
        try:
            assert schema.apply(api) is False
        finally:
            api.dispose()
    finally:
        engine.dispose()


def test_user_movie_ids_never_look_like_tconsts(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        new_id = conn.execute(
            sa.text("INSERT INTO movie_user (title) VALUES ('Mine') RETURNING id")
        ).scalar_one()
    assert new_id.startswith("um") and not new_id.startswith("tt")


def test_up_to_date_schema_is_not_reapplied_behind_a_long_reader(engine: sa.Engine) -> None:
    """A long reader of `movie` (an export) must not stall the API's start or a load."""
    reader = engine.connect()
    try:
        reader.execute(sa.text("SELECT count(*) FROM movie"))  # holds ACCESS SHARE until rollback
        starter = sa.create_engine(engine.url, connect_args={"options": "-c lock_timeout=500"})
        try:
            assert schema.apply(starter) is False
        finally:
            starter.dispose()
    finally:
        reader.rollback()
        reader.close()


def test_a_new_migration_is_applied_once_and_recorded(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = every_migration()
    latest = shipped[-1][0]
    with_extra_migrations(
        monkeypatch,
        schema.Migration(latest + 1, "note", "COMMENT ON TABLE genre IS 'the names';"),
    )
    assert schema.apply(engine) is True
    assert schema.apply(engine) is False
    assert recorded(engine) == shipped + [(latest + 1, "note")]
    with engine.connect() as conn:
        comment = conn.execute(sa.text("SELECT obj_description('genre'::regclass)")).scalar()
    assert comment == "the names"


def test_migrations_may_contain_percent_signs(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    latest = every_migration()[-1][0]
    with_extra_migrations(
        monkeypatch,
        schema.Migration(latest + 1, "percent", "-- 100 % sure\nCOMMENT ON TABLE genre IS '1 %';"),
    )
    assert schema.apply(engine) is True
    with engine.connect() as conn:
        comment = conn.execute(sa.text("SELECT obj_description('genre'::regclass)")).scalar()
    assert comment == "1 %"


def test_a_failing_migration_is_rolled_back_and_those_before_it_stay(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = every_migration()
    latest = shipped[-1][0]
    first = schema.Migration(latest + 1, "first", "CREATE TABLE first_step (x integer);")
    failing = schema.Migration(
        latest + 2, "second", "CREATE TABLE second_step (x integer); SELECT 1 / 0;"
    )
    with_extra_migrations(monkeypatch, first, failing)
    with pytest.raises(sa.exc.DataError, match="division by zero"):
        schema.apply(engine)
    assert recorded(engine) == shipped + [(latest + 1, "first")]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('first_step')")).scalar() is not None
        assert conn.execute(sa.text("SELECT to_regclass('second_step')")).scalar() is None

    fixed = schema.Migration(latest + 2, "second", "CREATE TABLE second_step (x integer);")
    with_extra_migrations(monkeypatch, first, fixed)
    assert schema.apply(engine) is True
    assert recorded(engine) == shipped + [(latest + 1, "first"), (latest + 2, "second")]


def test_misnamed_migration_file_is_a_clear_error(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "7-add-things.sql").write_text("SELECT 1;")
    monkeypatch.setattr(schema, "_sql_folder", lambda: tmp_path)
    with pytest.raises(schema.MigrationFileError, match="7-add-things.sql: expected NNNN-name"):
        schema.migrations()


def test_legacy_database_is_upgraded_to_what_a_new_one_is(
    legacy_url: str, legacy: sa.Engine, database_url: str
) -> None:
    """The previous schema plus every migration equals the definition, table for table, with
    owners and grants; the data stay, and the digest table gives way to the recorded versions."""
    with legacy.begin() as conn:
        conn.exec_driver_sql(LEGACY_DATA)
    assert schema.apply(legacy) is True
    assert schema.apply(legacy) is False

    assert describe(legacy_url) == describe(database_url)
    assert recorded(legacy) == every_migration()
    with legacy.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('schema_state')")).scalar() is None
        movies = conn.execute(sa.text("SELECT id, title, score FROM movie ORDER BY id")).all()
        links = conn.execute(sa.text("SELECT count(*) FROM movie_genre")).scalar_one()
        loads = conn.execute(sa.text("SELECT mean_rating FROM dataset_load")).scalar_one()
    assert [tuple(m) for m in movies] == [
        ("tt0000001", "Old", Decimal("7.1000")),
        ("um0000001", "Mine", None),
    ]
    assert links == 1 and loads == 7.5


OLD_DESCENDING_INDEXES = {
    "movie_year_desc_idx": "year DESC NULLS LAST, id DESC",
    "movie_rating_desc_idx": "rating DESC NULLS LAST, id DESC",
    "movie_votes_desc_idx": "votes DESC NULLS LAST, id DESC",
    "movie_runtime_desc_idx": "runtime_minutes DESC NULLS LAST, id DESC",
    "movie_score_desc_idx": "score DESC NULLS LAST, id DESC",
}


def test_upgrade_drops_the_descending_sort_indexes(legacy: sa.Engine) -> None:
    """A database made by an earlier schema loses its descending indexes, partitions included:
    the ascending ones read backward serve those sorts, and a load rebuilds every index the live
    partition has."""

    def descending_indexes(table: str) -> set[str]:
        with legacy.connect() as conn:
            return set(
                conn.execute(
                    sa.text(
                        "SELECT indexrelid::regclass::text FROM pg_index "
                        "WHERE indrelid = CAST(:table AS regclass) "
                        "AND pg_get_indexdef(indexrelid) LIKE '%DESC%'"
                    ),
                    {"table": table},
                ).scalars()
            )

    with legacy.begin() as conn:
        for name, columns in OLD_DESCENDING_INDEXES.items():
            conn.execute(sa.text(f"CREATE INDEX {name} ON movie ({columns})"))
    assert descending_indexes("movie") == set(OLD_DESCENDING_INDEXES)
    assert len(descending_indexes("movie_imdb")) == len(OLD_DESCENDING_INDEXES)

    assert schema.apply(legacy) is True
    assert descending_indexes("movie") == set()
    assert descending_indexes("movie_imdb") == set()
    assert descending_indexes("movie_user") == set()


def test_upgrade_gives_existing_links_their_movies_keys_and_the_genre_sizes(
    legacy: sa.Engine,
) -> None:
    """A database made before the genre-year path: its links take their movies' year, rating,
    votes and runtime, no genre bits (-1), each genre its number of IMDb movies, in all and per
    year, so genre-and-year pages are right (and take the links' way) before any load."""
    with legacy.begin() as conn:
        # Dropping the columns drops the index on them.
        conn.execute(
            sa.text("ALTER TABLE movie_genre DROP COLUMN year, DROP COLUMN rating, DROP genre_bits")
        )
        conn.execute(
            sa.text(
                "INSERT INTO movie_imdb (id, source, title, year, rating, votes, runtime_minutes, "
                "genres) VALUES ('tt0000001', 'imdb', 'Old', 1994, 7.5, 120, 95, '{Drama}'), "
                "('tt0000002', 'imdb', 'Unrated', NULL, NULL, NULL, NULL, '{Drama}')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO movie_genre_imdb (movie_id, source, genre_id) "
                "SELECT id, 'imdb', (SELECT id FROM genre WHERE name = 'Drama') FROM movie_imdb"
            )
        )

    assert schema.apply(legacy) is True
    with legacy.connect() as conn:
        links = conn.execute(
            sa.text(
                "SELECT movie_id, year, rating, genre_bits, votes, runtime_minutes "
                "FROM movie_genre ORDER BY 1"
            )
        ).all()
        drama = conn.execute(sa.text("SELECT imdb_movies FROM genre WHERE name = 'Drama'"))
        assert drama.scalar_one() == 2
        per_year = conn.execute(
            sa.text(
                "SELECT name, year, y.imdb_movies FROM genre_year AS y "
                "JOIN genre ON genre.id = y.genre_id"
            )
        ).all()
        assert [tuple(row) for row in per_year] == [("Drama", 1994, 1)]
        index = conn.execute(sa.text("SELECT to_regclass('movie_genre_year_keys_idx')"))
        assert index.scalar() is not None
    # Bits unknown until the next load: -1 narrows nothing (every requested genre "may" be there).
    assert [tuple(link) for link in links] == [
        ("tt0000001", 1994, Decimal("7.5"), -1, 120, 95),
        ("tt0000002", None, None, -1, None, None),
    ]


def apply_all_at_once(url: str, appliers: int) -> list[bool | BaseException]:
    """Start `appliers` threads on schema.apply while the schema lock is held, let them all
    queue on it, then release it; return what each returned or raised."""
    results: list[bool | BaseException] = []
    holder = create_engine(url)
    engines = [create_engine(url) for _ in range(appliers)]

    def run(engine: sa.Engine) -> None:
        try:
            results.append(schema.apply(engine))
        except BaseException as exc:  # reported to the test, not lost in the thread
            results.append(exc)

    try:
        with holder.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": schema.SCHEMA_LOCK})
            threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            while waiting_for_the_lock(holder) < appliers and time.monotonic() < deadline:
                time.sleep(0.05)
            assert waiting_for_the_lock(holder) == appliers
        for thread in threads:
            thread.join(60)
    finally:
        for engine in [holder, *engines]:
            engine.dispose()
    return results


def waiting_for_the_lock(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = :id AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())"
            ),
            {"id": schema.SCHEMA_LOCK},
        ).scalar_one()


def test_concurrent_appliers_create_a_new_database_once(
    make_empty_database: Callable[[], str],
) -> None:
    url = make_empty_database()
    results = apply_all_at_once(url, appliers=3)
    assert sorted(results, key=str) == [False, False, True]
    engine = create_engine(url)
    try:
        assert recorded(engine) == every_migration()
    finally:
        engine.dispose()


def test_concurrent_appliers_migrate_a_legacy_database_once(
    legacy_url: str, legacy: sa.Engine, database_url: str
) -> None:
    results = apply_all_at_once(legacy_url, appliers=3)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert True in results and len(results) == 3
    assert recorded(legacy) == every_migration()
    assert describe(legacy_url) == describe(database_url)
