"""The keyset predicate is an index condition: a deep page costs what the first page costs.

~100k movies from generate_series (NULLs and ties on every key), analysed, then EXPLAIN ANALYZE
of the statements the API runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from movies import prepared, repository
from movies import query as q
from movies.db import create_engine
from movies.query import genres

ROWS = 100_000

SEED_SQL = """
INSERT INTO movie_imdb
    (id, source, title, year, rating, votes, runtime_minutes, genres, is_adult, score)
SELECT 'tt' || lpad(i::text, 8, '0'), 'imdb', 'Title ' || (i % 5000),
       CASE WHEN i % 7 = 0 THEN NULL ELSE 1900 + i % 120 END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE ((i * 37) % 91 + 10) / 10.0 END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE i % 10000 END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE 60 + i % 120 END,
       CASE WHEN i % 3 = 0 THEN ARRAY['Action', 'Drama'] ELSE ARRAY['Comedy'] END,
       i % 50 = 0,
       CASE WHEN i % 4 = 0 THEN NULL ELSE ((i * 37) % 91 + 10) / 10.0 - (i % 997) / 10000.0 END
FROM generate_series(1, :rows) AS i
"""


# A rare genre: 150 more movies, titles spread among the others'.
RARE_SQL = """
INSERT INTO movie_imdb (id, source, title, year, rating, votes, genres, is_adult)
SELECT 'tt' || lpad((:rows + i)::text, 8, '0'), 'imdb', 'Title ' || (i * 33),
       1940 + i % 20, 5 + (i % 40) / 10.0, i, ARRAY['Film-Noir'], false
FROM generate_series(1, 150) AS i
"""

# The links as the loader writes them: the movie's year, rating, genre bits, votes and runtime
# repeated, genre sizes (in all and per year) set.
LINKS_SQL = """
INSERT INTO movie_genre_imdb (movie_id, source, genre_id, year, rating, genre_bits, votes,
                              runtime_minutes)
SELECT m.id, 'imdb', g.id, m.year, m.rating,
       (SELECT bit_or(1::bigint << b.id) FROM genre AS b WHERE b.name = ANY (m.genres)),
       m.votes, m.runtime_minutes
