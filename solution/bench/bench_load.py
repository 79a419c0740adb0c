"""Load benchmark: the full-size synthetic data set through the real `movies load`, N times.

Generates the scale-1.0 synthetic files once (cached in .data/synthetic-1.0-seed42/; regenerated
only when absent or incomplete), then runs `movies load --source DIR --force` as a subprocess
`--runs` times and prints, per run and as the median:

- wall seconds of the loader process (start to exit, Python start-up included);
- peak RSS of the loader's process tree (sampled every 20 ms with psutil; the sum over the loader
  and any worker processes it starts) and the peak RSS of its largest single process as the
  kernel counts it (`/usr/bin/time -f %M`, when available);
- the loader process's CPU seconds (user + system, `/usr/bin/time`), which machine load
  disturbs less than wall time, and the 1-minute load average when the run ended;
- the loader's own per-phase seconds, parsed from the report it prints.

The PostgreSQL server is not part of the loader's process tree: its memory is not counted. For
the embedded server, the CPU seconds its processes used during each run are shown beside the
loader's (COPY parsing, index builds and parallel workers run there).

Without DATABASE_URL the loads go to a dedicated embedded PostgreSQL in .data/bench-load/ (started
before the first run so that no run pays for the server start, stopped at the end if this run
started it), so the benchmark never replaces what `make demo` serves. With DATABASE_URL set, the
loads go there.

Each run is checked against the generator's synthetic.json: the movies and rated movies the load
records in `dataset_load` must equal the well-formed movie rows of the files (and those rated).

Examples:
    make bench-load
    .venv/bin/python solution/bench/bench_load.py --runs 5
    .venv/bin/python solution/bench/bench_load.py --scale 0.1 --runs 1     # a quick look
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import sqlalchemy as sa
from harness import (
    DATA_ROOT,
    REPO,
    BenchError,
    EmbeddedDatabase,
    cpu_and_memory,
    ensure_synthetic_data,
    server_env,
    venv_command,
)

from movies.config import ConfigError, Settings
from movies.db import create_engine

log = logging.getLogger("bench.load")

TARGET_WALL_S = 15.0
TARGET_RSS_MIB = 1024.0
SAMPLE_INTERVAL_S = 0.02
# The timings line of the loader's report:
#   "  seconds   download 0.00, parse 3.21, copy 2.10, index 4.02, swap 0.11, total 9.44"
SECONDS_LINE = re.compile(r"^\s*seconds\s+(.*)$")
PHASE = re.compile(r"([A-Za-z][\w-]*)\s+([0-9]+(?:\.[0-9]+)?)")


@dataclass
class Run:
    """One load: what it cost and what the loader said about it."""

    wall_s: float
    tree_rss_mib: float
    process_rss_mib: float | None
    cpu_s: float | None
    load_average: float
    server_cpu_s: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    movies: int | None = None
    rated_movies: int | None = None
    skipped: int | None = None
    report: str = ""


class TreeMemorySampler:
    """Samples the summed RSS of a process and its descendants until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.peak_bytes = 0
        self._root = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                processes = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                return
            total = 0
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(SAMPLE_INTERVAL_S)


def parse_phases(report: str) -> dict[str, float]:
    """Per-phase seconds from the `seconds` line of the loader's report ({} if there is none)."""
    for line in report.splitlines():
        match = SECONDS_LINE.match(line)
        if match:
            return {name: float(value) for name, value in PHASE.findall(match.group(1))}
    return {}


