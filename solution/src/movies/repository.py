"""Data access: functions taking a SQLAlchemy connection. They never commit (the caller owns the
transaction) and know nothing of HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from movies import query as q
from movies.prepared import fetch_all, fetch_sql
from movies.score import weighted_rating
from movies.search import fold_titles
from movies.tables import (
    dataset_load,
    genre,
    genre_year,
    movie_genre,
    movie_genre_user,
    movie_imdb,
    movie_user,
)

# Advisory lock id serialising user movie inserts (schema.SCHEMA_LOCK and the load lock are
# 7_365_001 and 7_365_002).
USER_INSERT_LOCK = 7_365_003


def list_movies(
    conn: sa.Connection,
    query: q.MovieQuery,
    after: q.Keyset | None = None,
    genres: GenreVocabulary | None = None,
) -> tuple[list[tuple], q.Keyset | None]:
    """One page of movies after `after`, and the keyset of the next page (None on the last page).

    `genres` gives the genre sizes that choose a rare genre's access path (none: the usual one).
    """
    rows = fetch_sql(conn, page_sql(conn, query, after, genres))
    next_keyset = None
    if len(rows) > query.limit:
        del rows[query.limit :]
        next_keyset = q.keyset_of_row(query.sort, rows[-1])
    if query.sort == q.RELEVANCE:  # drop the match class: rows leave as MOVIE_COLUMNS
        rows = [row[:-1] for row in rows]
    return rows, next_keyset


def page_sql(
    conn: sa.Connection,
    query: q.MovieQuery,
    after: q.Keyset | None = None,
    genres: GenreVocabulary | None = None,
) -> q.Sql:
    """The statement of a page, its genre access path chosen from `genres`' sizes."""
    sizes = genres.sizes(conn) if query.genres and genres is not None else None
    return q.page_sql(query, after, sizes=sizes)


def count_movies(conn: sa.Connection, query: q.MovieQuery) -> int:
    """The exact number of movies matching the filters."""
    return _run(conn, q.count_sql(query))[0][0]


def facet_counts(
    conn: sa.Connection,
    query: q.MovieQuery,
    facets: Sequence[str],
    cache: ImdbFacetCache | None = None,
) -> dict[str, list[tuple[Any, int]]]:
    """Per facet, (value, number of movies matching the filters) pairs (`q.facet_sql`).

    Unfiltered, the IMDb movies' counts come from `cache` (counting 700,000 movies takes
    hundreds of milliseconds) and only the user movies are counted live.
    """
    if cache is None or not q.is_unfiltered(query):
        return {facet: _facet_rows(conn, q.facet_sql(query, facet)) for facet in facets}
    counts = {}
    for facet in facets:
        merged = Counter(dict(cache.counts(conn, query, facet)))
        merged.update(dict(_facet_rows(conn, q.facet_sql(query, facet, source="user"))))
        counts[facet] = _facet_order(facet, merged)
    return counts


def _run(conn: sa.Connection, sql: q.Sql) -> list[tuple]:
    """A plain (unprepared) statement: aggregates are one-offs, planned for their values."""
    return [tuple(row) for row in conn.exec_driver_sql(sql.text, sql.params)]


def _facet_rows(conn: sa.Connection, sql: q.Sql) -> list[tuple[Any, int]]:
    return [(value, count) for value, count in _run(conn, sql)]


def _facet_order(facet: str, counts: Counter) -> list[tuple[Any, int]]:
    """The order `q.facet_sql` returns: genres by count then name, decades ascending."""
    if facet == "genre":
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return sorted(counts.items(), key=lambda item: (item[0] is None, item[0] or 0))


class ImdbFacetCache:
    """Unfiltered facet counts of the IMDb partition, per process, kept until the next load.

    IMDb movies change only through a load, which adds a dataset_load row: the counts are
    keyed by the latest load's id, so one cheap lookup per request tells whether they are
    still valid.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[Any, ...], list[tuple[Any, int]]] = {}
        self._lock = threading.Lock()

    def counts(self, conn: sa.Connection, query: q.MovieQuery, facet: str) -> list[tuple[Any, int]]:
        load_id = conn.execute(sa.select(sa.func.max(dataset_load.c.id))).scalar()
        key = (load_id, query.include_adult, facet)
        cached = self._counts.get(key)
        if cached is None:
            cached = _facet_rows(conn, q.facet_sql(query, facet, source="imdb"))
            with self._lock:
                self._counts = {k: v for k, v in self._counts.items() if k[0] == load_id}
                self._counts[key] = cached
        return cached


def estimate_movies(conn: sa.Connection, query: q.MovieQuery) -> int:
    """The planner's estimate of the number of movies matching the filters (EXPLAIN, no scan)."""
    sql = q.estimate_sql(query)
    plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql.text}", sql.params).scalar_one()
    if isinstance(plan, str):  # drivers that do not decode json
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def get_movie(conn: sa.Connection, movie_id: str) -> tuple | None:
    """The movie with this id, or None."""
    rows = fetch_sql(conn, q.movie_by_id_sql(movie_id))
    return rows[0] if rows else None


