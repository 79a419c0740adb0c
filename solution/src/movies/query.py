"""Pure query building: a validated `MovieQuery` becomes a SQLAlchemy Core statement.

Client-given names only ever select entries of `SORT_COLUMNS` and `FILTERS`; values travel as
bound parameters. Nothing here touches a database.

Order and keyset pagination
    Every list is ordered by up to three sort keys, NULLs last in both directions, then by `id` in
    the direction of the first key: a total order, so a page boundary is a single point
    (the last row's key values and id) and the next page is "rows strictly after that point".

    Single-key sorts (the common case) are built so that the keyset predicate is an index
    condition of the matching sort index from 01-schema.sql. Each key has one index,
    `(key ASC NULLS LAST, id ASC)`; read backward it gives `key DESC NULLS FIRST, id DESC`. So a
    descending nullable key is always read as two branches, the non-NULL keys and then the NULL
    ones, each ordered `key DESC NULLS FIRST` (within a branch the NULL placement of the key
    changes nothing, and the order of the branches puts the NULLs last). After (r, i):

        (SELECT ... WHERE <filters> AND (rating, id) < (r, i)
            ORDER BY rating DESC NULLS FIRST, id DESC LIMIT n)
        UNION ALL
        (SELECT ... WHERE <filters> AND rating IS NULL
            ORDER BY rating DESC NULLS FIRST, id DESC LIMIT n)
        LIMIT n

    The row comparison excludes NULL keys, the second branch supplies them (they sort last), and
    PostgreSQL's Append stops before the second branch once the first fills the page. The first
    page is the same with `rating IS NOT NULL` in place of the row comparison. After a NULL key
    only the NULL branch remains: `rating IS NULL AND id < i`. So page 10,000 costs what page 1
    costs. Ascending reads the index forward: NULLs come last by themselves, the first page is a
    single SELECT and a cursor adds the same two branches. `title` is NOT NULL and needs one
    branch only, in both directions.

    Multi-key sorts use the general lexicographic predicate (with NULL handling) plus a range
    condition on the first key, split into the same two branches. They are exact; their cost grows
    with the number of rows tied on the first key, which is acceptable for a secondary access path.

Genres: few candidates, found first
    Two genre queries are slow for a planner that has only the GIN index on `genres` and the sort
    indexes. A genre with a year filter ("Comedy and Romance of the 1990s rated 7 or more") can
    match few movies while each condition alone matches tens of thousands: PostgreSQL builds and
    intersects three large bitmaps (GIN genres, year, rating), 10-15 ms a page. And a rare genre
    ("Film-Noir", 759 movies) is read either through the GIN index and sorted (half a
    millisecond) or by walking the sort index and discarding the other genres (11-70 ms), as the
    statistics sample makes the genre look rarer or more common.

    `genre_ways` gives such a query two ways to its rows, each a branch of the statement behind
    a one-time condition; exactly one holds, so only one reads rows:

    - With a year filter: the link table repeats each movie's year, rating and genre set (as
      bits), and its index (genre_id, year, rating, movie_id) INCLUDE (genre_bits) holds the
      movies of one genre in a span of years. The links of the rarest requested genre
      (`genre.imdb_movies`, set by every load) in those years that pass the rating filters and
      have the other requested genres' bits are the candidates. One index-only read of at most
      GENRE_LINKS_SPAN links (GENRE_LINKS_CANDIDATES when no bits narrow them) collects them,
      once per statement; with a rating filter it reads one index range a year, so links of
      other ratings are skipped. When the candidates are few (at most GENRE_LINKS_CANDIDATES),
      the page is fetched by id among them.
    - Without one: when the rarest requested genre has at most SMALL_GENRE movies, its movies are
      selected in a subquery PostgreSQL plans apart (OFFSET 0: through the GIN index, as nothing
      there asks for an order), only their sort keys are sorted, and the page's rows are then
      fetched by primary key.

    Every filter still applies to the movie rows. Otherwise the usual plan runs.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import util as sql_util

from movies.search import Search
from movies.tables import GENRE_BITS, genre, movie, movie_genre

DIALECT = postgresql.psycopg2.dialect()

MAX_SORT_KEYS = 3
MAX_LIMIT = 100
DEFAULT_LIMIT = 20

# API name -> column. Only these can be sorted on.
SORT_COLUMNS: dict[str, sa.Column] = {
    "title": movie.c.title,
    "year": movie.c.year,
    "rating": movie.c.rating,
    "votes": movie.c.votes,
    "runtime": movie.c.runtime_minutes,
    "score": movie.c.score,  # the weighted rating, see movies.score
}
NOT_NULL_SORT_KEYS = frozenset({"title"})
DECIMAL_SORT_KEYS = frozenset({"rating", "score"})  # numeric: cursors carry them as strings


@dataclass(frozen=True)
class RangeFilter:
    """One comparison filter: `<column> <op> <value>`."""

    column: sa.Column
    op: Callable[[Any, Any], Any]
    kind: type  # int or Decimal
    minimum: int | Decimal
    maximum: int | Decimal


_RATING = {"kind": Decimal, "minimum": Decimal(0), "maximum": Decimal(10)}
_YEAR = {"kind": int, "minimum": 0, "maximum": 32767}
_COUNT = {"kind": int, "minimum": 0, "maximum": 2_147_483_647}

# Query parameter -> filter. Declared as data: adding a filter is one line here.
FILTERS: dict[str, RangeFilter] = {
    "rating_gt": RangeFilter(movie.c.rating, operator.gt, **_RATING),
    "rating_gte": RangeFilter(movie.c.rating, operator.ge, **_RATING),
    "rating_lt": RangeFilter(movie.c.rating, operator.lt, **_RATING),
    "rating_lte": RangeFilter(movie.c.rating, operator.le, **_RATING),
    "year": RangeFilter(movie.c.year, operator.eq, **_YEAR),
    "year_gte": RangeFilter(movie.c.year, operator.ge, **_YEAR),
    "year_lte": RangeFilter(movie.c.year, operator.le, **_YEAR),
    "runtime_gte": RangeFilter(movie.c.runtime_minutes, operator.ge, **_COUNT),
    "runtime_lte": RangeFilter(movie.c.runtime_minutes, operator.le, **_COUNT),
    "votes_gte": RangeFilter(movie.c.votes, operator.ge, **_COUNT),
}

# The columns of a movie, in the order the serializer reads them.
MOVIE_COLUMNS = (
    movie.c.id,
    movie.c.source,
    movie.c.title,
    movie.c.original_title,
    movie.c.year,
    movie.c.genres,
    movie.c.rating,
    movie.c.votes,
    movie.c.runtime_minutes,
    movie.c.is_adult,
    movie.c.imdb_id,
    movie.c.score,
)
SORT_VALUE_COLUMN = {
    name: [c.name for c in MOVIE_COLUMNS].index(col.name) for name, col in SORT_COLUMNS.items()
}


class QueryError(ValueError):
    """A query that cannot be built (bad sort key, bad keyset values)."""


@dataclass(frozen=True)
class SortKey:
    """One sort key: an API name from SORT_COLUMNS and a direction."""

    name: str
    descending: bool = False

    def __str__(self) -> str:
        return f"-{self.name}" if self.descending else self.name

    @property
    def column(self) -> sa.Column:
        return SORT_COLUMNS[self.name]

    @property
    def nullable(self) -> bool:
        return self.name not in NOT_NULL_SORT_KEYS


DEFAULT_SORT = (SortKey("title"),)


def parse_sort(text: str) -> tuple[SortKey, ...]:
    """Parse `-rating,title` into sort keys.

    :raise QueryError: on an empty or unknown key, a duplicate key, or more than three keys.
    """
    parts = text.split(",")
    if len(parts) > MAX_SORT_KEYS:
        raise QueryError(f"at most {MAX_SORT_KEYS} sort keys are allowed, got {len(parts)}")
    keys: list[SortKey] = []
    seen: set[str] = set()
    for part in parts:
        name = part[1:] if part.startswith("-") else part
        if name not in SORT_COLUMNS:
            allowed = ", ".join(SORT_COLUMNS)
            raise QueryError(
                f"cannot sort by {part!r}: use one of {allowed}, optionally prefixed with '-'"
            )
        if name in seen:
            raise QueryError(f"sort key {name!r} appears more than once")
        seen.add(name)
        keys.append(SortKey(name, part.startswith("-")))
    return tuple(keys)


@dataclass(frozen=True)
class MovieQuery:
    """A validated list request. `ranges` holds (param, value) pairs sorted by param."""

    genres: tuple[str, ...] = ()
    ranges: tuple[tuple[str, int | Decimal], ...] = ()
    include_adult: bool = False
    sort: tuple[SortKey, ...] = DEFAULT_SORT
    limit: int = DEFAULT_LIMIT
    genres_any: tuple[str, ...] = ()  # at least one of these (sorted)
    genres_not: tuple[str, ...] = ()  # none of these (sorted)
    search: Search | None = None

    def fingerprint(self) -> str:
        """A short digest of the filters and the sort (not the limit): what a cursor is bound to."""
        return _fingerprint(
            self.genres,
            self.ranges,
            self.include_adult,
            self.sort,
            self.genres_any,
            self.genres_not,
            None if self.search is None else self.search.text,
        )


@functools.lru_cache(maxsize=4096)
def _fingerprint(
    genres: tuple[str, ...],
    ranges: tuple[tuple[str, Any], ...],
    include_adult: bool,
    sort: tuple[SortKey, ...],
    genres_any: tuple[str, ...] = (),
    genres_not: tuple[str, ...] = (),
    search: str | None = None,
) -> str:
    canonical = json.dumps(
        {
            "g": sorted(genres),
            "r": [[name, str(value)] for name, value in sorted(ranges)],
            "a": include_adult,
            "s": [str(key) for key in sort],
            "ga": sorted(genres_any),
            "gn": sorted(genres_not),
            "q": search,
        },
        separators=(",", ":"),
    )
    digest = hashlib.sha256(canonical.encode()).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Keyset:
    """A page boundary: the last row's sort key values (one per key) and its id."""

    values: tuple[Any, ...]
    id: str


