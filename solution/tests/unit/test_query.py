"""The pure query builder: sort parsing, fingerprints, keyset values and statement shape."""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

import pytest

from movies import query as q
from movies.query import genres
from movies.search import parse_search


def sql(query: q.MovieQuery, after: q.Keyset | None = None) -> str:
    """The SQL text the API sends for this page."""
    return q.page_sql(query, after).text


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
    text = sql(q.MovieQuery(sort=q.parse_sort("rating,-title,year")))
    assert "UNION" not in text
    assert (
        "ORDER BY movie.rating ASC NULLS LAST, movie.title DESC, "
        "movie.year ASC NULLS LAST, movie.id ASC" in text
    )
    assert "OFFSET" not in text


def test_descending_nullable_first_key_reads_non_nulls_then_nulls() -> None:
    """The ascending index read backward puts NULLs first: two branches put them last."""
    text = sql(q.MovieQuery(sort=q.parse_sort("-rating,title,year")))
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
    text = sql(query, q.Keyset((Decimal("8.7"),), "tt0000001"))
    assert "UNION ALL" in text
    assert "(movie.rating, movie.id) <" in text
    assert "movie.rating IS NULL" in text


def test_single_key_after_null_reads_only_nulls() -> None:
    query = q.MovieQuery(sort=q.parse_sort("year"), limit=10)
    text = sql(query, q.Keyset((None,), "tt0000001"))
    assert "UNION" not in text
    assert "movie.year IS NULL AND movie.id > " in text


def test_title_key_needs_one_branch() -> None:
    query = q.MovieQuery(sort=q.parse_sort("-title"), limit=10)
    text = sql(query, q.Keyset(("NA",), "tt0000001"))
    assert "UNION" not in text and "(movie.title, movie.id) <" in text


def test_filters_are_bound_parameters() -> None:
    query = q.MovieQuery(
        genres=("Action", "Sci-Fi"),
        ranges=(("rating_gt", Decimal("8.5")), ("year_lte", 1999)),
    )
    page = q.page_sql(query)
    assert "8.5" not in page.text and "Sci-Fi" not in page.text
    assert page.params["genres"] == ["Action", "Sci-Fi"]
    assert page.params["rating_gt"] == Decimal("8.5") and page.params["year_lte"] == 1999
    assert "is_adult IS false" in page.text


def test_include_adult_drops_the_adult_filter() -> None:
    assert "is_adult" not in q.count_sql(q.MovieQuery(include_adult=True)).text


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


# Genre sizes as a load leaves them: Drama is big, Romance has few movies in the 1990s, and
# Film-Noir is small.
SIZES = q.GenreSizes.of(
    {"Drama": 300_000, "Comedy": 200_000, "Romance": 60_000, "Film-Noir": 759},
    [
        ("Drama", 1995, 9_000),
        ("Drama", 2005, 12_000),
        ("Comedy", 1995, 7_000),
        ("Romance", 1990, 600),
        ("Romance", 1999, 700),
        ("Romance", 2005, 58_700),
        ("Film-Noir", 1946, 759),
    ],
)


def test_page_sql_is_compiled_once_per_shape() -> None:
    sort = q.parse_sort("-rating,title")
    one = q.MovieQuery(
        genres=("Action", "Crime", "Drama"), ranges=(("year_gte", 1990),), sort=sort, limit=5
    )
    two = q.MovieQuery(genres=("Drama", "War"), ranges=(("year_gte", 2001),), sort=sort, limit=50)
    page_one = q.page_sql(one, q.Keyset((Decimal("8.7"), "NA"), "tt0000001"))
    page_two = q.page_sql(two, q.Keyset((Decimal("1.0"), '"'), "tt12345678"))
    sql_one, params_one, params_two = page_one.text, page_one.params, page_two.params
    assert sql_one is page_two.text
    assert params_one["genres"] == ["Action", "Crime", "Drama"]
    assert params_two["genres"] == ["Drama", "War"]
    assert params_two["fetch"] == 51 and params_two["after_1"] == '"'
    sql_null = sql(one, q.Keyset((None, "NA"), "tt0000001"))
    assert sql_null != sql_one and "movie.rating IS NULL" in sql_null
    assert "OFFSET" not in sql_one.upper()


