"""sort=relevance: title search matches in match class order.

The search fold of the titles (movies.search) is stored in search_title / search_original; a GIN
index on SEARCH_VECTOR finds the matching movies. sort=relevance orders the matches by a match
class, then by votes (most first, NULLs last), then id (descending, like every descending sort):

    3  the folded title or original title IS the folded query
    2  it starts with the folded query
    1  any other match

Each class is two UNION ALL branches, the rated movies (votes not NULL) and then the others,
like any descending sort (`keyset_branches`): ordered by (votes DESC NULLS FIRST, id DESC), the
order of movie_votes_asc_idx read backward, each with its own LIMIT: PostgreSQL stops after the
branches that fill the page. Classes 3 and 2 are found through B-tree indexes on the folds
(equality and LIKE prefix, both "C" collation); class 1 through the GIN index or, for very common
words, by walking the votes index and checking each movie, whichever the planner prices lower.
A cursor holds (class, votes) and the id; the next page reads the rest of its class and the lower
classes.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import util as sql_util

from movies.query.filters import TSQUERY, search_matches
from movies.query.sorting import (
    BY_VOTES,
    MATCH_CLASSES,
    MOVIE_COLUMNS,
    Keyset,
    keyset_branches,
    order_by,
)
from movies.tables import movie

SEARCH_TEXT = sa.bindparam("search_text", type_=movie.c.search_title.type)
SEARCH_PREFIX = sa.bindparam("search_prefix", type_=movie.c.search_title.type)


def _match_classes() -> dict[int, sa.ColumnElement[bool]]:
    exact = sa.or_(movie.c.search_title == SEARCH_TEXT, movie.c.search_original == SEARCH_TEXT)
    starts = sa.or_(
        movie.c.search_title.like(SEARCH_PREFIX), movie.c.search_original.like(SEARCH_PREFIX)
    )
    # A title that equals or starts with the folded query holds all its words (the last as a
    # prefix): classes 3 and 2 need no full-text condition, only their B-tree ones. Combining
    # them with the GIN scan would cost as much as the GIN scan of a common word.
    return {
        3: exact,
        2: sa.and_(starts, sa.not_(exact)),
        1: sa.and_(search_matches(TSQUERY), sa.not_(starts)),
    }


def relevance_select(conditions: list, after: Keyset | None, fetch: Any) -> sa.Executable:
    """The page after `after` in relevance order; `after.values` is (match class, votes).

    `conditions` are the other filters. Rows are MOVIE_COLUMNS followed by the match class.
    """
    classes = _match_classes()
    ordering = order_by(BY_VOTES)
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
        columns = (*MOVIE_COLUMNS, sa.literal_column(str(match_class)).label("match_class"))
        for rest in keyset_branches(BY_VOTES, by_votes):
            if match_class == 3:
                statement = (
                    sa.select(*map(adapt, columns))
                    .where(*map(adapt, [*conditions, rest]))
                    .order_by(*map(adapt, ordering))
                )
            else:
                statement = (
                    sa.select(*columns)
                    .where(*conditions, classes[match_class], rest)
                    .order_by(*ordering)
                )
            branches.append(statement.limit(fetch))
    if len(branches) == 1:
        return branches[0]
    return sa.union_all(*branches).limit(fetch)