def keyset_from_json(sort: Sequence[SortKey], values: Any, movie_id: Any) -> Keyset:
    """Rebuild a Keyset from a cursor's JSON values (ratings travel as strings).

    :raise QueryError: if the values do not fit the sort keys.
    """
    if tuple(sort) == RELEVANCE:
        return relevance_keyset_from_json(values, movie_id)
    if not isinstance(values, list) or len(values) != len(sort) or not isinstance(movie_id, str):
        raise QueryError("cursor does not match the sort")
    converted: list[Any] = []
    for key, value in zip(sort, values, strict=True):
        if value is None and key.nullable:
            converted.append(None)
        elif key.name == "title" and isinstance(value, str):
            converted.append(value)
        elif key.name in DECIMAL_SORT_KEYS and isinstance(value, str):
            try:
                converted.append(Decimal(value))
            except ArithmeticError:
                raise QueryError(f"cursor holds a bad {key.name}") from None
        elif key.name != "title" and key.name not in DECIMAL_SORT_KEYS and type(value) is int:
            converted.append(value)
        else:
            raise QueryError(f"cursor holds a bad value for {key.name}")
    return Keyset(tuple(converted), movie_id)


def keyset_to_json(keyset: Keyset) -> list[Any]:
    """The keyset values as JSON-safe values (Decimal → str, exact)."""
    return [str(v) if isinstance(v, Decimal) else v for v in keyset.values]


