"""Sort keys, keysets and the keyset predicate: one page after another, each costing the same.

Every list is ordered by up to three sort keys, NULLs last in both directions, then by `id` in
the direction of the first key: a total order, so a page boundary is a single point (the last
row's key values and id) and the next page is "rows strictly after that point".

Single-key sorts (the common case) are built so that the keyset predicate is an index condition
of the matching sort index from 01-schema.sql. Each key has one index, `(key ASC NULLS LAST,
id ASC)`; read backward it gives `key DESC NULLS FIRST, id DESC`. So a descending nullable key
is always read as two branches, the non-NULL keys and then the NULL ones, each ordered
`key DESC NULLS FIRST` (within a branch the NULL placement of the key changes nothing, and the
order of the branches puts the NULLs last). After (r, i):

    (SELECT ... WHERE <filters> AND (rating, id) < (r, i)
        ORDER BY rating DESC NULLS FIRST, id DESC LIMIT n)
    UNION ALL
    (SELECT ... WHERE <filters> AND rating IS NULL
        ORDER BY rating DESC NULLS FIRST, id DESC LIMIT n)
    LIMIT n

The row comparison excludes NULL keys, the second branch supplies them (they sort last), and
PostgreSQL's Append stops before the second branch once the first fills the page. The first page
is the same with `rating IS NOT NULL` in place of the row comparison. After a NULL key only the
NULL branch remains: `rating IS NULL AND id < i`. So page 10,000 costs what page 1 costs.
Ascending reads the index forward: NULLs come last by themselves, the first page is a single
SELECT and a cursor adds the same two branches. `title` is NOT NULL and needs one branch only.

Multi-key sorts use the general lexicographic predicate (with NULL handling) plus a range
condition on the first key, split into the same two branches. They are exact; their cost grows
with the number of rows tied on the first key, acceptable for a secondary access path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from movies.tables import movie

MAX_SORT_KEYS = 3

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
MATCH_CLASSES = (3, 2, 1)  # of sort=relevance, best first (see movies.query.relevance)


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
RELEVANCE = (SortKey("relevance", descending=True),)
BY_VOTES = (SortKey("votes", descending=True),)


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
class Keyset:
    """A page boundary: the last row's sort key values (one per key) and its id. For
    sort=relevance the values are (match class, votes)."""

    values: tuple[Any, ...]
    id: str


def keyset_from_json(sort: Sequence[SortKey], values: Any, movie_id: Any) -> Keyset:
    """Rebuild a Keyset from a cursor's JSON values (ratings travel as strings).

    :raise QueryError: if the values do not fit the sort keys.
    """
    if tuple(sort) == RELEVANCE:
        return _relevance_keyset_from_json(values, movie_id)
    if not isinstance(values, list) or len(values) != len(sort) or not isinstance(movie_id, str):
        raise QueryError("cursor does not match the sort")
    converted = (_key_value(key, value) for key, value in zip(sort, values, strict=True))
    return Keyset(tuple(converted), movie_id)


def _key_value(key: SortKey, value: Any) -> Any:
    if value is None and key.nullable:
        return None
    if key.name == "title" and isinstance(value, str):
        return value
    if key.name in DECIMAL_SORT_KEYS and isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            raise QueryError(f"cursor holds a bad {key.name}") from None
    if key.name != "title" and key.name not in DECIMAL_SORT_KEYS and type(value) is int:
        return value
    raise QueryError(f"cursor holds a bad value for {key.name}")


def _relevance_keyset_from_json(values: Any, movie_id: Any) -> Keyset:
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


def keyset_to_json(keyset: Keyset) -> list[Any]:
    """The keyset values as JSON-safe values (Decimal → str, exact)."""
    return [str(v) if isinstance(v, Decimal) else v for v in keyset.values]


def keyset_of_row(sort: Sequence[SortKey], row: Sequence[Any]) -> Keyset:
    """The keyset of a row selected with MOVIE_COLUMNS (the match class last for relevance)."""
    if tuple(sort) == RELEVANCE:
        return Keyset((row[-1], row[SORT_VALUE_COLUMN["votes"]]), row[0])
    return Keyset(tuple(row[SORT_VALUE_COLUMN[key.name]] for key in sort), row[0])


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


def keyset_branches(sort: Sequence[SortKey], keyset: Keyset | None) -> list[sa.ColumnElement[bool]]:
    """Conditions, one per UNION ALL branch in order, selecting the rows after `keyset` (every
    row without one). Each branch is ordered by `order_by(sort)`. A NULL keyset value is None;
    the others are values or bound parameters."""
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
        bound = sa.tuple_(value, keyset.id)
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