FROM movie_imdb AS m CROSS JOIN unnest(m.genres) AS n (name) JOIN genre AS g ON g.name = n.name;
UPDATE genre SET imdb_movies = (SELECT count(*) FROM movie_genre_imdb WHERE genre_id = genre.id);
INSERT INTO genre_year (genre_id, year, imdb_movies)
SELECT genre_id, year, count(*) FROM movie_genre_imdb WHERE year IS NOT NULL GROUP BY 1, 2;
"""


@pytest.fixture(scope="module")
def big_engine(make_database: Callable[[], str]) -> Iterator[sa.Engine]:
    engine = create_engine(make_database())
    with engine.begin() as conn:
        conn.execute(sa.text(SEED_SQL), {"rows": ROWS})
        conn.execute(
            sa.text("INSERT INTO movie_user (title, rating, year) VALUES ('U', 5.0, 2000)")
        )
        conn.execute(sa.text(RARE_SQL), {"rows": ROWS})
        conn.execute(sa.text(LINKS_SQL))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE movie_imdb")
        conn.exec_driver_sql("ANALYZE movie_user")
        conn.exec_driver_sql("VACUUM ANALYZE movie_genre_imdb")  # as COPY FREEZE leaves it
    yield engine
    engine.dispose()


def explain(engine: sa.Engine, sql: q.Sql) -> dict[str, Any]:
    """The plan of `sql` run as the API runs it (a prepared statement), with actual rows."""
    with engine.connect() as conn:
        _, _, plan = prepared.explain(conn, sql, "ANALYZE, FORMAT JSON")
    return plan[0][0]["Plan"]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def scanned_rows(plan: dict[str, Any]) -> int:
    """Rows the index scans produced or threw away: the work of the query."""
    return sum(
        n["Actual Rows"] * n["Actual Loops"] + n.get("Rows Removed by Filter", 0)
        for n in nodes(plan)
        if n["Node Type"].startswith("Index")
    )


def page_keyset(engine: sa.Engine, query: q.MovieQuery, offset: int) -> q.Keyset:
    """The keyset of the row at `offset` in API order (OFFSET only here, to find a deep page).

    From the export statement: its branches have no LIMIT of their own, so OFFSET reaches past
    the first page.
    """
    sql = q.export_sql(query)
    with engine.connect() as conn:
        row = conn.exec_driver_sql(f"{sql.text} LIMIT 1 OFFSET {offset}", sql.params).one()
    return q.keyset_of_row(query.sort, row)


@pytest.mark.parametrize(
    "sort", ["-rating", "rating", "year", "-votes", "runtime", "title", "-title"]
)
def test_deep_page_costs_what_the_first_page_costs(big_engine: sa.Engine, sort: str) -> None:
    query = q.MovieQuery(sort=q.parse_sort(sort), limit=20)
    first = explain(big_engine, q.page_sql(query))
    deep_keyset = page_keyset(big_engine, query, ROWS // 2)
    deep = explain(big_engine, q.page_sql(query, deep_keyset))

    assert not any(n["Node Type"] in ("Sort", "Incremental Sort") for n in nodes(deep))
    assert any(n["Node Type"] == "Merge Append" for n in nodes(deep)), "partitions merged in order"
    conditions = [
        n.get("Index Cond", "") for n in nodes(deep) if n["Node Type"].startswith("Index")
    ]
    assert any("ROW(" in c and "id" in c for c in conditions), conditions
    # Adult movies (1 in 50) are filtered out, so a page reads a few more rows than it returns.
    assert scanned_rows(first) <= 2 * 21
    assert scanned_rows(deep) <= 2 * 21


def sort_nodes(plan: dict[str, Any]) -> list[str]:
    return [n["Node Type"] for n in nodes(plan) if n["Node Type"] in ("Sort", "Incremental Sort")]


def index_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in nodes(plan) if n["Node Type"] in ("Index Scan", "Index Only Scan")]


@pytest.mark.parametrize("sort", ["-rating", "-year", "-votes", "-runtime", "-score"])
def test_descending_first_page_reads_the_ascending_index_backward(
    big_engine: sa.Engine, sort: str
) -> None:
    """No descending index: the non-NULL branch walks `(key ASC NULLS LAST, id ASC)` backward
    and fills the page; the NULL branch never runs."""
    query = q.MovieQuery(sort=q.parse_sort(sort), limit=20)
    plan = explain(big_engine, q.page_sql(query))
    assert not sort_nodes(plan)
    append = plan["Plans"][0]
    assert append["Node Type"] == "Append" and len(append["Plans"]) == 2
    assert append["Plans"][1]["Actual Loops"] == 0, "the NULL branch never executed"
    scans = index_scans(append["Plans"][0])
    column = q.SORT_COLUMNS[sort[1:]].name
    assert scans and all(
        n["Scan Direction"] == "Backward" and n["Index Name"].startswith(f"movie_imdb_{column}")
        for n in scans
        if n["Relation Name"] == "movie_imdb"
    ), scans
    assert scanned_rows(plan) <= 2 * 21


def test_descending_multi_key_first_page_reads_an_index(big_engine: sa.Engine) -> None:
    """`-rating,title`: the rating index read backward, ties sorted incrementally (no full sort)."""
    query = q.MovieQuery(sort=q.parse_sort("-rating,title"), limit=20)
    plan = explain(big_engine, q.page_sql(query))
    assert "Sort" not in sort_nodes(plan)
    assert any(n["Scan Direction"] == "Backward" for n in index_scans(plan))
    assert scanned_rows(plan) < ROWS // 10


@pytest.mark.parametrize("sort", ["-rating", "rating", "-year", "-score", "title", "-title"])
def test_export_reads_the_sort_index_without_sorting(big_engine: sa.Engine, sort: str) -> None:
    """Every movie in API order, from a cursor as the export streams it: the rows with a key come
    from the sort index in order, never from a sort of the whole set. (Descending, the NULL-key
    rows follow in a second branch, ordered by id only; PostgreSQL may sort those.)"""
    query = q.MovieQuery(sort=q.parse_sort(sort))
    sql = q.export_sql(query)
    with big_engine.begin() as conn:
        plan = conn.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) DECLARE export CURSOR FOR {sql.text}", sql.params
        ).scalar_one()[0]["Plan"]
        rows = conn.exec_driver_sql(sql.text, sql.params).all()
    keyed = plan
    if query.sort[0].nullable and query.sort[0].descending:
        assert plan["Node Type"] == "Append" and len(plan["Plans"]) == 2
        keyed = plan["Plans"][0]
    assert not sort_nodes(keyed)
    column = q.SORT_COLUMNS[sort.lstrip("-")].name
    direction = "Backward" if sort.startswith("-") else "Forward"
    assert [
        n["Scan Direction"]
        for n in index_scans(keyed)
        if n["Index Name"].startswith(f"movie_imdb_{column}")
    ] == [direction]
    key = q.SORT_VALUE_COLUMN[sort.lstrip("-")]
    non_null = [r for r in rows if r[key] is not None]
    assert rows[: len(non_null)] == non_null, "NULLs last"
    descending = sort.startswith("-")
    assert [(r[key], r[0]) for r in non_null] == sorted(
        ((r[key], r[0]) for r in non_null), reverse=descending
    )


def test_null_branch_is_not_run_when_the_first_fills_the_page(big_engine: sa.Engine) -> None:
    query = q.MovieQuery(sort=q.parse_sort("-rating"), limit=20)
    deep = explain(big_engine, q.page_sql(query, page_keyset(big_engine, query, 1000)))
    assert deep["Node Type"] == "Limit"
    append = deep["Plans"][0]
    assert append["Node Type"] == "Append" and len(append["Plans"]) == 2
    assert append["Plans"][1]["Actual Loops"] == 0, "the NULL branch never executed"


def test_after_a_null_key_only_nulls_are_read_by_index(big_engine: sa.Engine) -> None:
    query = q.MovieQuery(sort=q.parse_sort("-year"), limit=20)
    keyset = q.Keyset((None,), "tt00050001")
    plan = explain(big_engine, q.page_sql(query, keyset))
    conditions = [
        n.get("Index Cond", "") for n in nodes(plan) if n["Node Type"].startswith("Index")
    ]
    assert conditions and all("year IS NULL" in c and "id <" in c for c in conditions)
    assert scanned_rows(plan) <= 2 * 21


def test_keyset_statements_never_use_offset() -> None:
    query = q.MovieQuery(sort=q.parse_sort("-rating,title"), limit=5)
    keyset = q.Keyset((Decimal("5.0"), "x"), "tt00000001")
    for sql in (q.page_sql(query), q.page_sql(query, keyset)):
        assert "OFFSET" not in sql.text.upper()


def test_multi_key_sort_is_exact_on_ties(big_engine: sa.Engine) -> None:
    """Walk a few pages of a 2-key sort in SQL and compare with ORDER BY ... OFFSET."""
    query = q.MovieQuery(sort=q.parse_sort("-rating,title"), limit=50)
    export = q.export_sql(query)
    with big_engine.connect() as conn:
        expected = conn.exec_driver_sql(f"{export.text} LIMIT 400", export.params).all()
        got: list[Any] = []
        keyset = None
        while len(got) < 400:
            rows = prepared.fetch_sql(conn, q.page_sql(query, keyset))[: query.limit]
            got.extend(rows)
            keyset = q.keyset_of_row(query.sort, rows[-1])
    assert [r[0] for r in got[:400]] == [r.id for r in expected]


@pytest.mark.parametrize("sort", ["-rating", "year,-votes", "title"])
def test_prepared_statement_returns_what_the_plain_text_returns(
    big_engine: sa.Engine, sort: str
) -> None:
    """The API prepares a page's text from its second run on, with the filters written in and
    only the page-to-page values as parameters: the rows are those of the plain statement."""
    query = q.MovieQuery(sort=q.parse_sort(sort), ranges=(("runtime_gte", 100),), limit=30)
    with big_engine.connect() as conn:
        for offset in (0, 500, 20_000):
            keyset = page_keyset(big_engine, query, offset) if offset else None
            sql = q.page_sql(query, keyset)
            plain = [tuple(row) for row in conn.exec_driver_sql(sql.text, sql.params)]
            for _ in range(3):  # run once plain, then prepared, then from the prepared statement
                assert prepared.fetch_sql(conn, sql) == plain and len(plain) == 31


def executed_scans(plan: dict[str, Any], relation: str) -> list[str]:
    """The indexes of `relation` that the plan really read (branches that ran)."""
    return [
        n["Index Name"]
        for n in index_scans(plan)
        if n["Relation Name"] == relation and n["Actual Loops"] > 0
    ]


def page_as_the_api_builds_it(
    engine: sa.Engine, query: q.MovieQuery, after: q.Keyset | None = None
) -> q.Sql:
    """The page's statement, its genre access path chosen from the genre sizes."""
    with engine.connect() as conn:
        return repository.page_sql(conn, query, after, repository.GenreVocabulary())