def keyset_of_row(sort: Sequence[SortKey], row: Sequence[Any]) -> Keyset:
    """The keyset of a row selected with MOVIE_COLUMNS (and the match class for relevance)."""
    if tuple(sort) == RELEVANCE:
        return relevance_keyset(row)
    return Keyset(tuple(row[SORT_VALUE_COLUMN[key.name]] for key in sort), row[0])


def _conditions(
    genres: Any,
    ranges: Sequence[tuple[str, Any]],
    include_adult: bool,
    genres_any: Any = None,
    genres_not: Any = None,
    tsquery: Any = None,
) -> list:
    conditions: list[sa.ColumnElement[bool]] = []
    if genres is not None:
        conditions.append(movie.c.genres.contains(genres))
    if genres_any is not None:
        conditions.append(movie.c.genres.overlap(genres_any))
    if genres_not is not None:
        conditions.append(sa.not_(movie.c.genres.overlap(genres_not)))
    if tsquery is not None:
        conditions.append(search_matches(tsquery))
    for name, value in ranges:
        spec = FILTERS[name]
        conditions.append(spec.op(spec.column, value))
    if not include_adult:
        conditions.append(movie.c.is_adult.is_(False))
    return conditions


def filter_conditions(query: MovieQuery) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of the filters (no keyset)."""
    genres = list(query.genres) if query.genres else None
    return _conditions(
        genres,
        query.ranges,
        query.include_adult,
        list(query.genres_any) if query.genres_any else None,
        list(query.genres_not) if query.genres_not else None,
        None if query.search is None else query.search.tsquery,
    )


def order_by(sort: Sequence[SortKey]) -> list[sa.ColumnElement[Any]]:
    """ORDER BY clauses of one branch (see `keyset_branches`): each key NULLs last, then id in the
    first key's direction; but a descending nullable first key NULLs first.

    That first key is split into a non-NULL branch and a NULL branch, read in that order, so its
    NULLs still come last; inside a branch its NULL placement changes nothing, and
    `DESC NULLS FIRST` is the order of its index `(key ASC NULLS LAST, id ASC)` read backward.
    NOT NULL columns (title, id) keep PostgreSQL's default NULL placement so the clause matches
    the indexes exactly (an explicit NULLS LAST on `title DESC` would not match `(title, id)`).
    """
    clauses: list[sa.ColumnElement[Any]] = []
    for position, key in enumerate(sort):
        clause = key.column.desc() if key.descending else key.column.asc()
        if key.nullable:
            first_descending = position == 0 and key.descending
            clause = clause.nulls_first() if first_descending else clause.nulls_last()
        clauses.append(clause)
    clauses.append(movie.c.id.desc() if sort[0].descending else movie.c.id.asc())
    return clauses


def _beyond(column: Any, value: Any, descending: bool) -> sa.ColumnElement[bool]:
    return column < value if descending else column > value


def _at_or_beyond(column: Any, value: Any, descending: bool) -> sa.ColumnElement[bool]:
    return column <= value if descending else column >= value


def _equal(column: sa.Column, value: Any) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _after_key(key: SortKey, value: Any) -> sa.ColumnElement[bool]:
    """Rows strictly after `value` within one key's order (NULLs last)."""
    if value is None:
        return sa.false()  # nothing comes after NULL: NULLs are last
    beyond = _beyond(key.column, value, key.descending)
    return sa.or_(beyond, key.column.is_(None)) if key.nullable else beyond


