"""The read path's prepared statements: what is prepared, when, and recovery when they vanish."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from movies import prepared, repository
from movies.prepared import fetch_all
from movies.query import MovieQuery, page_sql, parse_sort

# The genre vocabulary (28 names, ids 1..28) is in every fresh database: no seeding needed.
GENRES_AFTER = (
    "SELECT name FROM genre WHERE name LIKE %(pattern)s AND id > %(after)s ORDER BY id LIMIT %(n)s"
)


@pytest.fixture
def conn(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


def statements(conn: sa.Connection) -> list[tuple[str, str]]:
    """(name, parameter types) of the session's prepared statements, by name."""
    cursor = conn.connection.cursor()
    cursor.execute("SELECT name, parameter_types::text FROM pg_prepared_statements ORDER BY name")
    return cursor.fetchall()


def genres_after(conn: sa.Connection, pattern: str, after: int, n: int = 50) -> list[str]:
    rows = fetch_all(conn, GENRES_AFTER, {"pattern": pattern, "after": after, "n": n}, ["after"])
    return [name for (name,) in rows]


def test_statement_is_prepared_on_second_run_with_only_bound_values_as_parameters(
    conn: sa.Connection,
) -> None:
    first = genres_after(conn, "%", 0)
    assert len(first) == 28 and first[0] == "Action"
    assert statements(conn) == [], "a statement run once is not prepared"
    assert genres_after(conn, "%", 0) == first
    assert statements(conn) == [("movies_1", "{smallint}")]
    # Another keyset value: the same statement. Another filter value: another statement text.
    assert genres_after(conn, "%", 25) == ["Thriller", "War", "Western"]
    assert genres_after(conn, "%", 25) == ["Thriller", "War", "Western"]
    assert [name for name, _ in statements(conn)] == ["movies_1"]
    assert genres_after(conn, "S%", 0) == ["Sci-Fi", "Short", "Sport"]
    assert genres_after(conn, "S%", 0) == ["Sci-Fi", "Short", "Sport"]
    assert [name for name, _ in statements(conn)] == ["movies_1", "movies_2"]


def test_literal_values_with_quotes_and_percent_signs_stay_values(conn: sa.Connection) -> None:
    for pattern in ["%'; DROP TABLE genre; --", "Film-%", "100%", "%%"]:
        expected = genres_after(conn, pattern, 0)
        assert genres_after(conn, pattern, 0) == expected, pattern
    assert genres_after(conn, "Film-%", 0) == ["Film-Noir"]
    assert genres_after(conn, "%'; DROP TABLE genre; --", 0) == []
    assert len(genres_after(conn, "%%", 0)) == 28


def test_unused_bound_parameter_is_no_statement_parameter(conn: sa.Connection) -> None:
    sql = "SELECT name FROM genre WHERE id = %(id)s"
    for _ in range(3):
        assert fetch_all(conn, sql, {"id": 6, "unused": None}, ["unused", "id"]) == [("Comedy",)]
    assert statements(conn) == [("movies_1", "{smallint}")]


def test_least_recently_used_statement_is_deallocated(
    conn: sa.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepared, "MAX_PREPARED", 2)
    for pattern in ["A%", "B%", "A%", "C%"]:  # A is used again before C arrives: B goes
        genres_after(conn, pattern, 0)
        genres_after(conn, pattern, 0)
    assert len(statements(conn)) == 2
    assert genres_after(conn, "A%", 0) == ["Action", "Adult", "Adventure", "Animation"]
    assert genres_after(conn, "C%", 0) == ["Comedy", "Crime"]
    assert genres_after(conn, "B%", 0) == ["Biography"]


def test_statements_dropped_by_the_server_are_prepared_again(conn: sa.Connection) -> None:
    genres_after(conn, "%", 0)
    genres_after(conn, "%", 0)
    conn.connection.cursor().execute("DEALLOCATE ALL")
    assert genres_after(conn, "%", 20) == [
        "Romance", "Sci-Fi", "Short", "Sport", "Talk-Show", "Thriller", "War", "Western",
    ]  # fmt: skip
    genres_after(conn, "%", 0)
    assert len(statements(conn)) == 1


