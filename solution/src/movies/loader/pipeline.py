"""`run_load`: fetch, parse, write and swap, timing each phase. The loader's one entry point."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import psycopg2
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from movies import schema
from movies.db import create_engine
from movies.loader import write
from movies.loader.errors import LoadError
from movies.loader.read import BASICS_COLUMNS, RATINGS_COLUMNS, TsvReader
from movies.loader.report import LoadReport
from movies.loader.source import SourceFiles, fetch_source
from movies.loader.transform import (
    BASICS_USED,
    MOVIE_FIELDS,
    TEXT,
    csv_chunks,
    decode_text,
    drop_duplicates,
    genre_links,
    genre_names,
    genre_sizes,
    join_ratings,
    mean_rating,
    movie_csv_chunks,
    movie_rows,
    rarest_genre_first,
    select_movies,
    select_ratings,
)

log = logging.getLogger(__name__)

SELECT_AHEAD = 1  # parsed frames (16 MiB of text each) waiting for select_movies


def run_load(
    url: str,
    source: str,
    *,
    downloads: Path,
    force: bool = False,
    progress: bool = False,
) -> LoadReport:
    """Load IMDb's movies from `source` (base URL or folder) into the database at `url`.

    Everything happens in one transaction under the load lock; readers see the old data until it
    commits. A failure at any point leaves the previous data as it was.

    :raise LoadInProgressError: if another load is running.
    :raise SourceError: if the source or one of its files is missing or cannot be downloaded.
    :raise FormatError: if a file is not an IMDb TSV file.
    :raise ShrinkError: if the new data has under half the current movies and not `force`.
    :raise LoadError: for any database failure, naming the step.
    """
    report = LoadReport(source=source)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with _database_errors("applying the schema"):
            schema.apply(engine)
        with _database_errors("connecting"):
            fairy = engine.raw_connection()
        try:
            with _database_errors("loading"):
                _load(fairy.driver_connection, source, downloads, force, progress, report)
        finally:
            fairy.close()
    finally:
        engine.dispose()
    return report


def _load(conn, source: str, downloads: Path, force: bool, progress: bool, report: LoadReport):
    cur = conn.cursor()
    try:
        write.take_load_lock(cur)
        write.configure_transaction(cur)
        with _phase(report, "download"):
            files = fetch_source(source, downloads, progress=progress)
        report.basics_last_modified = files.basics.last_modified
        report.ratings_last_modified = files.ratings.last_modified
        with _phase(report, "parse"):
            movies = parse_files(files, report, progress=progress)
        report.previous_movies = write.count_live_movies(cur)
        write.check_shrink(report.previous_movies, len(movies), force=force)
        with _phase(report, "copy"):
            write.create_staging(cur)
            report.mean_rating = mean_rating(movies)
            genre_ids = write.ensure_genres(cur, genre_names(movies))
            # The links are computed on a second thread while the movies are sent.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="links") as pool:
                links_future = pool.submit(genre_links, movies, genre_ids)
                write.copy_movies(cur, movie_csv_chunks(movies, report.mean_rating))
                links = links_future.result()
            del movies
            report.genre_links = len(links)
            write.record_genre_sizes(cur, genre_sizes(links))
            write.copy_genre_links(cur, csv_chunks(links))
            write.record_genre_years(cur)
            del links
        with _phase(report, "index"):
            renames = write.build_indexes(cur)
            write.analyze(cur)
        with _phase(report, "swap"):
            write.swap(cur, renames)
            write.rescore_user_movies(cur, report.mean_rating)
            write.record_load(
                cur,
                source=source,
                basics_last_modified=report.basics_last_modified,
                ratings_last_modified=report.ratings_last_modified,
                rows_read=report.rows_read + report.ratings_rows_read,
                movies=report.movies,
                rated_movies=report.rated_movies,
                genre_links=report.genre_links,
                skipped_rows=report.skipped_rows,
                seconds=report.total_seconds,
                mean_rating=report.mean_rating,
            )
            conn.commit()
        log.info("load committed: %d movies", report.movies)
    except BaseException:
        conn.rollback()
        raise
    finally:
        cur.close()


def parse_files(files: SourceFiles, report: LoadReport, *, progress: bool = False) -> pd.DataFrame:
    """Read both files into one frame of valid movies, ratings left-joined, grouped by their
    rarest genre (`rarest_genre_first`); fill `report`.

    The ratings file is read on a second thread while this one reads the basics file (Arrow's
    parser and compute kernels and the decompressor release the GIL).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ratings") as pool:
        ratings_future = pool.submit(_read_ratings, files.ratings.path)
        movies = _read_movies(files.basics.path, report, progress=progress)
        ratings, ratings_report = ratings_future.result()
    report.ratings_rows_read = ratings_report.ratings_rows_read
    for reason, count in ratings_report.skipped.items():
        report.skip(reason, count)
    log.info(
        "parsed %d basics rows, %d ratings rows: %d movies",
        report.rows_read,
        report.ratings_rows_read,
        len(movies),
    )
    joined = join_ratings(movies, ratings, report)
    del movies, ratings  # not needed while the rows are reordered (a copy of them)
    return rarest_genre_first(joined)