def _lexicographic_after(sort: Sequence[SortKey], keyset: Keyset) -> sa.ColumnElement[bool]:
    """The general keyset predicate: OR over prefixes of (equal..., strictly after)."""
    alternatives: list[sa.ColumnElement[bool]] = []
    equal_prefix: list[sa.ColumnElement[bool]] = []
    for key, value in zip(sort, keyset.values, strict=True):
        alternatives.append(sa.and_(*equal_prefix, _after_key(key, value)))
        equal_prefix.append(_equal(key.column, value))
    alternatives.append(sa.and_(*equal_prefix, _beyond(movie.c.id, keyset.id, sort[0].descending)))
    return sa.or_(*alternatives)


def keyset_branches(sort: Sequence[SortKey], keyset: Keyset | None) -> list[sa.ColumnElement[bool]]:
    """Conditions, one per UNION ALL branch in order, selecting the rows after `keyset` (every
    row without one). Each branch is ordered by `order_by(sort)`."""
    first = sort[0]
    descending = first.descending
    if keyset is None:
        if first.nullable and descending:
            return [first.column.is_not(None), first.column.is_(None)]
        return [sa.true()]
    value = keyset.values[0]
    if len(sort) == 1:
        if value is None:
            return [sa.and_(first.column.is_(None), _beyond(movie.c.id, keyset.id, descending))]
        row = sa.tuple_(first.column, movie.c.id)
        bound = sa.tuple_(_bound(value, first.column), _bound(keyset.id, movie.c.id))
        branches = [row < bound if descending else row > bound]
        if first.nullable:
            branches.append(first.column.is_(None))
        return branches
    general = _lexicographic_after(sort, keyset)
    if value is None:
        return [sa.and_(first.column.is_(None), general)]
    branches = [sa.and_(_at_or_beyond(first.column, value, descending), general)]
    if first.nullable:
        branches.append(first.column.is_(None))
    return branches


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


def genre_ways(
    genres: Any, ranges: Sequence[tuple[str, Any]], several_genres: bool = True
) -> tuple[Way, ...]:
    """The ways to a page of a query with `genres` (all of them), each behind a one-time
    condition, exactly one of which holds; USUAL without genres.

    `genres` is a list of names or a bound parameter; `ranges` as in MovieQuery.ranges, values or
    bound parameters; `several_genres` whether `genres` may hold more than one name.
    """
    if genres is None:
        return USUAL
    names = (
        genres if isinstance(genres, sa.BindParameter) else sa.literal(genres, movie.c.genres.type)
    )
    if not _ranges_on(ranges, movie.c.year):
        # A name outside the vocabulary (a database seeded without a load) counts as small.
        smallest = sa.func.coalesce(sa.func.min(genre.c.imdb_movies), _sql_int(0))
        small = sa.select(smallest).where(
            genre.c.name == sa.any_(names)
        ).scalar_subquery() <= _sql_int(SMALL_GENRE)
        return Way((small,), apart=True), Way((sa.not_(small),))
    few, ids = _few_links(names, ranges, several_genres)
    return Way((few, movie.c.id == sa.any_(ids))), Way((sa.not_(few),))


