"""Write a load into PostgreSQL: staging tables, COPY, indexes, the swap. One transaction.

Every function takes a psycopg2 cursor and never commits; `run_load` owns the transaction. The
staging tables are created inside it, so a failed or killed load leaves nothing behind and the
previous data untouched.

Indexes are never spelled out here: the staging tables get the same indexes (and primary key and
foreign keys) as the live partitions, read from the catalog, so sql-scripts/01-schema.sql stays
the only place they are defined. ATTACH PARTITION then adopts them instead of building new ones,
and a CHECK (source = 'imdb') on the staging table spares it the validation scan.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg2
import psycopg2.errors

from movies.loader.errors import LoadError, LoadInProgressError, ShrinkError
from movies.loader.transform import LINK_COLUMNS, MOVIE_COLUMNS
from movies.score import weighted_rating

log = logging.getLogger(__name__)

LOAD_LOCK = 7_365_002  # advisory lock id: one load at a time (schema.SCHEMA_LOCK is 7_365_001)
SWAP_LOCK_TIMEOUT = "2s"
SWAP_ATTEMPTS = 5
PREFETCH_CHUNKS = 2  # COPY chunks produced ahead of the one being sent
INDEX_DEF = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (USING .+)$", re.DOTALL)


@dataclass(frozen=True)
class Partition:
    """A live partition of a partitioned table and the staging table that replaces it."""

    parent: str
    live: str
    staging: str

    @property
    def source_check(self) -> str:
        return f"{self.staging}_source_is_imdb"


MOVIES = Partition("movie", "movie_imdb", "movie_imdb_next")
GENRE_LINKS = Partition("movie_genre", "movie_genre_imdb", "movie_genre_imdb_next")
PARTITIONS = (MOVIES, GENRE_LINKS)


@dataclass
class Renames:
    """Names given to staging objects, and the live names they take at the swap."""

    indexes: list[tuple[str, str]] = field(default_factory=list)
    constraints: list[tuple[str, str, str]] = field(default_factory=list)  # table, staging, live


def _timed(cur, sql: str, params: tuple | None = None) -> None:
    """Execute `sql`, logging its duration at DEBUG (the slow statements of a load)."""
    started = time.perf_counter()
    cur.execute(sql, params)
    log.debug("%.2f s: %s", time.perf_counter() - started, sql[:120])


def take_load_lock(cur) -> None:
    """Take the load lock for this transaction.

    :raise LoadInProgressError: if another load holds it.
    """
    cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOAD_LOCK,))
    if not cur.fetchone()[0]:
        raise LoadInProgressError(
            "another load is in progress (it holds the load lock); try again when it has finished"
        )


def configure_transaction(cur) -> None:
    """Settings for a bulk load, for this transaction only."""
    cur.execute("SET LOCAL synchronous_commit = off")
    cur.execute("SET LOCAL maintenance_work_mem = '512MB'")
    cur.execute("SET LOCAL work_mem = '128MB'")
    cur.execute("SET LOCAL statement_timeout = 0")


def count_live_movies(cur) -> int:
    cur.execute(f"SELECT count(*) FROM {MOVIES.live}")
    return cur.fetchone()[0]


def check_shrink(previous: int, new: int, *, force: bool) -> None:
    """Refuse a load that would leave fewer than half of the current movies, or none at all.

    :raise ShrinkError: naming both counts and `--force`, unless `force`; and, even with
        `force`, when the source holds no movie (a header-only or truncated file).
    """
    if new * 2 < previous and not force:
        raise ShrinkError(
            f"refusing to replace {previous:,} movies with {new:,} (less than half): the source "
            "looks incomplete; check it, or rerun with --force to load it anyway"
        )
    if new == 0:
        raise ShrinkError(
            "the source holds no movies (title.basics has no movie rows): refusing to load an "
            "empty data set, even with --force"
        )


def create_staging(cur) -> None:
    """Create the empty staging tables beside the live partitions (same columns and checks)."""
    for part in PARTITIONS:
        cur.execute(f"DROP TABLE IF EXISTS {part.staging}")
        cur.execute(
            f"CREATE TABLE {part.staging} (LIKE {part.live} INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION, "
            f"CONSTRAINT {part.source_check} CHECK (source = 'imdb'))"
        )


class _ChunkReader:
    """A read()-able file over an iterator of byte chunks, for copy_expert.

    A background thread draws the chunks (up to PREFETCH_CHUNKS ahead, so memory stays flat)
    while the connection sends the previous ones: producing them (Arrow compute and CSV writing,
    which release the GIL) overlaps the server's COPY. Use it as a context manager: leaving it
    stops the thread, also when the COPY failed half-way. An exception raised by the iterator is
    raised again by read().
    """

    _END = object()

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._queue: queue.Queue = queue.Queue(maxsize=PREFETCH_CHUNKS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="copy-chunks", daemon=True)
        self._pending = b""
        self._done = False

    def __enter__(self) -> _ChunkReader:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _produce(self) -> None:
        try:
            for chunk in self._chunks:
                if not self._put(chunk):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the reading thread, raised there
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            if self._done:
                return b""
            item = self._queue.get()
            if item is self._END:
                self._done = True
                return b""
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._pending = item
        if size is None or size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
            return data
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def copy_movies(cur, csv_chunks: Iterable[bytes]) -> None:
    """COPY the movie rows (CSV in `MOVIE_COLUMNS` order) into the staging table."""
    columns = ", ".join(MOVIE_COLUMNS)
    started = time.perf_counter()
    with _ChunkReader(csv_chunks) as reader:
        cur.copy_expert(
            f"COPY {MOVIES.staging} ({columns}) FROM STDIN WITH (FORMAT csv)", reader, size=1 << 20
        )
    log.debug("%.2f s: COPY %s", time.perf_counter() - started, MOVIES.staging)


def ensure_genres(cur, names: list[str]) -> dict[str, int]:
    """Add the genre names `genre` lacks (IMDb may add one); return every name's id."""
    # Only the missing names reach the INSERT: ON CONFLICT alone would draw an identity value
    # for every name already there, ~28 per load, and new genres would get ever larger ids
    # (past the 63 that genre bits cover, then past smallint).
    _timed(
        cur,
        "INSERT INTO genre (name) SELECT new.name FROM unnest(%s::text[]) AS new (name) "
        "WHERE NOT EXISTS (SELECT FROM genre WHERE genre.name = new.name) ORDER BY 1 "
        "ON CONFLICT (name) DO NOTHING",
        (names,),
    )
    if cur.rowcount:
        log.info("added %d new genre names", cur.rowcount)
    cur.execute("SELECT name, id FROM genre")
    return dict(cur.fetchall())


