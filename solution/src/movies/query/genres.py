"""Genre access paths: few candidates, found first, chosen in Python.

Two genre queries are slow for a planner that has only the GIN index on `genres` and the sort
indexes. A genre with a year filter ("Comedy and Romance of the 1990s rated 7 or more") can match
few movies while each condition alone matches tens of thousands: PostgreSQL builds and intersects
three large bitmaps (GIN genres, year, rating), 11.5 ms a page against 0.45 ms by the links. And a
rare genre ("Film-Noir", 759 movies) is read either through the GIN index and sorted (0.4 ms) or
by walking the sort index and discarding the other genres (9.6 ms), as the statistics sample
makes the genre look rarer or more common (solution/bench/genre_ways.py measures each way).

`choose_way` picks the way of a request from the genre sizes of the latest load (`GenreSizes`:
`genre.imdb_movies` and `genre_year`, both written by every load), and the statement holds that
way only:

- `LINKS`, with a year filter, when the requested genre with the fewest movies in those years
  has at most GENRE_LINKS_SPAN of them (GENRE_LINKS_CANDIDATES when its movies must all be
  fetched to be sorted, by title or score). The link table repeats each movie's year, rating,
  votes, runtime and genre set (as bits), and its index (genre_id, year, rating, movie_id)
  INCLUDE (genre_bits, votes, runtime_minutes) holds the movies of one genre in a span of years.
  The candidates are that genre's links in the years, read from the index alone, that pass the
  rating filters (one index range a year, so links of other ratings are skipped) and have the
  other requested genres' bits. They are sorted by the links' copy of the sort keys, and their
  movies fetched by id in that order, each checked against every filter, until the page is
  full: "Comedy and Romance of the 1990s rated 7 or more, by votes" reads 720 links, sorts 138
  candidates and fetches 21 movies.
- `RARE`, without a year filter, when the rarest requested genre has at most SMALL_GENRE movies:
  its movies are selected in a subquery PostgreSQL plans apart (OFFSET 0: through the GIN index,
  as nothing there asks for an order), only their sort keys are sorted, and the page's rows are
  then fetched by primary key.
- `USUAL` otherwise.

Every way is exact: the sizes only choose the fastest, and a stale size (a load since the API
last read them; user movies, which they do not count) only costs time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import util as sql_util
from sqlalchemy.sql import visitors as sql_visitors

from movies.query.filters import FILTERS, GENRES, FilterShape, GenreWay, MovieQuery, range_parameter
from movies.query.sorting import MOVIE_COLUMNS, SortKey, order_by
from movies.tables import GENRE_BITS, genre, movie, movie_genre

GENRE_LINKS_SPAN = 10_000  # links sorted by their keys at most (index only: about a millisecond)
GENRE_LINKS_CANDIDATES = 2_000  # movies fetched by id to be sorted at most (a few milliseconds)
SMALL_GENRE = 2_000  # movies of a genre found through the GIN index, keys sorted (under 1 ms)

LINKS_GENRE = "links_genre"  # the parameter naming the genre whose links are read

# The movie columns each link repeats: movie column name -> link column name.
LINKED_COLUMNS = {
    "id": "movie_id",
    "year": "year",
    "rating": "rating",
    "votes": "votes",
    "runtime_minutes": "runtime_minutes",
}


@dataclass(frozen=True)
class GenreSizes:
    """Each genre's number of IMDb movies at the latest load, in all and per year."""

    movies: Mapping[str, int]
    # name -> the years with movies, ascending, and the running total of movies up to each.
    _years: Mapping[str, tuple[list[int], list[int]]] = field(default_factory=dict)

    @classmethod
    def of(cls, movies: Mapping[str, int], per_year: Iterable[tuple[str, int, int]]) -> GenreSizes:
        """From the sizes by name and the (name, year, movies) rows of `genre_year`."""
        by_name: dict[str, list[tuple[int, int]]] = {}
        for name, year, count in per_year:
            by_name.setdefault(name, []).append((year, count))
        years = {}
        for name, counts in by_name.items():
            counts.sort()
            years[name] = ([y for y, _ in counts], list(accumulate(n for _, n in counts)))
        return cls(dict(movies), years)

    def in_years(self, name: str, first: int | None, last: int | None) -> int:
        """Movies of the genre from year `first` to `last` (None: unbounded), both included."""
        years, totals = self._years.get(name, ([], []))
        low = 0 if first is None else bisect.bisect_left(years, first)
        high = len(years) if last is None else bisect.bisect_right(years, last)
        if high <= low:
            return 0
        return totals[high - 1] - (totals[low - 1] if low else 0)


def choose_way(query: MovieQuery, sizes: GenreSizes) -> tuple[GenreWay, str | None]:
    """The way to the rows of a list query, and the genre whose links it reads (LINKS only)."""
    if not query.genres:
        return GenreWay.USUAL, None
    years = year_bounds(query)
    if years is None:
        rarest = min(sizes.movies.get(name, 0) for name in query.genres)
        return (GenreWay.RARE if rarest <= SMALL_GENRE else GenreWay.USUAL), None
    in_years = {name: sizes.in_years(name, *years) for name in sorted(query.genres)}
    rarest_name = min(in_years, key=in_years.__getitem__)
    most = GENRE_LINKS_SPAN if sorted_by_links(query.sort) else GENRE_LINKS_CANDIDATES
    if in_years[rarest_name] <= most:
        return GenreWay.LINKS, rarest_name
    return GenreWay.USUAL, None


def year_bounds(query: MovieQuery) -> tuple[int | None, int | None] | None:
    """(first, last) year of the query's year filters (None: unbounded); None without any."""
    lows = [int(value) for name, value in query.ranges if name in ("year", "year_gte")]
    highs = [int(value) for name, value in query.ranges if name in ("year", "year_lte")]
    if not lows and not highs:
        return None
    return (max(lows) if lows else None), (min(highs) if highs else None)