def genre_bits(names: Any) -> sa.ScalarSelect[int]:
    """The bits of these genre names (a list or an array parameter), as movie_genre.genre_bits
    holds them."""
    if not isinstance(names, sa.ColumnElement):
        names = sa.literal(list(names), movie.c.genres.type)
    bit = sa.literal_column("1::bigint", sa.BigInteger).op("<<")(genre.c.id)
    return (
        sa.select(sa.func.coalesce(sa.func.bit_or(bit), _sql_int(0)))
        .where(genre.c.name == sa.any_(names), genre.c.id < _sql_int(GENRE_BITS))
        .scalar_subquery()
    )


def _few_links(names: Any, ranges: Sequence[tuple[str, Any]], several: bool) -> tuple[Any, Any]:
    """(whether the rarest genre's links in the years hold few candidates, their movie ids as an
    array)."""
    rarest = (
        sa.select(genre.c.id)
        .where(genre.c.name == sa.any_(names))
        .order_by(genre.c.imdb_movies, genre.c.id)
        .limit(_sql_int(1))
        .scalar_subquery()
    )
    years = [f.op(movie_genre.c.year, v) for f, v in _ranges_on(ranges, movie.c.year)]
    rated = [f.op(movie_genre.c.rating, v) for f, v in _ranges_on(ranges, movie.c.rating)]
    links = _links_in_years(movie_genre.c.genre_id == rarest, years, rated)
    candidate: sa.ColumnElement[bool] = sa.true()
    read_most = GENRE_LINKS_CANDIDATES
    if several:
        wanted = genre_bits(names)
        candidate = links.c.genre_bits.op("&")(wanted) == wanted
        # Links read that are no candidates are read for nothing: with the genre bits narrowing
        # them, a longer read may still hold few candidates.
        read_most = GENRE_LINKS_SPAN
    span = (
        sa.select(links.c.movie_id, candidate.label("candidate"))
        .limit(_sql_int(read_most + 1))
        .subquery("span")
    )
    # One read of the span, once per statement however many branches ask.
    gate = sa.select(
        sa.func.count().label("links"),
        sa.func.array_agg(span.c.movie_id).filter(span.c.candidate).label("ids"),
    ).cte("genre_links_gate")
    few = sa.and_(
        gate.c.links <= _sql_int(read_most),
        sa.func.coalesce(sa.func.cardinality(gate.c.ids), _sql_int(0))
        <= _sql_int(GENRE_LINKS_CANDIDATES),
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
        .offset(_sql_int(0))  # kept a subquery: one index range per year, never a join
        .lateral("year_links")
    )
    return (
        sa.select(per_year.c.movie_id, per_year.c.genre_bits)
        .select_from(span_years.join(per_year, sa.true()))
        .subquery("rated_links")
    )


def _ranges_on(
    ranges: Sequence[tuple[str, Any]], column: sa.Column
) -> list[tuple[RangeFilter, Any]]:
    return [(FILTERS[name], value) for name, value in ranges if FILTERS[name].column is column]


def _sql_int(value: int) -> sa.ColumnElement[int]:
    """An integer written into the SQL text (a compiled shape has no anonymous parameters)."""
    return sa.literal_column(str(int(value)), sa.Integer)


def _bound(value: Any, column: sa.Column) -> Any:
    return value if isinstance(value, sa.BindParameter) else sa.literal(value, column.type)


def _list_select(
    conditions: list,
    sort: Sequence[SortKey],
    after: Keyset | None,
    fetch: Any,
    ways: Sequence[Way] = USUAL,
) -> sa.Executable:
    ordering = order_by(sort)
    keys = [movie.c.id, movie.c.source, *(key.column for key in sort)]
    branches = [
        _branch(way, conditions, branch, ordering, keys, fetch)
        for branch in keyset_branches(sort, after)
        for way in ways
    ]
    if len(branches) == 1:
        return branches[0]
    return sa.union_all(*branches).limit(fetch)


def _branch(
    way: Way, conditions: list, branch: Any, ordering: list, keys: list, fetch: Any
) -> sa.Select:
    """The rows of one keyset branch by one way, in order, at most `fetch` (None: all)."""
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
    found = sa.select(*keys).where(*conditions, *way.extra).offset(_sql_int(0)).subquery("found")
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