def record_genre_sizes(cur, sizes: dict[int, int]) -> None:
    """Set each genre's `imdb_movies` to its number of movies in this load (0 when absent)."""
    cur.execute(
        "UPDATE genre SET imdb_movies = coalesce((SELECT c.movies FROM "
        "unnest(%s::int[], %s::int[]) AS c (id, movies) WHERE c.id = genre.id), 0)",
        (list(sizes), list(sizes.values())),
    )


def record_genre_years(cur) -> None:
    """Replace `genre_year` with each genre's number of movies per year in the staged links."""
    cur.execute("DELETE FROM genre_year")
    _timed(
        cur,
        "INSERT INTO genre_year (genre_id, year, imdb_movies) SELECT genre_id, year, count(*) "
        f"FROM {GENRE_LINKS.staging} WHERE year IS NOT NULL GROUP BY genre_id, year",
    )


def copy_genre_links(cur, csv_chunks: Iterable[bytes]) -> None:
    """COPY the rows of `transform.genre_links`, as CSV, into the staging link table.

    FREEZE (allowed: the table is new in this transaction) marks its pages all-visible, so the
    genre-year way reads them from its index alone from the first query on.
    """
    started = time.perf_counter()
    with _ChunkReader(csv_chunks) as reader:
        cur.copy_expert(
            f"COPY {GENRE_LINKS.staging} ({', '.join(LINK_COLUMNS)}) "
            "FROM STDIN WITH (FORMAT csv, FREEZE)",
            reader,
            size=1 << 20,
        )
    log.debug("%.2f s: COPY %s", time.perf_counter() - started, GENRE_LINKS.staging)


def build_indexes(cur) -> Renames:
    """Give each staging table the live partition's indexes, keys and foreign keys."""
    renames = Renames()
    for part in PARTITIONS:
        cur.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid), c.conname, c.contype "
            "FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid "
            "LEFT JOIN pg_constraint AS c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid "
            "WHERE x.indrelid = %s::regclass ORDER BY i.relname",
            (part.live,),
        )
        for number, (name, definition, constraint, kind) in enumerate(cur.fetchall(), 1):
            match = INDEX_DEF.match(definition)
            if match is None:
                raise LoadError(f"cannot copy index {name}: unexpected definition {definition!r}")
            staging_name = f"{part.staging}_ix{number}"
            unique, rest = match.groups()
            _timed(cur, f"CREATE {unique or ''}INDEX {staging_name} ON {part.staging} {rest}")
            if constraint:
                keyword = {"p": "PRIMARY KEY", "u": "UNIQUE"}.get(kind)
                if keyword is None:
                    raise LoadError(f"cannot copy constraint {constraint} of kind {kind!r}")
                cur.execute(
                    f"ALTER TABLE {part.staging} ADD CONSTRAINT {staging_name} "
                    f"{keyword} USING INDEX {staging_name}"
                )
            renames.indexes.append((staging_name, name))
        cur.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
            (part.live,),
        )
        for number, (name, definition) in enumerate(cur.fetchall(), 1):
            staging_name = f"{part.staging}_fk{number}"
            _timed(cur, f"ALTER TABLE {part.staging} ADD CONSTRAINT {staging_name} {definition}")
            renames.constraints.append((part.live, staging_name, name))
    return renames


