"""Genre access paths: few candidates, found first.

Two genre queries are slow for a planner that has only the GIN index on `genres` and the sort
indexes. A genre with a year filter ("Comedy and Romance of the 1990s rated 7 or more") can match
few movies while each condition alone matches tens of thousands: PostgreSQL builds and intersects
three large bitmaps (GIN genres, year, rating), 10-15 ms a page. And a rare genre ("Film-Noir",
759 movies) is read either through the GIN index and sorted (half a millisecond) or by walking
the sort index and discarding the other genres (11-70 ms), as the statistics sample makes the
genre look rarer or more common.

- With a year filter, `genre_ways` gives the query two ways to its rows, each a branch of the
  statement behind a one-time condition; exactly one holds, so only one reads rows. The link
  table repeats each movie's year, rating and genre set (as bits), and its index (genre_id, year,
  rating, movie_id) INCLUDE (genre_bits) holds the movies of one genre in a span of years. The
  links of the rarest requested genre (`genre.imdb_movies`, set by every load) in those years
  that pass the rating filters and have the other requested genres' bits are the candidates.
  One index-only read of at most GENRE_LINKS_SPAN links (GENRE_LINKS_CANDIDATES when no bits
  narrow them) collects them, once per statement; with a rating filter it reads one index range
  a year, so links of other ratings are skipped. When the candidates are few (at most
  GENRE_LINKS_CANDIDATES), the page is fetched by id among them; otherwise the usual plan runs.
  How many candidates the years hold is known only by reading the links, hence the condition.
  Measured on the scale-1.0 bench data (prepared, median / p99 of 57 runs): Comedy+Romance of
  the 1990s rated 7 or more, 1.5 / 7.2 ms this way, 39.7 / 83.9 ms as one plain statement, and
  16.3 / 166.6 ms plain with a statistics target of 10,000 on `genres`. So this way stays.
- Without one: when the rarest requested genre has at most SMALL_GENRE movies in the latest load
  (`is_rare`, decided in Python from `genre.imdb_movies`: the statement holds this way only),
  its movies are selected in a subquery PostgreSQL plans apart (OFFSET 0: through the GIN index,
  as nothing there asks for an order), only their sort keys are sorted, and the page's rows are
  then fetched by primary key.

Every filter still applies to the movie rows. Otherwise the usual plan runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import util as sql_util

from movies.query.filters import FILTERS, GENRES, FilterShape, range_parameter
from movies.query.sorting import MOVIE_COLUMNS
from movies.tables import GENRE_BITS, genre, movie, movie_genre

GENRE_LINKS_SPAN = 10_000  # links the gate reads at most (index only: about a millisecond)
GENRE_LINKS_CANDIDATES = 2_000  # movies fetched by id at most (a few milliseconds)
SMALL_GENRE = 2_000  # movies of a genre found through the GIN index, keys sorted (under 1 ms)


@dataclass(frozen=True)
class Way:
    """One way to the rows of a page: `extra` conditions, and whether the filters are planned
    `apart` from the order (a subquery PostgreSQL cannot flatten, sorted afterwards)."""

    extra: tuple[sa.ColumnElement[bool], ...] = ()
    apart: bool = False


USUAL = (Way(),)


def is_rare(movies: int) -> bool:
    """Whether a genre of this many movies is found first, through the GIN index (`rare_genre`
    of a FilterShape): chosen in Python from the genre sizes of the latest load."""
    return movies <= SMALL_GENRE


def genre_ways(shape: FilterShape) -> tuple[Way, ...]:
    """The ways to a page of a query of this shape: USUAL, the rare genre's, or the genre-year
    links' two, each behind a one-time condition, exactly one of which holds."""
    if not shape.genres:
        return USUAL
    years = _ranges_on(shape.ranges, movie.c.year)
    if not years:
        return (Way(apart=True),) if shape.rare_genre else USUAL
    rated = _ranges_on(shape.ranges, movie.c.rating)
    few, ids = _few_links(years, rated, shape.several_genres)
    return Way((few, movie.c.id == sa.any_(ids))), Way((sa.not_(few),))


def genre_bits(names: Any) -> sa.ScalarSelect[int]:
    """The bits of these genre names (a list or an array parameter), as movie_genre.genre_bits
    holds them."""
    if not isinstance(names, sa.ColumnElement):
        names = sa.literal(list(names), movie.c.genres.type)
    bit = sa.literal_column("1::bigint", sa.BigInteger).op("<<")(genre.c.id)
    return (
        sa.select(sa.func.coalesce(sa.func.bit_or(bit), sql_int(0)))
        .where(genre.c.name == sa.any_(names), genre.c.id < sql_int(GENRE_BITS))
        .scalar_subquery()
    )


def sql_int(value: int) -> sa.ColumnElement[int]:
    """An integer written into the SQL text (a compiled shape has no anonymous parameters)."""
    return sa.literal_column(str(int(value)), sa.Integer)