def list_statement(query: MovieQuery, after: Keyset | None = None) -> sa.Executable:
    """SELECT the page after `after` (or the first page), fetching limit + 1 rows.

    The extra row tells the caller whether there is a next page. With `sort=relevance` each row
    has one more column, its match class (see `relevance_select`).
    """
    return _ordered_select(query, after, query.limit + 1)


def export_statement(query: MovieQuery) -> sa.Executable:
    """SELECT every movie matching the filters, in the query's order (`limit` is ignored).

    The one statement without a LIMIT: GET /movies/export streams it from a server-side cursor.
    With `sort=relevance` each row has the match class last, as in `list_statement`.
    """
    return _ordered_select(query, None, None)


def _ordered_select(query: MovieQuery, after: Keyset | None, fetch: int | None) -> sa.Executable:
    """The movies matching the filters in the query's order, after `after`, at most `fetch`."""
    if query.sort == RELEVANCE:
        assert query.search is not None, "sort=relevance needs a search"
        return relevance_select(
            filter_conditions(dataclasses.replace(query, search=None)),
            query.search.tsquery,
            query.search.text,
            query.search.prefix_pattern,
            after,
            fetch,
        )
    genres = list(query.genres) if query.genres else None
    ways = genre_ways(genres, query.ranges, several_genres=len(query.genres) > 1)
    return _list_select(filter_conditions(query), query.sort, after, fetch, ways)


def list_sql(query: MovieQuery, after: Keyset | None = None) -> tuple[str, dict[str, Any]]:
    """`list_statement` as SQL text and parameters for the driver, compiled once per shape.

    The shape (which filters, the sort, which cursor values are NULL) decides the SQL; values
    are parameters. Building and compiling a Core statement costs far more than running it, so
    each shape is compiled once per process and reused.
    """
    params: dict[str, Any] = {"fetch": query.limit + 1, **_filter_params(query)}
    if after is not None:
        params["after_id"] = after.id
        for index, value in enumerate(after.values):
            params[f"after_{index}"] = value
    if query.sort == RELEVANCE:
        # The match class of the cursor decides which branches remain: it is part of the shape.
        after_shape = None if after is None else (after.values[0], after.values[1] is None)
        return _compile_relevance(_filter_shape(query), after_shape), params
    shape = (
        _filter_shape(query),
        query.sort,
        None if after is None else tuple(value is None for value in after.values),
    )
    return _compile_list(shape), params


def _filter_shape(query: MovieQuery) -> tuple:
    """Which filters a query uses (not their values): part of the shape of its SQL."""
    return (
        min(len(query.genres), 2),  # none, one or several
        tuple(name for name, _ in query.ranges),
        query.include_adult,
        bool(query.genres_any),
        bool(query.genres_not),
        query.search is not None,
    )


def _filter_params(query: MovieQuery) -> dict[str, Any]:
    """The values of the filters, named as `_bound_conditions` names their parameters."""
    params: dict[str, Any] = dict(query.ranges)
    if query.genres:
        params["genres"] = list(query.genres)
    if query.genres_any:
        params["genres_any"] = list(query.genres_any)
    if query.genres_not:
        params["genres_not"] = list(query.genres_not)
    if query.search is not None:
        params["tsquery"] = query.search.tsquery
        params["search_text"] = query.search.text
        params["search_prefix"] = query.search.prefix_pattern
    return params


def _bound_genres_and_ranges(filter_shape: tuple) -> tuple[Any, list[tuple[str, Any]]]:
    """The `genres` and range filters of a shape as bound parameters (as `_filter_params` names
    them)."""
    has_genres, range_names = filter_shape[:2]
    genres = sa.bindparam("genres", type_=movie.c.genres.type) if has_genres else None
    ranges = [(name, sa.bindparam(name, type_=FILTERS[name].column.type)) for name in range_names]
    return genres, ranges


def _bound_conditions(filter_shape: tuple) -> list:
    _, _, include_adult, has_any, has_not, has_search = filter_shape
    names = movie.c.genres.type
    return _conditions(
        *_bound_genres_and_ranges(filter_shape),
        include_adult,
        sa.bindparam("genres_any", type_=names) if has_any else None,
        sa.bindparam("genres_not", type_=names) if has_not else None,
        sa.bindparam("tsquery", type_=sa.Text) if has_search else None,
    )