def imdb_id_taken(conn: sa.Connection, imdb_id: str) -> bool:
    """Whether an IMDb movie has this tconst, or a user movie already refers to it."""
    statement = sa.select(
        sa.exists().where(movie_imdb.c.id == imdb_id)
        | sa.exists().where(movie_user.c.imdb_id == imdb_id)
    )
    return bool(conn.execute(statement).scalar_one())


def insert_movie(conn: sa.Connection, fields: dict[str, Any]) -> sa.Row:
    """Insert a user movie and its genre links; return it as MOVIE_COLUMNS. Does not commit.

    `fields` holds movie_user columns; `genres` must be canonical genre names. The score is
    computed here, with the mean rating of the latest load.
    """
    mean = conn.execute(
        sa.select(dataset_load.c.mean_rating).order_by(dataset_load.c.id.desc()).limit(1)
    ).scalar()
    # One user movie insert at a time, each stamped when it holds the lock: creation times then
    # follow commit order, so a newer movie never carries an older time than one already seen
    # (If-Modified-Since would hide it). A load's swap locks order it against loads the same way.
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(USER_INSERT_LOCK)))
    score = weighted_rating(fields.get("rating"), fields.get("votes"), mean)
    returning = [movie_user.c[column.name] for column in q.MOVIE_COLUMNS]
    search_title, search_original = fold_titles(fields["title"], fields.get("original_title"))
    statement = (
        sa.insert(movie_user)
        .values(
            **fields,
            score=score,
            search_title=search_title,
            search_original=search_original,
            created_at=sa.func.clock_timestamp(),
        )
        .returning(*returning)
    )
    row = conn.execute(statement).one()
    if fields.get("genres"):
        links = sa.select(
            sa.literal(row.id, movie_user.c.id.type).label("movie_id"),
            genre.c.id.label("genre_id"),
            sa.literal(row.year, movie_user.c.year.type).label("year"),
            sa.literal(row.rating, movie_user.c.rating.type).label("rating"),
            q.genre_bits(fields["genres"]).label("genre_bits"),
            sa.literal(row.votes, movie_user.c.votes.type).label("votes"),
            sa.literal(row.runtime_minutes, movie_user.c.runtime_minutes.type).label(
                "runtime_minutes"
            ),
        ).where(genre.c.name.in_(fields["genres"]))
        columns = list(links.selected_columns.keys())  # each value's label names its column
        conn.execute(sa.insert(movie_genre_user).from_select(columns, links))
    return row


def genre_counts(conn: sa.Connection) -> list[tuple[str, int]]:
    """Every genre with its number of movies, by name."""
    counts = (
        sa.select(movie_genre.c.genre_id, sa.func.count().label("movies"))
        .group_by(movie_genre.c.genre_id)
        .subquery()
    )
    statement = (
        sa.select(genre.c.name, sa.func.coalesce(counts.c.movies, 0))
        .select_from(genre.outerjoin(counts, counts.c.genre_id == genre.c.id))
        .order_by(genre.c.name)
    )
    return [(name, int(count)) for name, count in conn.execute(statement)]


def latest_load(conn: sa.Connection) -> sa.Row | None:
    """The most recent dataset_load row, or None when nothing was ever loaded."""
    statement = sa.select(dataset_load).order_by(dataset_load.c.id.desc()).limit(1)
    return conn.execute(statement).first()


def has_dataset(conn: sa.Connection) -> bool:
    """Whether at least one load has completed."""
    return bool(conn.execute(sa.select(sa.exists().select_from(dataset_load))).scalar_one())


_DATA_VERSION_SQL = (
    "SELECT l.id, l.loaded_at, u.movies, u.created_at, statement_timestamp() "
    "FROM (SELECT count(*) AS movies, max(created_at) AS created_at FROM movie_user) AS u "
    "LEFT JOIN (SELECT id, loaded_at FROM dataset_load ORDER BY id DESC LIMIT 1) AS l ON true"
)


def data_version(conn: sa.Connection) -> tuple[Any, ...]:
    """(latest load id, its loaded_at, number of user movies, latest user movie's created_at,
    the database's time of this read).

    Every data response depends on these only: loads and user movie inserts are the only writes.
    """
    return fetch_all(conn, _DATA_VERSION_SQL, {})[0]


