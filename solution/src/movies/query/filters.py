"""The filters of a list request: declared as data, validated into a `MovieQuery`, written as
WHERE conditions on bound parameters (named as `filter_params` names the values)."""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from movies.query.sorting import DEFAULT_SORT, SortKey
from movies.search import Search
from movies.tables import movie

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


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
    genres_any: tuple[str, ...],
    genres_not: tuple[str, ...],
    search: str | None,
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


def is_unfiltered(query: MovieQuery) -> bool:
    """Whether the query selects every movie (adult ones or not): no filter, no search."""
    return query == MovieQuery(
        include_adult=query.include_adult, sort=query.sort, limit=query.limit
    )


class GenreWay(enum.Enum):
    """How a genre query reaches its rows (chosen by movies.query.genres.choose_way)."""

    USUAL = "usual"  # the filters on the movie rows, in the order of a sort index
    RARE = "rare"  # the rarest genre's few movies, through the GIN index, then sorted
    LINKS = "links"  # the candidate links of the rarest genre in the years of a year filter


@dataclass(frozen=True)
class FilterShape:
    """Which filters a query uses, not their values: with the sort, what decides its SQL text."""

    genres: bool  # `genre=`: every one of these genres
    several_genres: bool  # more than one of them
    ranges: tuple[str, ...]  # names from FILTERS, sorted
    include_adult: bool
    genres_any: bool
    genres_not: bool
    search: bool
    genre_way: GenreWay = GenreWay.USUAL

    @classmethod
    def of(cls, query: MovieQuery, genre_way: GenreWay = GenreWay.USUAL) -> FilterShape:
        return cls(
            genres=bool(query.genres),
            several_genres=len(query.genres) > 1,
            ranges=tuple(name for name, _ in query.ranges),
            include_adult=query.include_adult,
            genres_any=bool(query.genres_any),
            genres_not=bool(query.genres_not),
            search=query.search is not None,
            genre_way=genre_way if query.genres else GenreWay.USUAL,
        )


def filter_params(query: MovieQuery) -> dict[str, Any]:
    """The values of the filters, named as the parameters of `conditions` and `GENRES`."""
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


GENRES = sa.bindparam("genres", type_=movie.c.genres.type)
TSQUERY = sa.bindparam("tsquery", type_=sa.Text)

# The folds are words of letters and digits separated by single spaces: cast to tsvector as they
# are, one lexeme per word (no text-search parser, so no locale decides what a word is). The GIN
# index on the same expression (01-schema.sql) finds the matching movies.
SEARCH_VECTOR = sa.cast(
    movie.c.search_title.op("||")(sa.literal_column("' '")).op("||")(movie.c.search_original),
    postgresql.TSVECTOR,
)


def search_matches(tsquery: Any) -> sa.ColumnElement[bool]:
    """The movies whose folded titles hold every word of the tsquery text."""
    return SEARCH_VECTOR.op("@@")(sa.cast(tsquery, postgresql.TSQUERY))


def range_parameter(name: str) -> sa.BindParameter:
    """The bound parameter of one range filter's value."""
    return sa.bindparam(name, type_=FILTERS[name].column.type)


def conditions(shape: FilterShape, *, search: bool = True) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of the filters of `shape` (no keyset), on bound parameters.

    `search=False` leaves the title search out (sort=relevance places it per match class).
    """
    names = movie.c.genres.type
    where: list[sa.ColumnElement[bool]] = []
    if shape.genres:
        where.append(movie.c.genres.contains(GENRES))
    if shape.genres_any:
        where.append(movie.c.genres.overlap(sa.bindparam("genres_any", type_=names)))
    if shape.genres_not:
        where.append(sa.not_(movie.c.genres.overlap(sa.bindparam("genres_not", type_=names))))
    if shape.search and search:
        where.append(search_matches(TSQUERY))
    for name in shape.ranges:
        spec = FILTERS[name]
        where.append(spec.op(spec.column, range_parameter(name)))
    if not shape.include_adult:
        where.append(movie.c.is_adult.is_(False))
    return where