def analyze(cur) -> None:
    """Gather the movie staging table's statistics, which every API query is planned with.

    The link table is left to autovacuum: the one query reading it (the genre counts) scans and
    groups all of it whatever the statistics say, and CREATE INDEX has already set its size.
    """
    _timed(cur, f"ANALYZE {MOVIES.staging}")


def swap(cur, renames: Renames, *, attempts: int | None = None) -> None:
    """Replace the live partitions by the staging tables, inside a savepoint.

    Readers keep seeing the old rows until the transaction commits; they wait only from here to
    the commit. If a lock cannot be had within the lock timeout, the savepoint is rolled back and
    the swap tried again.

    :raise LoadError: if the locks could not be had after `attempts` tries.
    """
    attempts = attempts or SWAP_ATTEMPTS
    for attempt in range(1, attempts + 1):
        cur.execute("SAVEPOINT swap")
        try:
            cur.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
            for part in PARTITIONS:
                cur.execute(f"ALTER TABLE {part.parent} DETACH PARTITION {part.live}")
                cur.execute(f"DROP TABLE {part.live}")
                cur.execute(f"ALTER TABLE {part.staging} RENAME TO {part.live}")
            for staging_name, live_name in renames.indexes:
                cur.execute(f"ALTER INDEX {staging_name} RENAME TO {live_name}")
            for table, staging_name, live_name in renames.constraints:
                cur.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {staging_name} TO {live_name}")
            for part in PARTITIONS:
                cur.execute(
                    f"ALTER TABLE {part.parent} ATTACH PARTITION {part.live} FOR VALUES IN ('imdb')"
                )
                cur.execute(f"ALTER TABLE {part.live} DROP CONSTRAINT {part.source_check}")
            cur.execute("SET LOCAL lock_timeout = 0")
            cur.execute("RELEASE SAVEPOINT swap")
            return
        except psycopg2.errors.LockNotAvailable:
            cur.execute("ROLLBACK TO SAVEPOINT swap")
            log.warning("swap attempt %d/%d: tables busy; retrying", attempt, attempts)
            time.sleep(0.2 * attempt)
    raise LoadError(
        f"could not lock the movie tables for the swap after {attempts} attempts "
        f"({SWAP_LOCK_TIMEOUT} each); the previous data is unchanged"
    )


def record_load(
    cur,
    *,
    source: str,
    basics_last_modified: datetime | None,
    ratings_last_modified: datetime | None,
    rows_read: int,
    movies: int,
    rated_movies: int,
    genre_links: int,
    skipped_rows: int,
    seconds: float,
    mean_rating: float | None = None,
) -> None:
    """Insert the `dataset_load` row describing this load: the last statement before COMMIT.

    `loaded_at` is when the new data become visible (the API's Last-Modified), so it is the
    clock at this statement, not `now()` (the start of the load's transaction, minutes earlier):
    the swap's locks are held here, so a user movie created meanwhile waits and is stamped later.
    """
    cur.execute(
        "INSERT INTO dataset_load (loaded_at, source, basics_last_modified, "
        "ratings_last_modified, rows_read, movies, rated_movies, genre_links, skipped_rows, "
        "seconds, mean_rating) "
        "VALUES (clock_timestamp(), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            source,
            basics_last_modified,
            ratings_last_modified,
            rows_read,
            movies,
            rated_movies,
            genre_links,
            skipped_rows,
            round(seconds, 3),
            mean_rating,
        ),
    )


def rescore_user_movies(cur, mean_rating: float | None) -> None:
    """Recompute the score of every rated user movie with the new dataset's mean rating.

    User movies are few (created one by one through the API), so they are scored in Python with
    the very function POST /movies uses.
    """
    cur.execute("SELECT id, rating, votes FROM movie_user WHERE rating IS NOT NULL")
    scores = [(weighted_rating(r, v, mean_rating), i) for i, r, v in cur.fetchall()]
    if scores:
        cur.executemany("UPDATE movie_user SET score = %s WHERE id = %s", scores)
