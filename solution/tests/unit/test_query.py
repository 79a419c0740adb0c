"""The pure query builder: sort parsing, fingerprints, keyset values and statement shape."""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

import pytest
from sqlalchemy.dialects import postgresql

from movies import query as q


def sql(statement) -> str:
    return str(statement.compile(dialect=postgresql.psycopg2.dialect()))


def test_parse_sort_reads_directions_in_order() -> None:
    assert q.parse_sort("-rating,title,-year") == (
        q.SortKey("rating", True),
        q.SortKey("title", False),
        q.SortKey("year", True),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("popularity", "cannot sort by 'popularity'"),
        ("rating,-rating", "more than once"),
        ("title,year,rating,votes", "at most 3"),
        ("", "cannot sort by ''"),
        ("--rating", "cannot sort by '--rating'"),
        ("Rating", "cannot sort by 'Rating'"),
        ("runtime_minutes", "cannot sort"),
    ],
)
def test_parse_sort_rejects(text: str, message: str) -> None:
    with pytest.raises(q.QueryError, match=message):
        q.parse_sort(text)


def test_fingerprint_depends_on_filters_and_sort_not_limit() -> None:
    base = q.MovieQuery(genres=("Action",), ranges=(("rating_gt", Decimal("8.5")),))
    assert (
        base.fingerprint()
        == q.MovieQuery(
            genres=("Action",), ranges=(("rating_gt", Decimal("8.5")),), limit=99
        ).fingerprint()
    )
    others = [
        q.MovieQuery(genres=("Drama",), ranges=base.ranges),
        q.MovieQuery(genres=base.genres, ranges=(("rating_gt", Decimal("8.6")),)),
        q.MovieQuery(genres=base.genres, ranges=(("rating_gte", Decimal("8.5")),)),
        q.MovieQuery(genres=base.genres, ranges=base.ranges, include_adult=True),
        q.MovieQuery(genres=base.genres, ranges=base.ranges, sort=q.parse_sort("-title")),
    ]
    assert len({base.fingerprint(), *(o.fingerprint() for o in others)}) == 6


def test_order_by_puts_nulls_last_and_id_in_first_direction() -> None:
    text = sql(q.list_statement(q.MovieQuery(sort=q.parse_sort("rating,-title,year"))))
    assert "UNION" not in text
    assert (
        "ORDER BY movie.rating ASC NULLS LAST, movie.title DESC, "
        "movie.year ASC NULLS LAST, movie.id ASC" in text
    )
    assert "OFFSET" not in text


def test_descending_nullable_first_key_reads_non_nulls_then_nulls() -> None:
    """The ascending index read backward puts NULLs first: two branches put them last."""
    text = sql(q.list_statement(q.MovieQuery(sort=q.parse_sort("-rating,title,year"))))
    order = (
        "ORDER BY movie.rating DESC NULLS FIRST, movie.title ASC, "
        "movie.year ASC NULLS LAST, movie.id DESC"
    )
    non_nulls, nulls = text.split("UNION ALL")
    assert "movie.rating IS NOT NULL" in non_nulls and order in non_nulls
    assert "movie.rating IS NULL" in nulls and order in nulls
    assert "OFFSET" not in text


def test_single_nullable_key_after_value_is_union_of_row_compare_and_nulls() -> None:
    query = q.MovieQuery(sort=q.parse_sort("-rating"), limit=10)
    text = sql(q.list_statement(query, q.Keyset((Decimal("8.7"),), "tt0000001")))
    assert "UNION ALL" in text
    assert "(movie.rating, movie.id) <" in text
    assert "movie.rating IS NULL" in text


def test_single_key_after_null_reads_only_nulls() -> None:
    query = q.MovieQuery(sort=q.parse_sort("year"), limit=10)
    text = sql(q.list_statement(query, q.Keyset((None,), "tt0000001")))
    assert "UNION" not in text
    assert "movie.year IS NULL AND movie.id > " in text


def test_title_key_needs_one_branch() -> None:
    query = q.MovieQuery(sort=q.parse_sort("-title"), limit=10)
    text = sql(q.list_statement(query, q.Keyset(("NA",), "tt0000001")))
    assert "UNION" not in text and "(movie.title, movie.id) <" in text


def test_filters_are_bound_parameters() -> None:
    query = q.MovieQuery(
        genres=("Action", "Sci-Fi"),
        ranges=(("rating_gt", Decimal("8.5")), ("year_lte", 1999)),
    )
    compiled = q.list_statement(query).compile(dialect=postgresql.psycopg2.dialect())
    assert "8.5" not in compiled.string and "Sci-Fi" not in compiled.string
    assert ["Action", "Sci-Fi"] in compiled.params.values()
    assert "is_adult IS false" in compiled.string


def test_include_adult_drops_the_adult_filter() -> None:
    assert "is_adult" not in sql(q.count_statement(q.MovieQuery(include_adult=True)))