def test_genre_sizes_count_the_movies_of_a_span_of_years() -> None:
    assert SIZES.in_years("Romance", 1990, 1999) == 1_300
    assert SIZES.in_years("Romance", 1991, 1999) == 700, "bounds are years, both included"
    assert SIZES.in_years("Romance", 1990, 1990) == 600
    assert SIZES.in_years("Romance", None, 2000) == 1_300 and SIZES.in_years("Romance", 1999, None)
    assert SIZES.in_years("Romance", None, None) == 60_000
    assert SIZES.in_years("Romance", 1991, 1998) == 0 and SIZES.in_years("Romance", 2000, 1990) == 0
    assert SIZES.in_years("Western", 1990, 1999) == 0, "a genre without movies"


@pytest.mark.parametrize(
    ("ranges", "bounds"),
    [
        ((("year", 1994),), (1994, 1994)),
        ((("year_gte", 1990), ("year_lte", 1999)), (1990, 1999)),
        ((("year_gte", 1990),), (1990, None)),
        ((("rating_gte", Decimal(7)), ("year_lte", 1999)), (None, 1999)),
        ((("year", 1994), ("year_gte", 1996)), (1996, 1994)),
        ((("rating_gte", Decimal(7)),), None),
    ],
)
def test_year_bounds_of_the_year_filters(ranges: tuple, bounds: tuple | None) -> None:
    assert genres.year_bounds(q.MovieQuery(ranges=ranges)) == bounds


def test_genre_way_is_chosen_from_the_sizes_of_the_latest_load() -> None:
    def way(genre_names: tuple[str, ...], ranges: tuple = (), sort: str = "-votes") -> tuple:
        query = q.MovieQuery(genres=genre_names, ranges=ranges, sort=q.parse_sort(sort))
        return genres.choose_way(query, SIZES)

    nineties = (("year_gte", 1990), ("year_lte", 1999))
    assert genres.choose_way(q.MovieQuery(ranges=nineties), SIZES) == (q.GenreWay.USUAL, None)
    assert way(("Film-Noir",)) == (q.GenreWay.RARE, None)
    assert way(("Drama", "Film-Noir")) == (q.GenreWay.RARE, None), "the rarest genre decides"
    assert way(("Drama",)) == (q.GenreWay.USUAL, None)
    # With a year filter: the genre with the fewest movies in those years, not in all years.
    assert way(("Comedy", "Romance"), nineties) == (q.GenreWay.LINKS, "Romance")
    assert way(("Drama",), nineties) == (q.GenreWay.LINKS, "Drama"), "9,000 links, sorted"
    assert way(("Drama",), nineties, "title") == (q.GenreWay.USUAL, None), "9,000 to fetch"
    assert way(("Romance",), nineties, "title") == (q.GenreWay.LINKS, "Romance")
    assert way(("Romance",), (("year_gte", 2000),)) == (q.GenreWay.USUAL, None)
    assert way(("Film-Noir",), (("year", 1950),)) == (q.GenreWay.LINKS, "Film-Noir")
    assert genres.sorted_by_links(q.parse_sort("-year,rating,runtime"))
    assert not genres.sorted_by_links(q.parse_sort("-votes,score"))


def test_rare_genre_is_sent_as_one_plain_statement() -> None:
    """No gate in SQL: the sizes pick the way, the statement holds only it."""
    query = q.MovieQuery(genres=("Film-Noir",), sort=q.parse_sort("-rating"))
    rare = q.page_sql(query, sizes=SIZES)
    usual = q.page_sql(query).text
    for text in (rare.text, usual):
        assert "imdb_movies" not in text and text.count("UNION ALL") == 1, "NULL branch only"
    assert rare.text.count("OFFSET 0") == 2 and "OFFSET" not in usual
    assert set(re.findall(r"%\((\w+)\)s", rare.text)) == set(rare.params)
    unfiltered = q.MovieQuery()
    assert q.page_sql(unfiltered, sizes=SIZES).text == q.page_sql(unfiltered).text
    search = q.MovieQuery(genres=("Film-Noir",), sort=q.RELEVANCE, search=parse_search("noir"))
    assert q.page_sql(search, sizes=SIZES).text == q.page_sql(search).text