EXPORT_BATCH_ROWS = 2000


def hold_movies(conn: sa.Connection, query: q.MovieQuery) -> HeldMovies:
    """Declare a cursor WITH HOLD over every movie matching `query`, in its order.

    `conn` must be in a transaction. The query runs when that transaction commits: PostgreSQL
    then keeps the whole result in the session (in memory up to `work_mem`, beyond that in a
    temporary file) and the transaction's locks go. The rows are then fetched outside any
    transaction, as slowly as the client reads them, holding no lock that a load's swap would
    wait for. The run at commit escapes `statement_timeout` (PostgreSQL stops that timer before
    committing); a limit must cancel it from the client. Iterate (or close) the batches to the
    end: a held cursor outlives its transaction until it is closed.

    :raise sqlalchemy.exc.DBAPIError: if the statement cannot be declared.
    """
    sql = q.export_sql(query)
    cursor = conn.connection.dbapi_connection.cursor(name="movies_export", withhold=True)
    held = HeldMovies(cursor, sql, conn.dialect.loaded_dbapi.Error, query.sort == q.RELEVANCE)
    held.run(lambda: cursor.execute(sql.text, sql.params))
    return held


class HeldMovies:
    """The result of `hold_movies`: a held server-side cursor, read in batches."""

    def __init__(self, cursor: Any, sql: q.Sql, dbapi_error: type, relevance: bool) -> None:
        self._cursor = cursor
        self._sql = sql
        self._dbapi_error = dbapi_error
        self._relevance = relevance  # the relevance sort adds its rank as a last column

    def run(self, call: Callable[[], Any]) -> Any:
        """`call()`, its DB-API error raised as SQLAlchemy's (as every other query raises)."""
        try:
            return call()
        except self._dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(
                self._sql.text, self._sql.params, exc, self._dbapi_error
            ) from exc

    def batches(self) -> Iterator[list[tuple]]:
        """The rows, MOVIE_COLUMNS each, in batches of EXPORT_BATCH_ROWS; closes the cursor at
        their end or on close.

        :raise sqlalchemy.exc.DBAPIError: on a database failure, at any batch.
        """
        size = EXPORT_BATCH_ROWS
        try:
            while rows := self.run(lambda: self._cursor.fetchmany(size)):
                yield [row[:-1] for row in rows] if self._relevance else rows
        finally:
            if not self._cursor.closed:
                self._cursor.close()


class GenreVocabulary:
    """The genre names and sizes, cached per process; reloaded (at most every `refresh_s`
    seconds) when a name is not found, so a genre added by a later load is picked up without a
    restart, and when sizes are asked for."""

    def __init__(self, refresh_s: float = 10.0) -> None:
        self._by_lower: dict[str, str] = {}
        self._sizes = q.GenreSizes({})
        self._loaded_at = float("-inf")
        self._refresh_s = refresh_s
        self._lock = threading.Lock()

    def names(self, conn: sa.Connection) -> list[str]:
        """The canonical names, sorted."""
        if not self._by_lower:
            self._load(conn)
        return sorted(self._by_lower.values())

    def resolve(
        self, conn: sa.Connection, names: Iterable[str]
    ) -> tuple[list[str], list[str], list[str]]:
        """Map names case-insensitively: (canonical names, unknown names, the vocabulary)."""
        wanted = list(names)
        if not self._by_lower:
            self._load(conn)
        if any(name.lower() not in self._by_lower for name in wanted):
            if time.monotonic() - self._loaded_at >= self._refresh_s:
                self._load(conn)
        known = [self._by_lower[n.lower()] for n in wanted if n.lower() in self._by_lower]
        unknown = [n for n in wanted if n.lower() not in self._by_lower]
        return known, unknown, sorted(self._by_lower.values())

    def sizes(self, conn: sa.Connection) -> q.GenreSizes:
        """The genres' numbers of movies in the latest load, in all and per year. Reread at most
        every `refresh_s` seconds: after a load, a stale size only picks a slower access path
        for a while, never other rows."""
        if time.monotonic() - self._loaded_at >= self._refresh_s:
            self._load(conn)
        return self._sizes

    def _load(self, conn: sa.Connection) -> None:
        rows = conn.execute(sa.select(genre.c.name, genre.c.imdb_movies)).all()
        per_year = conn.execute(
            sa.select(genre.c.name, genre_year.c.year, genre_year.c.imdb_movies).join_from(
                genre_year, genre, genre.c.id == genre_year.c.genre_id
            )
        ).all()
        with self._lock:
            self._by_lower = {name.lower(): name for name, _ in rows}
            self._sizes = q.GenreSizes.of(dict(rows), per_year)
            self._loaded_at = time.monotonic()
