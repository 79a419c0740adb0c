"""Query building: a validated request becomes the SQL text the API sends. Pure: nothing here
touches a database.

Client-given names only ever select entries of `SORT_COLUMNS` and `FILTERS`; values travel as
bound parameters. One idea per module, imports pointing down the list:

- `sorting`: sort keys, keysets (cursor values), ORDER BY and the keyset predicate.
- `filters`: the filters as data, `MovieQuery`, `FilterShape`, the WHERE conditions.
- `genres`: the genre access paths, chosen from the genre sizes (candidates from the
  genre-year links, rare genres apart).
- `relevance`: sort=relevance, title matches by match class.
- `compiled`: `PageShape`, the one builder (`page_sql`, `export_sql`), which values stay
  prepared-statement parameters.
- `facets`: facet counts, exact and estimated counts.
"""

from movies.query.compiled import (
    PageShape,
    Sql,
    export_sql,
    movie_by_id_sql,
    page_sql,
    statement,
    statement_text,
)
from movies.query.facets import count_sql, estimate_sql, facet_sql
from movies.query.filters import (
    DEFAULT_LIMIT,
    FILTERS,
    MAX_LIMIT,
    FilterShape,
    GenreWay,
    MovieQuery,
    RangeFilter,
    is_unfiltered,
)
from movies.query.genres import GenreSizes, choose_way, genre_bits
from movies.query.sorting import (
    DEFAULT_SORT,
    MATCH_CLASSES,
    MOVIE_COLUMNS,
    RELEVANCE,
    SORT_COLUMNS,
    SORT_VALUE_COLUMN,
    Keyset,
    QueryError,
    SortKey,
    keyset_from_json,
    keyset_of_row,
    keyset_to_json,
    parse_sort,
)

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_SORT",
    "FILTERS",
    "MATCH_CLASSES",
    "MAX_LIMIT",
    "MOVIE_COLUMNS",
    "RELEVANCE",
    "SORT_COLUMNS",
    "SORT_VALUE_COLUMN",
    "FilterShape",
    "GenreSizes",
    "GenreWay",
    "Keyset",
    "MovieQuery",
    "PageShape",
    "QueryError",
    "RangeFilter",
    "SortKey",
    "Sql",
    "choose_way",
    "count_sql",
    "estimate_sql",
    "export_sql",
    "facet_sql",
    "genre_bits",
    "is_unfiltered",
    "keyset_from_json",
    "keyset_of_row",
    "keyset_to_json",
    "movie_by_id_sql",
    "page_sql",
    "parse_sort",
    "statement",
    "statement_text",
]