def test_genre_links_shape_binds_only_the_query_values() -> None:
    """The links' genre is a value written into the SQL text, like the filters: every
    placeholder of the compiled shape is a parameter page_sql hands over. No gate, no CTE."""
    query = q.MovieQuery(
        genres=("Comedy", "Romance"),
        ranges=(("rating_gte", Decimal(7)), ("year_gte", 1990), ("year_lte", 1999)),
        sort=q.parse_sort("-votes"),
    )
    page = q.page_sql(query, q.Keyset((120,), "tt0000001"), sizes=SIZES)
    sql, params = page.text, page.params
    assert set(re.findall(r"%\((\w+)\)s", sql)) == set(params)
    assert params[genres.LINKS_GENRE] == "Romance" and genres.LINKS_GENRE not in page.bound
    assert "WITH" not in sql and "imdb_movies" not in sql
    assert "rated_links.genre_bits &" in sql, "the other genre narrows the links"
    assert "generate_series" in sql and "JOIN LATERAL" in sql, "rated: one index range a year"
    assert "ORDER BY genre_links.votes DESC NULLS FIRST, genre_links.movie_id DESC" in sql
    assert "(genre_links.votes, genre_links.movie_id) < (" in sql, "the keyset, on the links"
    without_rating = dataclasses.replace(query, ranges=query.ranges[1:])
    sql = q.page_sql(without_rating, sizes=SIZES).text
    assert "genre_bits &" in sql, "the bits still narrow the span"
    assert "generate_series" not in sql, "unrated: the years are one index range"
    one_genre = dataclasses.replace(without_rating, genres=("Romance",), sort=q.DEFAULT_SORT)
    page = q.page_sql(one_genre, q.Keyset(("NA",), "tt0000001"), sizes=SIZES)
    sql, params = page.text, page.params
    assert set(re.findall(r"%\((\w+)\)s", sql)) == set(params)
    assert "genre_bits &" not in sql, "one genre: every link of the span is a candidate"
    assert "ORDER BY candidate_movie.title" in sql, "by title: the movies are sorted"
    assert "(candidate_movie.title, candidate_links.movie_id) > (" in sql


def test_only_page_to_page_values_stay_statement_parameters() -> None:
    """Filters, the limit and the keyset values of few-valued keys (rating, year) are literals of
    the prepared text; ids, titles and vote counts of the cursor stay parameters."""
    query = q.MovieQuery(genres=("Drama",), sort=q.parse_sort("-rating,title,votes"))
    after = q.Keyset((Decimal("7.5"), "NA", 12), "tt0000001")
    assert q.page_sql(query).bound == ()
    assert q.page_sql(query, after).bound == ("after_1", "after_2", "after_id")
    after_null = q.Keyset((None, "NA", None), "tt0000001")
    page = q.page_sql(query, after_null)
    assert page.bound == ("after_1", "after_id") and "after_2" not in page.params


def test_relevance_cursor_class_is_part_of_the_shape() -> None:
    query = q.MovieQuery(sort=q.RELEVANCE, search=parse_search("blade runner"))
    after = q.Keyset((2, 1500), "tt0000001")
    page = q.page_sql(query, after)
    assert page.bound == ("after_1", "after_id") and "after_0" not in page.params
    assert q.PageShape.of(query, after).match_class == 2
    assert "3 AS match_class" not in page.text and "1 AS match_class" in page.text
    assert set(re.findall(r"%\((\w+)\)s", page.text)) == set(page.params)