def _read_ratings(path: Path) -> tuple[pd.DataFrame, LoadReport]:
    """The valid, de-duplicated ratings rows, and a report holding only the ratings' counts."""
    report = LoadReport(source=str(path))
    reader = TsvReader(path, RATINGS_COLUMNS)
    ratings = _concat(
        (
            select_ratings(decode_text(frame, "ratings: NUL or invalid UTF-8", report), report)
            for frame in reader.frames()
        ),
        RATINGS_COLUMNS,
    )
    report.ratings_rows_read = reader.rows_read
    report.skip("ratings: wrong number of fields", reader.bad_rows)
    return drop_duplicates(ratings, "ratings: duplicate tconst", report), report


def _read_movies(path: Path, report: LoadReport, *, progress: bool) -> pd.DataFrame:
    """The valid, de-duplicated movie rows of the basics file; counts go to `report`."""
    basics_reader = TsvReader(path, BASICS_COLUMNS, include=BASICS_USED)
    frames = basics_reader.frames()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit=" rows", unit_scale=True, desc=path.name, leave=False)
    try:
        movies = _concat(_selected(_counted(frames, basics_reader, bar), report), MOVIE_FIELDS)
    finally:
        if bar is not None:
            bar.close()
    report.rows_read = basics_reader.rows_read
    report.skip("basics: wrong number of fields", basics_reader.bad_rows)
    return drop_duplicates(movies, "basics: duplicate tconst", report)


def _selected(frames: Iterator[pd.DataFrame], report: LoadReport) -> Iterator[pd.DataFrame]:
    """The valid movies of each parsed frame (`movie_rows`, `decode_text`, `select_movies`),
    worked out on a second thread while this one parses the next block.

    Arrow's parser and compute kernels release the GIL, so the two overlap. At most
    SELECT_AHEAD frames wait, so memory stays flat; the results keep the file's order.
    """

    def select(basics: pd.DataFrame) -> pd.DataFrame:
        movies = decode_text(movie_rows(basics), "basics: NUL or invalid UTF-8", report)
        return select_movies(movies, report)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="select") as pool:
        pending: deque[Future] = deque()
        for frame in frames:
            pending.append(pool.submit(select, frame))
            while len(pending) > SELECT_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _counted(frames: Iterator[pd.DataFrame], reader: TsvReader, bar) -> Iterator[pd.DataFrame]:
    for frame in frames:
        if bar is not None:
            bar.update(reader.rows_read - bar.n)
        yield frame


def _concat(frames: Iterator[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """One frame of all `frames` (an empty frame of text `columns` if there are none)."""
    parts = list(frames)
    if not parts:
        return pd.DataFrame({name: pd.Series([], dtype=TEXT) for name in columns})
    return pd.concat(parts, ignore_index=True)


@contextmanager
def _phase(report: LoadReport, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        report.seconds[name] = report.seconds.get(name, 0.0) + time.perf_counter() - started
        log.info("%s: %.2f s", name, report.seconds[name])


@contextmanager
def _database_errors(step: str) -> Iterator[None]:
    """Turn driver errors into LoadError naming the step (no traceback for the user)."""
    try:
        yield
    except psycopg2.Error as exc:
        raise LoadError(f"database error while {step}: {_first_line(exc)}") from exc
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise LoadError(f"database error while {step}: {_first_line(cause)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "pgerror", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