@functools.lru_cache(maxsize=4096)
def _compile_list(shape: tuple) -> str:
    filter_shape, sort, null_values = shape
    after = None
    if null_values is not None:
        values = tuple(
            None if is_null else sa.bindparam(f"after_{index}", type_=key.column.type)
            for index, (key, is_null) in enumerate(zip(sort, null_values, strict=True))
        )
        after = Keyset(values, sa.bindparam("after_id", type_=movie.c.id.type))  # type: ignore[arg-type]
    fetch = sa.bindparam("fetch", type_=sa.Integer)
    ways = genre_ways(*_bound_genres_and_ranges(filter_shape), several_genres=filter_shape[0] > 1)
    statement = _list_select(_bound_conditions(filter_shape), sort, after, fetch, ways)
    return statement.compile(dialect=DIALECT).string


@functools.lru_cache(maxsize=1024)
def _compile_relevance(filter_shape: tuple, after_shape: tuple[int, bool] | None) -> str:
    after = None
    if after_shape is not None:
        match_class, votes_is_null = after_shape
        votes = None if votes_is_null else sa.bindparam("after_1", type_=movie.c.votes.type)
        after = Keyset((match_class, votes), sa.bindparam("after_id", type_=movie.c.id.type))  # type: ignore[arg-type]
    statement = relevance_select(
        _bound_conditions((*filter_shape[:-1], False)),  # the search is relevance_select's
        sa.bindparam("tsquery", type_=sa.Text),
        sa.bindparam("search_text", type_=movie.c.search_title.type),
        sa.bindparam("search_prefix", type_=movie.c.search_title.type),
        after,
        sa.bindparam("fetch", type_=sa.Integer),
    )
    return statement.compile(dialect=DIALECT).string


def movie_by_id_sql() -> str:
    """SQL text selecting one movie by `%(movie_id)s`."""
    return _MOVIE_BY_ID


SOURCES = {"imdb": "imdb", "user": "user"}  # literals, so the planner prunes the partition


def is_unfiltered(query: MovieQuery) -> bool:
    """Whether the query selects every movie (adult ones or not): no filter, no search."""
    return query == MovieQuery(
        include_adult=query.include_adult, sort=query.sort, limit=query.limit
    )