@pytest.mark.parametrize(
    ("sort", "values", "ok"),
    [
        ("rating", ["8.5"], True),
        ("rating", [None], True),
        ("rating", [8.5], False),
        ("rating", ["high"], False),
        ("title", ["x"], True),
        ("title", [None], False),
        ("year", [1999], True),
        ("year", [True], False),
        ("year", ["1999"], False),
        ("year,title", [1999], False),
        ("year", "1999", False),
    ],
)
def test_keyset_from_json_checks_values_against_the_sort(
    sort: str, values: object, ok: bool
) -> None:
    keys = q.parse_sort(sort)
    if ok:
        assert q.keyset_from_json(keys, values, "tt0000001").id == "tt0000001"
    else:
        with pytest.raises(q.QueryError):
            q.keyset_from_json(keys, values, "tt0000001")


def test_keyset_json_round_trip_keeps_decimal_exact() -> None:
    keys = q.parse_sort("-rating,year")
    keyset = q.Keyset((Decimal("8.7"), None), "tt0000001")
    assert q.keyset_from_json(keys, q.keyset_to_json(keyset), keyset.id) == keyset


def test_list_sql_is_compiled_once_per_shape() -> None:
    sort = q.parse_sort("-rating,title")
    one = q.MovieQuery(
        genres=("Action", "Crime", "Drama"), ranges=(("year_gte", 1990),), sort=sort, limit=5
    )
    two = q.MovieQuery(genres=("Drama", "War"), ranges=(("year_gte", 2001),), sort=sort, limit=50)
    sql_one, params_one = q.list_sql(one, q.Keyset((Decimal("8.7"), "NA"), "tt0000001"))
    sql_two, params_two = q.list_sql(two, q.Keyset((Decimal("1.0"), '"'), "tt12345678"))
    assert sql_one is sql_two
    assert params_one["genres"] == ["Action", "Crime", "Drama"]
    assert params_two["genres"] == ["Drama", "War"]
    single_genre = dataclasses.replace(one, genres=("Action",))
    assert q.list_sql(single_genre)[0] != q.list_sql(one)[0], "one genre needs no bits"
    assert params_two["fetch"] == 51 and params_two["after_1"] == '"'
    sql_null, _ = q.list_sql(one, q.Keyset((None, "NA"), "tt0000001"))
    assert sql_null != sql_one and "movie.rating IS NULL" in sql_null
    assert "OFFSET" not in sql_one.upper()


def test_genre_ways_only_for_genre_filters() -> None:
    years = (("year_gte", 1990),)
    assert q.genre_ways(None, years) == q.USUAL
    by_links, usual = q.genre_ways(["Action"], years)
    assert not by_links.apart and not usual.apart
    small, usual = q.genre_ways(["Action"], (("rating_gte", Decimal(8)),))
    assert small.apart and not usual.apart


def test_genre_links_shape_binds_only_the_query_values() -> None:
    """The gate's bounds are written into the SQL text: every placeholder of the compiled shape
    is a parameter list_sql hands over, and the gate is decided once for both branches."""
    query = q.MovieQuery(
        genres=("Comedy", "Romance"),
        ranges=(("rating_gte", Decimal(7)), ("year_gte", 1990), ("year_lte", 1999)),
        sort=q.parse_sort("-votes"),
    )
    sql, params = q.list_sql(query, q.Keyset((120,), "tt0000001"))
    assert set(re.findall(r"%\((\w+)\)s", sql)) == set(params)
    assert sql.count("genre_links_gate AS") == 1
    assert "min(genre.imdb_movies)" not in sql, "a year filter bounds the span itself"
    assert f"<= {q.GENRE_LINKS_CANDIDATES}" in sql and f"LIMIT {q.GENRE_LINKS_SPAN + 1}" in sql
    assert "rated_links.genre_bits &" in sql, "the other genre narrows the links"
    assert "generate_series" in sql and "JOIN LATERAL" in sql, "rated: one index range a year"
    without_rating = dataclasses.replace(query, ranges=query.ranges[1:])
    sql, _ = q.list_sql(without_rating)
    assert f"LIMIT {q.GENRE_LINKS_SPAN + 1}" in sql, "the bits still narrow the span"
    assert "generate_series" not in sql, "unrated: the years are one index range"
    one_genre = dataclasses.replace(without_rating, genres=("Romance",))
    sql, params = q.list_sql(one_genre)
    assert set(re.findall(r"%\((\w+)\)s", sql)) == set(params)
    assert "genre_bits &" not in sql, "one genre: every link of the span is a candidate"
    assert f"LIMIT {q.GENRE_LINKS_CANDIDATES + 1}" in sql and f"{q.GENRE_LINKS_SPAN}" not in sql
    genre_only, params = q.list_sql(q.MovieQuery(genres=("Film-Noir",)))
    assert "min(genre.imdb_movies)" in genre_only and "OFFSET 0" in genre_only
    assert set(re.findall(r"%\((\w+)\)s", genre_only)) == set(params)