def last_load(url: str) -> tuple[int | None, int | None, int | None]:
    """(movies, rated movies, skipped rows) of the newest dataset_load row (Nones if none)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT movies, rated_movies, skipped_rows FROM dataset_load"
                    " ORDER BY id DESC LIMIT 1"
                )
            ).first()
    finally:
        engine.dispose()
    return (None, None, None) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def server_cpu_seconds(pgdata: Path | None) -> float | None:
    """CPU seconds used so far by the PostgreSQL server in `pgdata` and its backends.

    The postmaster's own time, plus what its exited children (backends, parallel workers) used,
    plus what its live children have used. None when the server is not local or not readable.
    """
    if pgdata is None:
        return None
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        postmaster = psutil.Process(pid)
        times = postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in postmaster.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.Error:
                continue
            total += child_times.user + child_times.system
    except (OSError, ValueError, psutil.Error):
        return None
    return total


def run_once(folder: Path, env: dict[str, str], url: str, pgdata: Path | None = None) -> Run:
    """Run `movies load --source folder --force` once and measure it.

    :raise BenchError: if the load fails.
    """
    argv = [venv_command("movies"), "load", "--source", str(folder), "--force"]
    time_bin = Path("/usr/bin/time")  # GNU time: the child's peak RSS as the kernel counts it
    with tempfile.TemporaryDirectory() as tmp:
        time_out = Path(tmp) / "time.txt"
        if time_bin.exists():
            argv = [str(time_bin), "-f", "%M %U %S", "-o", str(time_out), *argv]
        server_before = server_cpu_seconds(pgdata)
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        with TreeMemorySampler(child.pid) as sampler:
            stdout, stderr = child.communicate()
        wall = time.perf_counter() - started
        server_after = server_cpu_seconds(pgdata)
        process_kib = cpu_s = None
        lines = time_out.read_text().strip().splitlines() if time_out.exists() else []
        if lines and re.fullmatch(r"[0-9]+ [0-9.]+ [0-9.]+", lines[-1]):
            kib, user, system = lines[-1].split()
            process_kib, cpu_s = int(kib), float(user) + float(system)
    if child.returncode != 0:
        raise BenchError(
            f"'{' '.join(argv)}' failed (exit {child.returncode}):\n{stderr.strip()[-2000:]}"
        )
    movies, rated_movies, skipped = last_load(url)
    return Run(
        wall_s=wall,
        tree_rss_mib=sampler.peak_bytes / 2**20,
        process_rss_mib=None if process_kib is None else process_kib / 1024,
        cpu_s=cpu_s,
        load_average=os.getloadavg()[0],
        server_cpu_s=(
            None if server_before is None or server_after is None else server_after - server_before
        ),
        phases=parse_phases(stdout),
        movies=movies,
        rated_movies=rated_movies,
        skipped=skipped,
        report=stdout.strip(),
    )


def machine_summary(url: str) -> list[str]:
    """nproc, CPU model, RAM, load average, PostgreSQL and Python versions."""
    model, memory = cpu_and_memory()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            server = conn.scalar(sa.text("SHOW server_version"))
    finally:
        engine.dispose()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {os.cpu_count()} CPUs ({model}), {memory} RAM, "
        f"{platform.system()} {platform.release()}",
        f"PostgreSQL {server}, Python {platform.python_version()}",
        f"code: {code_version()}",
        f"load average at start (1, 5, 15 min): {load}",
    ]


def code_version() -> str:
    """The commit measured, and whether the loader has uncommitted changes ("unknown" sans git)."""
    git = ["git", "-C", str(REPO)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "solution/src/movies"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {head}" + (" with uncommitted changes in src/movies" if dirty else "")


def render_table(runs: list[Run]) -> list[str]:
    """Markdown table: one row per run and the median of each column, phases as columns."""
    phase_names: list[str] = []
    for run in runs:
        phase_names += [name for name in run.phases if name not in phase_names]
    columns = [
        ("wall s", lambda r: r.wall_s, 2),
        ("tree RSS MiB", lambda r: r.tree_rss_mib, 0),
        ("process RSS MiB", lambda r: r.process_rss_mib, 0),
        ("loader CPU s", lambda r: r.cpu_s, 1),
        ("server CPU s", lambda r: r.server_cpu_s, 1),
        ("load avg", lambda r: r.load_average, 1),
        ("movies", lambda r: r.movies, None),
        ("skipped", lambda r: r.skipped, None),
    ]
    columns += [(f"{name} s", lambda r, n=name: r.phases.get(n), 2) for name in phase_names]
    lines = [
        "| run | " + " | ".join(c[0] for c in columns) + " |",
        "|---:|" + "---:|" * len(columns),
    ]
    for i, run in enumerate(runs, 1):
        lines.append(f"| {i} | " + " | ".join(_fmt(get(run), d) for _, get, d in columns) + " |")
    medians = []
    for _, get, digits in columns:
        values = [v for v in map(get, runs) if v is not None]
        medians.append(_fmt(statistics.median(values) if values else None, digits))
    lines.append("| **median** | " + " | ".join(medians) + " |")
    return lines


def _fmt(value: float | int | None, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if digits is None:
        return f"{round(value):,}"
    return f"{value:,.{digits}f}"


def run(args: argparse.Namespace) -> int:
    """Generate (once), load `args.runs` times, print the table; 1 if a target is missed."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise BenchError(str(exc)) from exc
    started = time.perf_counter()
    folder, manifest = ensure_synthetic_data(args.scale, args.seed)
    log.info("synthetic data ready in %.1f s: %s", time.perf_counter() - started, folder)
    expected_movies = manifest["loadable_movies"]
    database = None
    if settings.database_url:
        url = settings.database_url
        env = server_env(url, settings.data_dir)
    else:
        data_dir = args.db_dir or DATA_ROOT / "bench-load"
        database = EmbeddedDatabase(data_dir)
        url = database.start()
        env = server_env(url, data_dir)
        # The CLI finds the running server through MOVIES_DATA_DIR; DATABASE_URL would also do,
        # but leaving it unset exercises the path a user of `movies load` takes.
        env.pop("DATABASE_URL", None)
    runs: list[Run] = []
    try:
        lines = machine_summary(url)
        for i in range(1, args.runs + 1):
            log.info("run %d/%d: movies load --source %s --force", i, args.runs, folder)
            result = run_once(folder, env, url, None if database is None else database.pgdata)
            log.info(
                "run %d: %.2f s wall, %.0f MiB peak RSS (tree)",
                i,
                result.wall_s,
                result.tree_rss_mib,
            )
            expected_rated = manifest.get("loadable_rated_movies", result.rated_movies)
            if (result.movies, result.rated_movies) != (expected_movies, expected_rated):
                raise BenchError(
                    f"run {i} loaded {result.movies} movies ({result.rated_movies} rated); the "
                    f"files hold {expected_movies} well-formed movie rows ({expected_rated} "
                    f"rated); loader report:\n{result.report}"
                )
            runs.append(result)
    finally:
        if database is not None and not args.keep_db:
            database.stop()
    median_wall = statistics.median(r.wall_s for r in runs)
    median_rss = statistics.median(r.tree_rss_mib for r in runs)
    print()
    print(
        f"movies load --source {folder} --force  "
        f"({manifest['basics_rows']:,} title rows, {manifest['ratings_rows']:,} ratings rows, "
        f"{expected_movies:,} movies; {args.runs} runs)"
    )
    for line in lines:
        print(line)
    print()
    for line in render_table(runs):
        print(line)
    print()
    print("loader report of the last run:")
    print(runs[-1].report)
    print()
    wall_ok, rss_ok = median_wall <= TARGET_WALL_S, median_rss <= TARGET_RSS_MIB
    print(
        f"target wall <= {TARGET_WALL_S:.0f} s: {'met' if wall_ok else 'MISSED'} "
        f"(median {median_wall:.2f} s); target peak RSS <= {TARGET_RSS_MIB:.0f} MiB: "
        f"{'met' if rss_ok else 'MISSED'} (median {median_rss:.0f} MiB)"
    )
    return 0 if wall_ok and rss_ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load the synthetic full-size IMDb files with `movies load`, N times; print "
        "wall seconds, peak RSS and the loader's phases per run and the median.",
        epilog="Example: .venv/bin/python solution/bench/bench_load.py --runs 5",
    )
    parser.add_argument("--runs", type=int, default=3, help="loads to measure [default: 3]")
    parser.add_argument("--scale", type=float, default=1.0, help="data set scale [default: 1.0]")
    parser.add_argument("--seed", type=int, default=42, help="data set seed [default: 42]")
    parser.add_argument(
        "--db-dir",
        type=Path,
        default=None,
        help="data dir of the embedded PostgreSQL [default: .data/bench-load]",
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="leave the embedded PostgreSQL running at the end"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not args.scale > 0:
        parser.error("--scale must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench-load: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