def _ranges_on(names: Sequence[str], column: sa.Column) -> list[tuple[Any, Any]]:
    """(operator, bound value) of the range filters on `column`."""
    return [(FILTERS[n].op, range_parameter(n)) for n in names if FILTERS[n].column is column]


def _few_links(years: list, rated: list, several: bool) -> tuple[Any, Any]:
    """(whether the rarest genre's links in the years hold few candidates, their movie ids as an
    array)."""
    rarest = (
        sa.select(genre.c.id)
        .where(genre.c.name == sa.any_(GENRES))
        .order_by(genre.c.imdb_movies, genre.c.id)
        .limit(sql_int(1))
        .scalar_subquery()
    )
    links = _links_in_years(
        movie_genre.c.genre_id == rarest,
        [op(movie_genre.c.year, value) for op, value in years],
        [op(movie_genre.c.rating, value) for op, value in rated],
    )
    candidate: sa.ColumnElement[bool] = sa.true()
    read_most = GENRE_LINKS_CANDIDATES
    if several:
        wanted = genre_bits(GENRES)
        candidate = links.c.genre_bits.op("&")(wanted) == wanted
        # Links read that are no candidates are read for nothing: with the genre bits narrowing
        # them, a longer read may still hold few candidates.
        read_most = GENRE_LINKS_SPAN
    span = (
        sa.select(links.c.movie_id, candidate.label("candidate"))
        .limit(sql_int(read_most + 1))
        .subquery("span")
    )
    # One read of the span, once per statement however many branches ask.
    gate = sa.select(
        sa.func.count().label("links"),
        sa.func.array_agg(span.c.movie_id).filter(span.c.candidate).label("ids"),
    ).cte("genre_links_gate")
    few = sa.and_(
        gate.c.links <= sql_int(read_most),
        sa.func.coalesce(sa.func.cardinality(gate.c.ids), sql_int(0))
        <= sql_int(GENRE_LINKS_CANDIDATES),
    )
    # In coalesce the subquery is an array value (`= ANY (SELECT ...)` would compare with its rows).
    ids = sa.func.coalesce(sa.select(gate.c.ids).scalar_subquery(), sa.literal_column("'{}'"))
    return sa.select(few).scalar_subquery(), ids


def _links_in_years(of_genre: sa.ColumnElement[bool], years: list, rated: list) -> Any:
    """The (movie_id, genre_bits) of the links meeting `of_genre`, `years` and `rated`, index
    only.

    With rating conditions each year is read as its own index range, (genre, year, ratings): the
    links of the other ratings are skipped, not read (the 720 Romance links of the 1990s rated 7
    or more, not all 6,305 of the 1990s). The years run from the first to the last that the
    genre's links have within the bounds (two index probes), so open bounds cost nothing.
    """
    if not rated:
        columns = [movie_genre.c.movie_id, movie_genre.c.genre_bits]
        return sa.select(*columns).where(of_genre, *years).subquery("year_links")
    # generate_series takes integers (smallints are ambiguous to it).
    first, last = (
        sa.cast(
            sa.select(edge(movie_genre.c.year)).where(of_genre, *years).scalar_subquery(),
            sa.Integer,
        )
        for edge in (sa.func.min, sa.func.max)
    )
    span_years = (
        sa.func.generate_series(first, last).table_valued("year").render_derived("span_years")
    )
    per_year = (
        sa.select(movie_genre.c.movie_id, movie_genre.c.genre_bits)
        .where(of_genre, movie_genre.c.year == span_years.c.year, *rated)
        .offset(sql_int(0))  # kept a subquery: one index range per year, never a join
        .lateral("year_links")
    )
    return (
        sa.select(per_year.c.movie_id, per_year.c.genre_bits)
        .select_from(span_years.join(per_year, sa.true()))
        .subquery("rated_links")
    )


def way_branch(
    way: Way, conditions: list, branch: Any, ordering: list, keys: list, fetch: Any
) -> sa.Select:
    """The rows of one keyset branch by one way, in order, at most `fetch` (None: all).

    `keys` are the primary key and sort key columns, what an `apart` way sorts.
    """
    if not way.apart:
        return (
            sa.select(*MOVIE_COLUMNS)
            .where(*conditions, *way.extra, branch)
            .order_by(*ordering)
            .limit(fetch)
        )
    # Sorting whole rows would project every found movie's columns; only the primary key and
    # the sort keys are sorted, and the page's rows are then fetched by primary key (Film-Noir:
    # a quarter less PostgreSQL time for a page).
    found = sa.select(*keys).where(*conditions, *way.extra).offset(sql_int(0)).subquery("found")
    in_found = sql_util.ClauseAdapter(found).traverse
    page = (
        sa.select(found)
        .where(in_found(branch))
        .order_by(*map(in_found, ordering))
        .limit(fetch)
        .subquery("page")
    )
    in_page = sql_util.ClauseAdapter(page).traverse
    return (
        sa.select(*MOVIE_COLUMNS)
        .join_from(movie, page, (movie.c.id == page.c.id) & (movie.c.source == page.c.source))
        .order_by(*map(in_page, ordering))
    )
