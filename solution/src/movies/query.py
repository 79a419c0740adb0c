"""Pure query building: a validated `MovieQuery` becomes a SQLAlchemy Core statement.

Client-given names only ever select entries of `SORT_COLUMNS` and `FILTERS`; values travel as
bound parameters. Nothing here touches a database.

Order and keyset pagination
    Every list is ordered by up to three sort keys, NULLs last in both directions, then by `id` in
    the direction of the first key: a total order, so a page boundary is a single point
    (the last row's key values and id) and the next page is "rows strictly after that point".

    Single-key sorts (the common case) are built so that the keyset predicate is an index
    condition of the matching sort index from 01-schema.sql (`(key DESC NULLS LAST, id DESC)` and
    friends). For a nullable key, descending, after (r, i):

        (SELECT ... WHERE <filters> AND (rating, id) < (r, i)
            ORDER BY rating DESC NULLS LAST, id DESC LIMIT n)
        UNION ALL
        (SELECT ... WHERE <filters> AND rating IS NULL
            ORDER BY rating DESC NULLS LAST, id DESC LIMIT n)
        LIMIT n

    The row comparison excludes NULL keys, the second branch supplies them (they sort last), and
    PostgreSQL's Append stops before the second branch once the first fills the page. After a NULL
    key only the NULL branch remains: `rating IS NULL AND id < i`. So page 10,000 costs what page
    1 costs. Ascending is symmetric; `title` is NOT NULL and needs one branch only.

    Multi-key sorts use the general lexicographic predicate (with NULL handling) plus a range
    condition on the first key, split into the same two branches. They are exact; their cost grows
    with the number of rows tied on the first key, which is acceptable for a secondary access path.
"""

from __future__ import annotations

import base64
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

from movies.tables import movie

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

    def fingerprint(self) -> str:
        """A short digest of the filters and the sort (not the limit): what a cursor is bound to."""
        return _fingerprint(self.genres, self.ranges, self.include_adult, self.sort)


@functools.lru_cache(maxsize=4096)
def _fingerprint(
    genres: tuple[str, ...],
    ranges: tuple[tuple[str, Any], ...],
    include_adult: bool,
    sort: tuple[SortKey, ...],
) -> str:
    canonical = json.dumps(
        {
            "g": sorted(genres),
            "r": [[name, str(value)] for name, value in sorted(ranges)],
            "a": include_adult,
            "s": [str(key) for key in sort],
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
    """The keyset of a row selected with MOVIE_COLUMNS."""
    return Keyset(tuple(row[SORT_VALUE_COLUMN[key.name]] for key in sort), row[0])


def _conditions(genres: Any, ranges: Sequence[tuple[str, Any]], include_adult: bool) -> list:
    conditions: list[sa.ColumnElement[bool]] = []
    if genres is not None:
        conditions.append(movie.c.genres.contains(genres))
    for name, value in ranges:
        spec = FILTERS[name]
        conditions.append(spec.op(spec.column, value))
    if not include_adult:
        conditions.append(movie.c.is_adult.is_(False))
    return conditions


def filter_conditions(query: MovieQuery) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of the filters (no keyset)."""
    genres = list(query.genres) if query.genres else None
    return _conditions(genres, query.ranges, query.include_adult)


def order_by(sort: Sequence[SortKey]) -> list[sa.ColumnElement[Any]]:
    """ORDER BY clauses: each key NULLs last, then id in the first key's direction.

    NOT NULL columns (title, id) keep PostgreSQL's default NULL placement so the clause matches
    the indexes exactly (an explicit NULLS LAST on `title DESC` would not match `(title, id)`).
    """
    clauses: list[sa.ColumnElement[Any]] = []
    for key in sort:
        clause = key.column.desc() if key.descending else key.column.asc()
        clauses.append(clause.nulls_last() if key.nullable else clause)
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


def keyset_branches(sort: Sequence[SortKey], keyset: Keyset) -> list[sa.ColumnElement[bool]]:
    """Conditions, one per UNION ALL branch in order, selecting the rows after `keyset`."""
    first, value = sort[0], keyset.values[0]
    descending = first.descending
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


def _bound(value: Any, column: sa.Column) -> Any:
    return value if isinstance(value, sa.BindParameter) else sa.literal(value, column.type)


def _list_select(
    conditions: list, sort: Sequence[SortKey], after: Keyset | None, fetch: Any
) -> sa.Executable:
    ordering = order_by(sort)
    if after is None:
        return sa.select(*MOVIE_COLUMNS).where(*conditions).order_by(*ordering).limit(fetch)
    branches = [
        sa.select(*MOVIE_COLUMNS).where(*conditions, branch).order_by(*ordering).limit(fetch)
        for branch in keyset_branches(sort, after)
    ]
    if len(branches) == 1:
        return branches[0]
    return sa.union_all(*branches).limit(fetch)


def list_statement(query: MovieQuery, after: Keyset | None = None) -> sa.Executable:
    """SELECT the page after `after` (or the first page), fetching limit + 1 rows.

    The extra row tells the caller whether there is a next page.
    """
    return _list_select(filter_conditions(query), query.sort, after, query.limit + 1)


def list_sql(query: MovieQuery, after: Keyset | None = None) -> tuple[str, dict[str, Any]]:
    """`list_statement` as SQL text and parameters for the driver, compiled once per shape.

    The shape (which filters, the sort, which cursor values are NULL) decides the SQL; values
    are parameters. Building and compiling a Core statement costs far more than running it, so
    each shape is compiled once per process and reused.
    """
    shape = (
        bool(query.genres),
        tuple(name for name, _ in query.ranges),
        query.include_adult,
        query.sort,
        None if after is None else tuple(value is None for value in after.values),
    )
    params: dict[str, Any] = {"fetch": query.limit + 1, **dict(query.ranges)}
    if query.genres:
        params["genres"] = list(query.genres)
    if after is not None:
        params["after_id"] = after.id
        for index, value in enumerate(after.values):
            params[f"after_{index}"] = value
    return _compile_list(shape), params


@functools.lru_cache(maxsize=4096)
def _compile_list(shape: tuple) -> str:
    has_genres, range_names, include_adult, sort, null_values = shape
    genres = sa.bindparam("genres", type_=movie.c.genres.type) if has_genres else None
    ranges = [(name, sa.bindparam(name, type_=FILTERS[name].column.type)) for name in range_names]
    after = None
    if null_values is not None:
        values = tuple(
            None if is_null else sa.bindparam(f"after_{index}", type_=key.column.type)
            for index, (key, is_null) in enumerate(zip(sort, null_values, strict=True))
        )
        after = Keyset(values, sa.bindparam("after_id", type_=movie.c.id.type))  # type: ignore[arg-type]
    fetch = sa.bindparam("fetch", type_=sa.Integer)
    statement = _list_select(_conditions(genres, ranges, include_adult), sort, after, fetch)
    return statement.compile(dialect=DIALECT).string


def movie_by_id_sql() -> str:
    """SQL text selecting one movie by `%(movie_id)s`."""
    return _MOVIE_BY_ID


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
