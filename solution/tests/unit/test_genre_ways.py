"""bench/genre_ways.py's choice of statements: the API's way and the ways it is compared with."""

from __future__ import annotations

import genre_ways

from movies import query as q

SIZES = q.GenreSizes.of(
    {"Comedy": 200_000, "Romance": 60_000, "Film-Noir": 759, "Western": 9_544},
    [("Romance", 1995, 700), ("Comedy", 1995, 20_000)],
)


def test_a_chosen_way_is_compared_with_the_plain_statement():
    ways = genre_ways._ways(genre_ways.COMEDY_ROMANCE, SIZES)
    assert list(ways) == ["chosen: links", "plain: usual"]
    assert ways["chosen: links"].text != ways["plain: usual"].text
    assert ways["plain: usual"] == q.page_sql(genre_ways.COMEDY_ROMANCE)

    ways = genre_ways._ways(q.MovieQuery(genres=("Film-Noir",)), SIZES)
    assert list(ways) == ["chosen: rare", "plain: usual"]


def test_a_common_genre_is_compared_with_the_rare_way_forced():
    western = q.MovieQuery(genres=("Western",))
    ways = genre_ways._ways(western, SIZES)
    assert list(ways) == ["chosen: usual (plain)", "forced: rare"]
    assert ways["chosen: usual (plain)"] == q.page_sql(western, sizes=SIZES)
    rare = q.page_sql(western, sizes=q.GenreSizes({"Western": 0}))
    assert ways["forced: rare"] == rare != ways["chosen: usual (plain)"]


def test_a_common_genre_with_years_has_no_rare_way_to_force():
    query = q.MovieQuery(genres=("Comedy",), ranges=(("year_gte", 1990),))
    assert list(genre_ways._ways(query, SIZES)) == ["chosen: usual (plain)"]