def sorted_by_links(sort: Sequence[SortKey]) -> bool:
    """Whether every sort key is repeated in the links (the candidates sort by the links)."""
    return all(key.column.name in LINKED_COLUMNS for key in sort)


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


def way_branch(
    shape: FilterShape, sort: Sequence[SortKey], conditions: list, branch: Any, fetch: Any
) -> sa.Select:
    """The rows of one keyset branch by the shape's genre way, in `order_by(sort)`, at most
    `fetch` (None: all)."""
    ordering = order_by(sort)
    if shape.genre_way is GenreWay.LINKS:
        links = _candidate_links(shape)
        return _candidates_branch(links, sorted_by_links(sort), conditions, branch, ordering, fetch)
    if shape.genre_way is GenreWay.RARE:
        keys = [movie.c.id, movie.c.source, *(key.column for key in sort)]
        return _rare_branch(conditions, branch, ordering, keys, fetch)
    return sa.select(*MOVIE_COLUMNS).where(*conditions, branch).order_by(*ordering).limit(fetch)


def _rare_branch(conditions: list, branch: Any, ordering: list, keys: list, fetch: Any) -> Any:
    # Sorting whole rows would project every found movie's columns; only the primary key and
    # the sort keys are sorted, and the page's rows are then fetched by primary key (Film-Noir:
    # a quarter less PostgreSQL time for a page).
    found = sa.select(*keys).where(*conditions).offset(sql_int(0)).subquery("found")
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


def _candidate_links(shape: FilterShape) -> Any:
    """The candidate links: those of the LINKS_GENRE parameter's genre in the years of the year
    filters, passing the rating filters, with the bits of every requested genre; index only."""
    of_genre = movie_genre.c.genre_id == (
        sa.select(genre.c.id)
        .where(genre.c.name == sa.bindparam(LINKS_GENRE, type_=genre.c.name.type))
        .scalar_subquery()
    )
    links = _links_in_years(
        of_genre,
        [op(movie_genre.c.year, value) for op, value in _ranges_on(shape.ranges, movie.c.year)],
        [op(movie_genre.c.rating, value) for op, value in _ranges_on(shape.ranges, movie.c.rating)],
    )
    candidates = sa.select(*(links.c[name] for name in LINKED_COLUMNS.values()))
    if shape.several_genres:
        wanted = genre_bits(GENRES)
        candidates = candidates.where(links.c.genre_bits.op("&")(wanted) == wanted)
    return candidates.subquery("genre_links")


def _ranges_on(names: Sequence[str], column: sa.Column) -> list[tuple[Any, Any]]:
    """(operator, bound value) of the range filters on `column`."""
    return [(FILTERS[n].op, range_parameter(n)) for n in names if FILTERS[n].column is column]


def _links_in_years(of_genre: sa.ColumnElement[bool], years: list, rated: list) -> Any:
    """The links meeting `of_genre`, `years` and `rated` (their LINKED_COLUMNS and genre bits),
    index only.

    With rating conditions each year is read as its own index range, (genre, year, ratings): the
    links of the other ratings are skipped, not read (the 720 Romance links of the 1990s rated 7
    or more, not all 6,305 of the 1990s). The years run from the first to the last that the
    genre's links have within the bounds (two index probes, user movies' links included), so
    open bounds cost nothing.
    """
    columns = [movie_genre.c[name] for name in (*LINKED_COLUMNS.values(), "genre_bits")]
    if not rated:
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
        sa.select(*columns)
        .where(of_genre, movie_genre.c.year == span_years.c.year, *rated)
        .offset(sql_int(0))  # kept a subquery: one index range per year, never a join
        .lateral("year_links")
    )
    return (
        sa.select(*per_year.c)
        .select_from(span_years.join(per_year, sa.true()))
        .subquery("rated_links")
    )


def _candidates_branch(
    links: Any, by_links: bool, conditions: list, branch: Any, ordering: list, fetch: Any
) -> Any:
    """The movies of the candidate links, in order, each fetched by id in a lateral subquery (by
    its primary key, one candidate after another) and checked against every filter.

    `by_links`: the sort keys are all repeated in the links (`sorted_by_links`), so the
    candidates are sorted by the links' copy of them and taken past the keyset first: the movies
    come in page order, so PostgreSQL fetches them only until the page is full. A title or score
    key is read from the movies, which are then all fetched to be sorted.
    """
    candidates = sa.select(links)
    if by_links:
        on_links = _adapter(links, found=None)
        candidates = candidates.where(on_links(branch)).order_by(*map(on_links, ordering))
    candidates = candidates.subquery("candidate_links")
    found = (
        sa.select(*MOVIE_COLUMNS)
        .where(movie.c.id == candidates.c.movie_id, *conditions)
        .offset(sql_int(0))  # kept a subquery: fetched per candidate, never joined wholesale
        .lateral("candidate_movie")
    )
    on_page = _adapter(candidates, found)
    page = (
        sa.select(*found.c)
        .select_from(candidates.join(found, sa.true()))
        .order_by(*map(on_page, ordering))
        .limit(fetch)
    )
    return page if by_links else page.where(on_page(branch))


def _adapter(links: Any, found: Any) -> Any:
    """A function rewriting a clause on `movie` onto the links' copy of its columns and, for
    the others, onto `found`."""

    def column(element: Any) -> Any:
        if isinstance(element, sa.Column) and element.table is movie:
            name = LINKED_COLUMNS.get(element.name)
            return found.c[element.name] if name is None else links.c[name]
        return None

    return lambda clause: sql_visitors.replacement_traverse(clause, {}, column)