def facet_statement(query: MovieQuery, facet: str, source: str | None = None) -> sa.Select:
    """SELECT (value, count) of one facet over the movies matching the filters (no cursor, no
    limit, no sort): `genre` (name, most movies first, genres without a movie left out) or
    `decade` (1990, ... ascending, NULL year last as decade NULL). `source` limits the count to
    one partition ('imdb' or 'user').

    :raise QueryError: for an unknown facet.
    """
    conditions = filter_conditions(query)
    if source is not None:
        conditions.append(movie.c.source == sa.literal_column(f"'{SOURCES[source]}'"))
    count = sa.func.count().label("count")
    if facet == "genre":
        names = sa.select(sa.func.unnest(movie.c.genres).label("name")).where(*conditions)
        name = names.subquery().c.name
        return sa.select(name, count).group_by(name).order_by(count.desc(), name)
    if facet == "decade":
        decade = (movie.c.year // 10 * 10).label("decade")
        return (
            sa.select(decade, count)
            .where(*conditions)
            .group_by(decade)
            .order_by(decade.asc().nulls_last())
        )
    raise QueryError(f"unknown facet {facet!r}")


def count_statement(query: MovieQuery) -> sa.Select:
    """SELECT count(*) of the rows matching the filters."""
    return sa.select(sa.func.count()).select_from(movie).where(*filter_conditions(query))


def estimate_statement(query: MovieQuery) -> sa.Select:
    """The statement whose EXPLAIN row estimate stands for the count."""
    return sa.select(movie.c.id).where(*filter_conditions(query))


_MOVIE_BY_ID = (
    sa.select(*MOVIE_COLUMNS)
    .where(movie.c.id == sa.bindparam("movie_id", type_=movie.c.id.type))
    .compile(dialect=DIALECT)
    .string
)


# --- Title search -----------------------------------------------------------------------------
#
# The search fold of the titles (movies.search) is stored in search_title / search_original;
# a GIN index on SEARCH_VECTOR (01-schema.sql, the same expression) finds the matching movies.
#
# sort=relevance orders the matches by a match class, then by votes (most first, NULLs last),
# then id (descending, like every descending sort):
#     3  the folded title or original title IS the folded query
#     2  it starts with the folded query
#     1  any other match
# Each class is two UNION ALL branches, the rated movies (votes not NULL) and then the others,
# like any descending sort (`keyset_branches`): ordered by (votes DESC NULLS FIRST, id DESC), the
# order of movie_votes_asc_idx read backward, each with its own LIMIT: PostgreSQL stops after the
# branches that fill the page. Classes 3 and 2 are found through B-tree indexes on the folds
# (equality and LIKE prefix, both "C" collation); class 1 through the GIN index or, for very
# common words, by walking the votes index and checking each movie, whichever the planner prices
# lower. A cursor holds (class, votes) and the id; the next page reads the rest of its class and
# the lower classes.

RELEVANCE = (SortKey("relevance", descending=True),)
_BY_VOTES = (SortKey("votes", descending=True),)
MATCH_CLASSES = (3, 2, 1)

# The folds are words of letters and digits separated by single spaces: cast to tsvector as they
# are, one lexeme per word (no text-search parser, so no locale decides what a word is).
SEARCH_VECTOR = sa.cast(
    movie.c.search_title.op("||")(sa.literal_column("' '")).op("||")(movie.c.search_original),
    postgresql.TSVECTOR,
)


def search_matches(tsquery: Any) -> sa.ColumnElement[bool]:
    """The movies whose folded titles hold every word of the tsquery text."""
    return SEARCH_VECTOR.op("@@")(sa.cast(tsquery, postgresql.TSQUERY))


def _match_classes(text: Any, prefix: Any) -> dict[int, sa.ColumnElement[bool]]:
    exact = sa.or_(movie.c.search_title == text, movie.c.search_original == text)
    starts = sa.or_(movie.c.search_title.like(prefix), movie.c.search_original.like(prefix))
    return {3: exact, 2: sa.and_(starts, sa.not_(exact)), 1: sa.not_(starts)}


def relevance_select(
    conditions: list, tsquery: Any, text: Any, prefix: Any, after: Keyset | None, fetch: Any
) -> sa.Executable:
    """The page after `after` in relevance order; `after.values` is (match class, votes).

    `conditions` are the other filters. Rows are MOVIE_COLUMNS followed by the match class.
    """
    classes = _match_classes(text, prefix)
    # A title that equals or starts with the folded query holds all its words (the last as a
    # prefix): classes 3 and 2 need no full-text condition, only their B-tree ones. Combining
    # them with the GIN scan would cost as much as the GIN scan of a common word.
    classes[1] = sa.and_(search_matches(tsquery), classes[1])
    ordering = order_by(_BY_VOTES)
    # Exact matches are few: a subquery that PostgreSQL cannot flatten (OFFSET 0) fetches them by
    # the B-trees alone; the other filters and the order apply to those rows. Otherwise it may walk
    # the votes index in search of them, or AND them with a large bitmap of a broad filter
    # (genre=Drama: 250,000 rows read to keep 25).
    exact = sa.select(*movie.c).where(classes[3]).offset(sa.literal_column("0")).subquery("exact")
    adapt = sql_util.ClauseAdapter(exact).traverse
    branches = []
    for match_class in MATCH_CLASSES:
        if after is not None and match_class > after.values[0]:
            continue
        by_votes = None
        if after is not None and match_class == after.values[0]:
            by_votes = Keyset(after.values[1:], after.id)
        rests: list[Any] = keyset_branches(_BY_VOTES, by_votes)
        columns = (*MOVIE_COLUMNS, sa.literal_column(str(match_class)).label("match_class"))
        for rest in rests:
            where = [*conditions, classes[match_class], rest]
            if match_class == 3:
                statement = (
                    sa.select(*map(adapt, columns))
                    .where(*map(adapt, [*conditions, rest]))
                    .order_by(*map(adapt, ordering))
                )
            else:
                statement = sa.select(*columns).where(*where).order_by(*ordering)
            branches.append(statement.limit(fetch))
    if len(branches) == 1:
        return branches[0]
    return sa.union_all(*branches).limit(fetch)


def relevance_keyset(row: Sequence[Any]) -> Keyset:
    """The keyset of a row selected by `relevance_select` (its last column is the class)."""
    return Keyset((row[-1], row[SORT_VALUE_COLUMN["votes"]]), row[0])


def relevance_keyset_from_json(values: Any, movie_id: Any) -> Keyset:
    """Rebuild a relevance Keyset from a cursor's JSON values.

    :raise QueryError: if the values are not a match class and a vote count (or null).
    """
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not isinstance(movie_id, str)
        or type(values[0]) is not int
        or values[0] not in MATCH_CLASSES
        or not (values[1] is None or type(values[1]) is int)
    ):
        raise QueryError("cursor does not match the sort")
    return Keyset((values[0], values[1]), movie_id)