def movie_rows_fetched(plan: dict[str, Any]) -> int:
    """Movie rows the plan read by primary key, kept or dropped by a filter."""
    return sum(
        n["Actual Rows"] * n["Actual Loops"] + n.get("Rows Removed by Filter", 0)
        for n in index_scans(plan)
        if n["Relation Name"] == "movie_imdb" and n["Index Name"] == "movie_imdb_pkey"
    )


def test_genre_and_years_sort_the_links_and_fetch_only_the_page(big_engine: sa.Engine) -> None:
    """Action (1 movie in 3) of 1990-1994 rated 9 or more, by votes: about 150 candidates, which
    the year and rating indexes alone would each narrow to thousands. The links give the
    candidates with their votes; they are sorted, and only the page's movies are read by primary
    key. The same holds on the next page, the keyset applied to the links."""
    query = q.MovieQuery(
        genres=("Action",),
        ranges=(("rating_gte", Decimal(9)), ("year_gte", 1990), ("year_lte", 1994)),
        sort=q.parse_sort("-votes"),
    )
    first = page_as_the_api_builds_it(big_engine, query)
    assert first.params[genres.LINKS_GENRE] == "Action"
    plan = explain(big_engine, first)
    assert set(executed_scans(plan, "movie_imdb")) == {"movie_imdb_pkey"}
    link_scans = [n for n in index_scans(plan) if n["Relation Name"] == "movie_genre_imdb"]
    assert link_scans and all(n["Node Type"] == "Index Only Scan" for n in link_scans)
    assert all(n["Heap Fetches"] == 0 for n in link_scans)
    # One index range a year: of the ~1,400 Action links of those years only the ~150 rated 9 or
    # more are read (plus a first and a last year's probe).
    links_read = sum(n["Actual Rows"] * n["Actual Loops"] for n in link_scans)
    assert 100 <= links_read <= 200
    # The page's 21 movies, and the odd adult one the filters drop on the way.
    assert query.limit + 1 <= movie_rows_fetched(plan) <= query.limit + 5
    keyset = page_keyset(big_engine, query, 40)
    plan = explain(big_engine, page_as_the_api_builds_it(big_engine, query, keyset))
    assert query.limit + 1 <= movie_rows_fetched(plan) <= query.limit + 5


