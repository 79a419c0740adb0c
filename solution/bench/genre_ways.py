"""The genre access paths side by side: is each one needed?

For a few genre queries, the statement the API sends (the way `choose_way` picks from the load's
genre sizes) against the same query by another way: the plain statement that leaves the plan to
PostgreSQL, or the rare-genre way forced. Each statement is prepared as the API prepares it
(`movies.prepared.prepared_text`) on one connection and executed `--each` times per round, the
statements of a query alternated over `--rounds` rounds (every other round in reverse order);
the table gives median and p99 wall time per execution, client side, and checks that every way
returns the same rows. The genre-year query is also run with a statistics target of 10,000 on
`genres` (ALTER TABLE ... SET STATISTICS and ANALYZE in a transaction rolled back afterwards):
what planner statistics alone would give.

It reads the database `make bench-api` leaves in .data/bench-api/scale-<scale>/ and starts it if
it is stopped.

Example:
    .venv/bin/python solution/bench/genre_ways.py --rounds 5 --each 60
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from decimal import Decimal
from typing import Any

from bench_api import DATA_ROOT
from harness import BenchError, EmbeddedDatabase

from movies import query as q
from movies.db import create_engine
from movies.prepared import prepared_text
from movies.query.genres import year_bounds
from movies.repository import GenreVocabulary

COMEDY_ROMANCE = q.MovieQuery(
    genres=("Comedy", "Romance"),
    ranges=(("rating_gte", Decimal(7)), ("year_gte", 1990), ("year_lte", 1999)),
    sort=q.parse_sort("-votes"),
)
CASES = [
    ("Comedy+Romance, 1990s, rating >= 7, sort -votes", COMEDY_ROMANCE),
    ("Film-Noir, sort title", q.MovieQuery(genres=("Film-Noir",))),
    ("News, sort title", q.MovieQuery(genres=("News",))),
    ("Western, sort title", q.MovieQuery(genres=("Western",))),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="1.0", help="the bench-api data set [default: 1.0]")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--each", type=int, default=60, help="executions per statement and round")
    args = parser.parse_args()
    data_dir = DATA_ROOT / "bench-api" / f"scale-{args.scale}"
    if not (data_dir / "pgdata").is_dir():
        print(f"error: no bench-api database in {data_dir}: run `make bench-api` first")
        return 2
    database = EmbeddedDatabase(data_dir)
    try:
        engine = create_engine(database.start())
        with engine.connect() as conn:
            cursor = conn.connection.cursor()
            sizes = GenreVocabulary().sizes(conn)
            print("| query | way | median ms | p99 ms | rows |")
            print("|---|---|---:|---:|---:|")
            for label, query in CASES:
                ways = _ways(query, sizes)
                _print(label, _measure(cursor, ways, args.rounds, args.each))
            cursor.execute("ALTER TABLE movie_imdb ALTER COLUMN genres SET STATISTICS 10000")
            cursor.execute("ANALYZE movie_imdb")
            ways = {
                f"{way}, `genres` statistics target 10,000": sql
                for way, sql in _ways(COMEDY_ROMANCE, sizes).items()
            }
            _print(CASES[0][0], _measure(cursor, ways, args.rounds, args.each))
            conn.connection.rollback()  # the statistics as the load left them
    except BenchError as exc:
        print(f"error: {exc}")
        return 1
    finally:
        database.stop()
    return 0


def _ways(query: q.MovieQuery, sizes: q.GenreSizes) -> dict[str, q.Sql]:
    """The statement the API sends for `query`, and the same query by another way: the plain
    statement, or (when the plain one is chosen, without a year filter) the rare way forced."""
    chosen, _ = q.choose_way(query, sizes)
    plain = q.page_sql(query)
    if chosen is not q.GenreWay.USUAL:
        return {f"chosen: {chosen.value}": q.page_sql(query, sizes=sizes), "plain: usual": plain}
    statements = {"chosen: usual (plain)": plain}
    if year_bounds(query) is None:
        every_genre_rare = q.GenreSizes({name: 0 for name in query.genres})
        statements["forced: rare"] = q.page_sql(query, sizes=every_genre_rare)
    return statements


def _measure(cursor: Any, ways: dict[str, q.Sql], rounds: int, each: int) -> dict[str, list]:
    """Per way, the wall times in ms of its executions; fails when two ways differ in rows."""
    executions = {}
    for number, (way, sql) in enumerate(ways.items()):
        text, parameters = prepared_text(cursor, sql.text, sql.params, sql.bound)
        cursor.execute(f"PREPARE genre_way_{number} AS ".encode() + text)
        placeholders = f"({', '.join(['%s'] * len(parameters))})" if parameters else ""
        executions[way] = (f"EXECUTE genre_way_{number}{placeholders}", parameters)
    times: dict[str, list] = {way: [] for way in ways}
    rows = {}
    for round_number in range(rounds):
        order = list(ways) if round_number % 2 == 0 else list(reversed(ways))
        for way in order:
            statement, parameters = executions[way]
            for _ in range(each):
                started = time.perf_counter()
                cursor.execute(statement, parameters)
                result = cursor.fetchall()
                times[way].append((time.perf_counter() - started) * 1000)
            rows[way] = [row[0] for row in result]
    for number in range(len(ways)):
        cursor.execute(f"DEALLOCATE genre_way_{number}")
    if len({tuple(ids) for ids in rows.values()}) != 1:
        raise BenchError(f"the ways returned different rows: {rows}")
    return {way: [times[way], len(rows[way])] for way in ways}


def _print(label: str, measured: dict[str, list]) -> None:
    for way, (times, count) in measured.items():
        times.sort()
        p99 = times[max(0, round(len(times) * 0.99) - 1)]
        print(f"| {label} | {way} | {statistics.median(times):.2f} | {p99:.2f} | {count} |")


if __name__ == "__main__":
    sys.exit(main())