def test_failed_execution_keeps_the_statement_usable(conn: sa.Connection) -> None:
    sql = "SELECT 10 / %(divisor)s"
    for divisor in (5, 2):
        assert fetch_all(conn, sql, {"divisor": divisor}, ["divisor"]) == [(10 // divisor,)]
    with pytest.raises(sa.exc.DataError) as raised:
        fetch_all(conn, sql, {"divisor": 0}, ["divisor"])
    assert raised.value.orig.pgcode == "22012"  # division_by_zero, raised as SQLAlchemy's error
    assert fetch_all(conn, sql, {"divisor": 10}, ["divisor"]) == [(1,)]
    assert len(statements(conn)) == 1


def test_new_connection_starts_with_no_statements(engine: sa.Engine) -> None:
    with engine.connect() as first:
        genres_after(first, "%", 0)
        genres_after(first, "%", 0)
        first.invalidate()
    with engine.connect() as second:
        assert statements(second) == []
        assert len(genres_after(second, "%", 0)) == 28


def test_prepared_read_waiting_for_a_partition_swap_sees_the_swapped_in_rows(
    conn: sa.Connection, engine: sa.Engine
) -> None:
    """A reader blocked by a load's swap must see the new rows, not an empty new partition."""
    with engine.begin() as setup:
        setup.exec_driver_sql(
            "INSERT INTO movie_imdb (id, source, title) VALUES ('tt0000001', 'imdb', 'Old')"
        )
    by_id = "SELECT title FROM movie WHERE id = %(id)s"
    for _ in range(3):  # prepared from the second run on
        assert fetch_all(conn, by_id, {"id": "tt0000001"}, ["id"]) == [("Old",)]
    assert statements(conn), "the read under test must be a prepared statement"

    loader = engine.raw_connection()
    swap = loader.cursor()
    swap.execute(
        "CREATE TABLE movie_imdb_next (LIKE movie_imdb INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
        "INSERT INTO movie_imdb_next (id, source, title) VALUES ('tt0000001', 'imdb', 'New');"
        "ALTER TABLE movie DETACH PARTITION movie_imdb; DROP TABLE movie_imdb;"
        "ALTER TABLE movie_imdb_next RENAME TO movie_imdb;"
        "ALTER TABLE movie ATTACH PARTITION movie_imdb FOR VALUES IN ('imdb')"
    )
    seen: list[object] = []
    reader = threading.Thread(
        target=lambda: seen.append(fetch_all(conn, by_id, {"id": "tt0000001"}, ["id"]))
    )
    reader.start()
    time.sleep(0.5)  # the reader now waits for the swap's lock
    assert seen == [], "the read should be waiting for the swap"
    loader.commit()
    loader.close()
    reader.join(timeout=30)
    assert seen == [[("New",)]]


def test_api_page_is_prepared_with_its_filters_written_in_and_the_cursor_as_parameters(
    conn: sa.Connection,
) -> None:
    """The statement production prepares for page 2 of a filtered list: genre and bounds are
    literals of its text (a plan made for them), the cursor's vote count and id are its only
    parameters, and the few-valued rating of a cursor would be a literal too."""
    conn.exec_driver_sql(
        "INSERT INTO movie_imdb (id, source, title, rating, votes, genres) VALUES "
        "('tt0000001', 'imdb', 'A', 7.5, 10, '{Drama}'), ('tt0000002', 'imdb', 'B', 8.0, 20, "
        "'{Drama}'), ('tt0000003', 'imdb', 'C', 9.0, 30, '{Comedy}')"
    )
    query = MovieQuery(
        genres=("Drama",), ranges=(("rating_gte", Decimal(7)),), sort=parse_sort("-votes"), limit=1
    )
    first, after = repository.list_movies(conn, query)
    for _ in range(2):  # prepared from the second run on
        rows, _ = repository.list_movies(conn, query, after)
    assert [row[0] for row in first + rows] == ["tt0000002", "tt0000001"]
    cursor = conn.connection.cursor()
    cursor.execute("SELECT statement, parameter_types::text FROM pg_prepared_statements")
    [(text, types)] = cursor.fetchall()
    assert "ARRAY['Drama']" in text and "movie.rating >= 7" in text and "LIMIT 2" in text
    assert "(movie.votes, movie.id) < ($1, $2)" in text
    assert types == "{integer,text}"
    by_rating = MovieQuery(sort=parse_sort("-rating"), limit=1)
    _, after = repository.list_movies(conn, by_rating)
    sql = page_sql(by_rating, after)
    assert sql.bound == ("after_id",) and "after_0" in sql.params, "rating: a literal"
