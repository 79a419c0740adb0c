"""Aggregates over the movies matching the filters: facet counts, the exact count, the statement
whose row estimate stands for the count. All on the filters' bound parameters."""

from __future__ import annotations

import sqlalchemy as sa

from movies.query.compiled import Sql, core_sql
from movies.query.filters import FilterShape, MovieQuery, conditions, filter_params
from movies.query.sorting import QueryError
from movies.tables import movie

SOURCES = {"imdb": "imdb", "user": "user"}  # literals, so the planner prunes the partition


def facet_sql(query: MovieQuery, facet: str, source: str | None = None) -> Sql:
    """(value, count) of one facet over the movies matching the filters (no cursor, no limit,
    no sort): `genre` (name, most movies first, genres without a movie left out) or `decade`
    (1990, ... ascending, NULL year last as decade NULL). `source` limits the count to one
    partition ('imdb' or 'user').

    :raise QueryError: for an unknown facet.
    """
    where = conditions(FilterShape.of(query))
    if source is not None:
        where.append(movie.c.source == sa.literal_column(f"'{SOURCES[source]}'"))
    count = sa.func.count().label("count")
    if facet == "genre":
        names = sa.select(sa.func.unnest(movie.c.genres).label("name")).where(*where)
        name = names.subquery().c.name
        statement = sa.select(name, count).group_by(name).order_by(count.desc(), name)
    elif facet == "decade":
        decade = (movie.c.year // 10 * 10).label("decade")
        statement = (
            sa.select(decade, count)
            .where(*where)
            .group_by(decade)
            .order_by(decade.asc().nulls_last())
        )
    else:
        raise QueryError(f"unknown facet {facet!r}")
    return core_sql(statement, filter_params(query))


def count_sql(query: MovieQuery) -> Sql:
    """count(*) of the rows matching the filters."""
    where = conditions(FilterShape.of(query))
    return core_sql(
        sa.select(sa.func.count()).select_from(movie).where(*where), filter_params(query)
    )


def estimate_sql(query: MovieQuery) -> Sql:
    """The statement whose EXPLAIN row estimate stands for the count."""
    where = conditions(FilterShape.of(query))
    return core_sql(sa.select(movie.c.id).where(*where), filter_params(query))
