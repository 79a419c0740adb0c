"""Compilation: one builder turns a request into the SQL text production sends, and decides which
values stay parameters.

A request's SQL text depends on its `PageShape` only (which filters, the sort, which cursor
values are NULL); the values travel in `Sql.params`. Building and compiling a Core statement
costs far more than running it, so each shape is compiled once per process and reused. Tests
and `movies explain` run the same `Sql` objects as the API.

Which values stay parameters (the one policy, applied by `movies.prepared` to `Sql.bound`):
the read path runs as server-side prepared statements, planned once per statement text. Only
values that change from page to page of one listing stay parameters: the keyset values and id,
an id. Every other value (genres, filter bounds, the limit) is written into the prepared text as
a literal, quoted by the driver, so each plan is made for its filters: the plan for a rare genre
is planned for that genre, never a generic plan for "some genre", which PostgreSQL cannot
estimate (a rare genre then walks the title index and discards thousands of rows: tens of
milliseconds instead of two). Keyset values of keys with few distinct values (numeric(3, 1)
ratings, smallint years) are literals too: with `rating < 9.3` in the text PostgreSQL estimates a
reusable plan as well as a one-off plan and keeps walking the sort index, whereas with
`rating < $1` it planned a bitmap scan and a sort (11 ms instead of 0.4 ms for page 2 of
genre=Action&rating_gt=8.5&sort=-rating).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from movies.query.filters import FilterShape, GenreWay, MovieQuery, conditions, filter_params
from movies.query.genres import LINKS_GENRE, GenreSizes, choose_way, way_branch
from movies.query.relevance import relevance_select
from movies.query.sorting import (
    MOVIE_COLUMNS,
    RELEVANCE,
    Keyset,
    SortKey,
    keyset_branches,
)
from movies.tables import movie

DIALECT = postgresql.psycopg2.dialect()
FEW_VALUE_KEYS = frozenset({"rating", "year"})  # their keyset values are literals (see above)


@dataclass(frozen=True)
class Sql:
    """A statement as the API sends it: `text` in the driver's paramstyle (`%(name)s`), the
    values of its parameters, and the names of those that stay prepared-statement parameters
    (the others are written into the prepared text as literals)."""

    text: str
    params: dict[str, Any]
    bound: tuple[str, ...] = ()


@dataclass(frozen=True)
class PageShape:
    """What decides the SQL text of a page (or an export): never a value."""

    filters: FilterShape
    sort: tuple[SortKey, ...]
    # Per keyset value, whether it is NULL (spelled IS NULL); None on a first page.
    after_nulls: tuple[bool, ...] | None = None
    # sort=relevance: the cursor's match class, which decides the branches that remain.
    match_class: int | None = None
    paged: bool = True  # False: every row (the export), no LIMIT

    @classmethod
    def of(
        cls,
        query: MovieQuery,
        after: Keyset | None,
        paged: bool = True,
        genre_way: GenreWay = GenreWay.USUAL,
    ) -> PageShape:
        nulls = None if after is None else tuple(value is None for value in after.values)
        match_class = after.values[0] if after is not None and query.sort == RELEVANCE else None
        return cls(FilterShape.of(query, genre_way), query.sort, nulls, match_class, paged)


def page_sql(
    query: MovieQuery, after: Keyset | None = None, *, sizes: GenreSizes | None = None
) -> Sql:
    """The page after `after` (or the first page), limit + 1 rows: the extra row tells whether
    there is a next page. With sort=relevance each row has its match class last. `sizes`, the
    genre sizes of the latest load, choose a genre query's way (`genres.choose_way`; without
    them, the usual one)."""
    way, links_genre = GenreWay.USUAL, None
    if sizes is not None and query.sort != RELEVANCE:
        way, links_genre = choose_way(query, sizes)
    params: dict[str, Any] = {"fetch": query.limit + 1}
    if links_genre is not None:
        params[LINKS_GENRE] = links_genre
    return _sql(query, after, PageShape.of(query, after, genre_way=way), params)


def export_sql(query: MovieQuery) -> Sql:
    """Every movie matching the filters, in the query's order (`limit` is ignored): the one
    statement without a LIMIT, which GET /movies/export streams from a server-side cursor."""
    return _sql(query, None, PageShape.of(query, None, paged=False), {})


def _sql(query: MovieQuery, after: Keyset | None, shape: PageShape, params: dict) -> Sql:
    params.update(filter_params(query))
    bound: list[str] = []
    if after is not None:
        for index, (name, value) in enumerate(_keyset_names(shape, after)):
            if value is not None:
                params[f"after_{index}"] = value
                if name not in FEW_VALUE_KEYS:
                    bound.append(f"after_{index}")
        params["after_id"] = after.id
        bound.append("after_id")
    return Sql(statement_text(shape), params, tuple(bound))


def _keyset_names(shape: PageShape, after: Keyset) -> list[tuple[str, Any]]:
    """(sort key name, value) of the keyset values; relevance's match class is in the shape."""
    if shape.sort == RELEVANCE:
        return [("match_class", None), ("votes", after.values[1])]
    return [(key.name, value) for key, value in zip(shape.sort, after.values, strict=True)]


@functools.lru_cache(maxsize=4096)
def statement_text(shape: PageShape) -> str:
    """The SQL text of a shape, compiled once per process."""
    return statement(shape).compile(dialect=DIALECT).string


def statement(shape: PageShape) -> sa.Executable:
    """The Core statement of a shape, on bound parameters named as `page_sql` names the values."""
    fetch = sa.bindparam("fetch", type_=sa.Integer) if shape.paged else None
    if shape.sort == RELEVANCE:
        after = None
        if shape.after_nulls is not None:
            votes = None if shape.after_nulls[1] else _after_parameter(1, movie.c.votes)
            after = Keyset((shape.match_class, votes), _after_parameter("id", movie.c.id))
        return relevance_select(conditions(shape.filters, search=False), after, fetch)
    after = None
    if shape.after_nulls is not None:
        values = tuple(
            None if is_null else _after_parameter(index, key.column)
            for index, (key, is_null) in enumerate(zip(shape.sort, shape.after_nulls, strict=True))
        )
        after = Keyset(values, _after_parameter("id", movie.c.id))
    where = conditions(shape.filters)
    branches = [
        way_branch(shape.filters, shape.sort, where, branch, fetch)
        for branch in keyset_branches(shape.sort, after)
    ]
    if len(branches) == 1:
        return branches[0]
    return sa.union_all(*branches).limit(fetch)


def _after_parameter(position: int | str, column: sa.Column) -> Any:
    return sa.bindparam(f"after_{position}", type_=column.type)


_MOVIE_BY_ID = (
    sa.select(*MOVIE_COLUMNS)
    .where(movie.c.id == sa.bindparam("movie_id", type_=movie.c.id.type))
    .compile(dialect=DIALECT)
    .string
)


def movie_by_id_sql(movie_id: str) -> Sql:
    """One movie by id (a prepared-statement parameter)."""
    return Sql(_MOVIE_BY_ID, {"movie_id": movie_id}, ("movie_id",))


def core_sql(statement: sa.Executable, params: dict[str, Any]) -> Sql:
    """A statement built on bound parameters (facets, counts) as text; run as a plain statement."""
    compiled = statement.compile(dialect=DIALECT)
    # The constants SQLAlchemy binds itself (the 10 of a decade) come with the compiled form.
    return Sql(compiled.string, {**compiled.params, **params})