def test_genre_and_years_by_title_fetch_every_candidate(big_engine: sa.Engine) -> None:
    """By title, a key the links do not repeat: every candidate's movie is read and sorted."""
    query = q.MovieQuery(
        genres=("Action",),
        ranges=(("rating_gte", Decimal(9)), ("year_gte", 1990), ("year_lte", 1994)),
    )
    plan = explain(big_engine, page_as_the_api_builds_it(big_engine, query))
    assert set(executed_scans(plan, "movie_imdb")) == {"movie_imdb_pkey"}
    assert 100 <= movie_rows_fetched(plan) <= 200


def test_genre_bits_narrow_the_links_before_any_movie_is_fetched(big_engine: sa.Engine) -> None:
    """Action and Comedy of 1990-1994: no movie has both. The Action links of those years carry
    their movies' genre bits, so none is a candidate and no movie row is read only to be dropped.
    """
    query = q.MovieQuery(
        genres=("Action", "Comedy"),
        ranges=(("year_gte", 1990), ("year_lte", 1994)),
        sort=q.parse_sort("-votes"),
    )
    sql = page_as_the_api_builds_it(big_engine, query)
    assert sql.params[genres.LINKS_GENRE] == "Action", "fewer Action than Comedy movies"
    plan = explain(big_engine, sql)
    assert executed_scans(plan, "movie_genre_imdb")
    # Both keyset branches (votes, then NULL votes) ran, each among the same empty candidates.
    assert movie_rows_fetched(plan) == 0


def test_genre_and_wide_years_keep_the_usual_plan(big_engine: sa.Engine) -> None:
    """Action since 1900: about 28,000 movies in those years, more than GENRE_LINKS_SPAN. The
    usual plan (the votes index) serves the page and no link is read."""
    query = q.MovieQuery(
        genres=("Action",), ranges=(("year_gte", 1900),), sort=q.parse_sort("-votes")
    )
    sql = page_as_the_api_builds_it(big_engine, query)
    assert genres.LINKS_GENRE not in sql.params
    plan = explain(big_engine, sql)
    scans = executed_scans(plan, "movie_imdb")
    assert scans and "movie_imdb_pkey" not in scans
    assert executed_scans(plan, "movie_genre_imdb") == []
    assert scanned_rows(plan) <= 10 * 21


def test_rare_genre_is_found_first_then_sorted(big_engine: sa.Engine) -> None:
    """Film-Noir (150 of 100,000 movies), by title: its movies come from the GIN index and their
    keys are sorted, whatever the statistics say; then only the page's 21 rows are fetched, by
    primary key. Never a walk of the title index."""
    query = q.MovieQuery(genres=("Film-Noir",), sort=q.parse_sort("title"))
    plan = explain(big_engine, page_as_the_api_builds_it(big_engine, query))
    bitmaps = [
        n["Index Name"]
        for n in nodes(plan)
        if n["Node Type"] == "Bitmap Index Scan" and n["Actual Loops"] > 0
    ]
    assert "movie_imdb_genres_idx" in bitmaps
    assert set(executed_scans(plan, "movie_imdb")) == {"movie_imdb_pkey"}
    fetched = [n for n in index_scans(plan) if n["Relation Name"] == "movie_imdb"]
    assert sum(n["Actual Rows"] * n["Actual Loops"] for n in fetched) == query.limit + 1
    assert sort_nodes(plan)


def test_common_genre_without_years_reads_no_link(big_engine: sa.Engine) -> None:
    """Action (a third of the movies) without a year filter: the genre's size alone sends the
    page to the usual plan, which reads no link."""
    query = q.MovieQuery(genres=("Action",), sort=q.parse_sort("-rating"))
    sql = page_as_the_api_builds_it(big_engine, query)
    assert "OFFSET 0" not in sql.text, "a common genre is not found first"
    plan = explain(big_engine, sql)
    assert executed_scans(plan, "movie_genre_imdb") == []
    assert "movie_imdb_pkey" not in executed_scans(plan, "movie_imdb")


def test_genre_sizes_are_reread_after_the_refresh_interval(big_engine: sa.Engine) -> None:
    """A load changes the sizes: they are reread once `refresh_s` has passed, not before."""
    fresh = repository.GenreVocabulary(refresh_s=0)
    kept = repository.GenreVocabulary(refresh_s=3600)
    with big_engine.connect() as conn, conn.begin() as transaction:
        assert kept.sizes(conn).movies["Film-Noir"] == 150
        action_1990 = kept.sizes(conn).in_years("Action", 1990, 1990)
        assert action_1990 == 714  # i = 90 (mod 120), not a multiple of 7
        conn.exec_driver_sql("UPDATE genre SET imdb_movies = 5 WHERE name = 'Action'")
        conn.exec_driver_sql("UPDATE genre_year SET imdb_movies = 7 WHERE year = 1990")
        assert fresh.sizes(conn).movies["Action"] == 5
        assert fresh.sizes(conn).in_years("Action", 1990, 1990) == 7
        assert kept.sizes(conn).movies["Action"] > genres.SMALL_GENRE
        assert kept.sizes(conn).in_years("Action", 1990, 1990) == action_1990
        assert fresh.sizes(conn).movies.get("Unknown", 0) == 0
        transaction.rollback()
