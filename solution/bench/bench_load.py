"""Load benchmark: the full-size synthetic data set through the real `movies load`, N times,
with this checkout's loader and, side by side, a baseline revision's.

Generates the scale-1.0 synthetic files once (cached in .data/synthetic-1.0-seed42/; regenerated
only when absent or incomplete), then runs `movies load --source DIR --force` as a subprocess
`--runs` times with each loader, interleaved (baseline, this, this, baseline, ...), so both meet
the same machine load; and prints, per run and as the median of each loader:

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

The baseline (`--baseline REV`, by default the last commit before the pandas-based loader) runs
from a temporary `git worktree` of REV with PYTHONPATH=<worktree>/solution/src, in this venv.

Without DATABASE_URL the loads go to dedicated embedded PostgreSQL servers in .data/bench-load/
and, for the baseline, .data/bench-load-baseline/ (each applies its own schema scripts; started
before the first run so that no run pays for the server start, stopped at the end if this run
started them), so the benchmark never replaces what `make demo` serves. With DATABASE_URL set,
both loaders load there (their schema scripts must then agree).

Each run is checked against the generator's synthetic.json: the movies and rated movies the load
records in `dataset_load` must equal the well-formed movie rows of the files (and those rated).

Examples:
    make bench-load
    .venv/bin/python solution/bench/bench_load.py --runs 5
    .venv/bin/python solution/bench/bench_load.py --baseline HEAD~1
    .venv/bin/python solution/bench/bench_load.py --scale 0.1 --runs 1 --baseline ''  # a quick look
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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
TARGET_WALL_RATIO = 1.10  # this checkout's median wall time against the baseline's
DEFAULT_BASELINE = "90e14e1"  # main just before the pandas-based loader
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


@dataclass
class Loader:
    """One loader under test: a name, the environment its `movies load` runs in, its database."""

    name: str
    env: dict[str, str]
    url: str
    pgdata: Path | None
    runs: list[Run] = field(default_factory=list)


@contextmanager
def baseline_checkout(revision: str) -> Iterator[Path]:
    """A temporary git worktree of `revision` (detached), removed on exit; yields its src folder.

    :raise BenchError: if git cannot check the revision out.
    """
    with tempfile.TemporaryDirectory(prefix="bench-load-baseline-") as tmp:
        folder = Path(tmp) / "checkout"
        git = ["git", "-C", str(REPO), "worktree"]
        added = subprocess.run(
            [*git, "add", "--detach", "--quiet", str(folder), revision],
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            raise BenchError(f"cannot check out {revision!r}: {added.stderr.strip()}")
        try:
            yield folder / "solution" / "src"
        finally:
            subprocess.run([*git, "remove", "--force", str(folder)], check=False)


def check_imports_from(env: dict[str, str], src: Path) -> None:
    """Make sure `movies` imports from `src` in `env` (PYTHONPATH comes before the venv's copy).

    :raise BenchError: naming where it imports from instead.
    """
    found = subprocess.run(
        [sys.executable, "-c", "import movies; print(movies.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not found.startswith(str(src)):
        raise BenchError(f"the baseline imports movies from {found or 'nowhere'}, not {src}")


def start_database(
    settings: Settings, data_dir: Path, databases: list[EmbeddedDatabase]
) -> tuple[str, dict[str, str], Path | None]:
    """The URL, child environment and pgdata of a bench database: DATABASE_URL when set, else an
    embedded PostgreSQL in `data_dir` (appended to `databases`, to be stopped at the end)."""
    if settings.database_url:
        return settings.database_url, server_env(settings.database_url, settings.data_dir), None
    database = EmbeddedDatabase(data_dir)
    databases.append(database)
    url = database.start()
    env = server_env(url, data_dir)
    # The CLI finds the running server through MOVIES_DATA_DIR; DATABASE_URL would also do,
    # but leaving it unset exercises the path a user of `movies load` takes.
    env.pop("DATABASE_URL", None)
    return url, env, database.pgdata


def measure(loaders: list[Loader], folder: Path, manifest: dict, runs: int) -> None:
    """Load `folder` `runs` times with each loader, interleaved (the first one alternates, so
    neither always follows the other), checking every load against the manifest.

    :raise BenchError: if a load fails or loads other counts than the files hold.
    """
    expected_movies = manifest["loadable_movies"]
    for i in range(1, runs + 1):
        order = loaders if i % 2 else loaders[::-1]
        for loader in order:
            log.info("run %d/%d, %s: movies load --source %s --force", i, runs, loader.name, folder)
            result = run_once(folder, loader.env, loader.url, loader.pgdata)
            log.info(
                "run %d, %s: %.2f s wall, %.0f MiB peak RSS (tree)",
                i,
                loader.name,
                result.wall_s,
                result.tree_rss_mib,
            )
            expected_rated = manifest.get("loadable_rated_movies", result.rated_movies)
            if (result.movies, result.rated_movies) != (expected_movies, expected_rated):
                raise BenchError(
                    f"run {i} of {loader.name} loaded {result.movies} movies "
                    f"({result.rated_movies} rated); the files hold {expected_movies} well-formed "
                    f"movie rows ({expected_rated} rated); loader report:\n{result.report}"
                )
            loader.runs.append(result)


def run(args: argparse.Namespace) -> int:
    """Generate (once), load `args.runs` times with this checkout's loader and, interleaved, with
    the baseline's; print the tables; 1 if a target is missed."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise BenchError(str(exc)) from exc
    started = time.perf_counter()
    folder, manifest = ensure_synthetic_data(args.scale, args.seed)
    log.info("synthetic data ready in %.1f s: %s", time.perf_counter() - started, folder)
    databases: list[EmbeddedDatabase] = []
    with ExitStack() as stack:
        if not args.keep_db:
            stack.callback(lambda: [database.stop() for database in databases])
        url, env, pgdata = start_database(
            settings, args.db_dir or DATA_ROOT / "bench-load", databases
        )
        loaders = [Loader(f"this checkout ({code_version()})", env, url, pgdata)]
        if args.baseline:
            src = stack.enter_context(baseline_checkout(args.baseline))
            # Its own database: the two checkouts may differ in schema, and each load applies
            # its own scripts.
            base_url, base_env, base_pgdata = start_database(
                settings, DATA_ROOT / "bench-load-baseline", databases
            )
            base_env["PYTHONPATH"] = str(src)
            check_imports_from(base_env, src)
            loaders.insert(0, Loader(f"baseline {args.baseline}", base_env, base_url, base_pgdata))
        lines = machine_summary(url)
        measure(loaders, folder, manifest, args.runs)
    print()
    print(
        f"movies load --source {folder} --force  "
        f"({manifest['basics_rows']:,} title rows, {manifest['ratings_rows']:,} ratings rows, "
        f"{manifest['loadable_movies']:,} movies; {args.runs} runs"
        + (", interleaved" if len(loaders) > 1 else "")
        + ")"
    )
    for line in lines:
        print(line)
    for loader in loaders:
        print()
        print(f"{loader.name}:")
        print()
        for line in render_table(loader.runs):
            print(line)
    print()
    print("loader report of the last run of this checkout:")
    print(loaders[-1].runs[-1].report)
    print()
    return 0 if report_targets(loaders) else 1


def report_targets(loaders: list[Loader]) -> bool:
    """Print each target and whether the medians meet it; True if all are met."""
    candidate = loaders[-1]
    wall = statistics.median(r.wall_s for r in candidate.runs)
    rss = statistics.median(r.tree_rss_mib for r in candidate.runs)
    met = [wall <= TARGET_WALL_S, rss <= TARGET_RSS_MIB]
    print(
        f"target wall <= {TARGET_WALL_S:.0f} s: {'met' if met[0] else 'MISSED'} "
        f"(median {wall:.2f} s); target peak RSS <= {TARGET_RSS_MIB:.0f} MiB: "
        f"{'met' if met[1] else 'MISSED'} (median {rss:.0f} MiB)"
    )
    if len(loaders) > 1:
        baseline = loaders[0]
        base_wall = statistics.median(r.wall_s for r in baseline.runs)
        base_rss = statistics.median(r.tree_rss_mib for r in baseline.runs)
        ratio = wall / base_wall
        met.append(ratio <= TARGET_WALL_RATIO)
        print(
            f"against {baseline.name}: wall {wall:.2f} s / {base_wall:.2f} s = {ratio:.3f} "
            f"(target <= {TARGET_WALL_RATIO:.2f}: {'met' if met[-1] else 'MISSED'}); "
            f"peak RSS {rss:.0f} / {base_rss:.0f} MiB"
        )
    return all(met)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load the synthetic full-size IMDb files with `movies load`, N times, with "
        "this checkout's loader and a baseline revision's, interleaved; print wall seconds, peak "
        "RSS and the loader's phases per run and the medians of each.",
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
    parser.add_argument(
        "--baseline",
        default=DEFAULT_BASELINE,
        metavar="REV",
        help="git revision whose loader runs beside this checkout's, interleaved, from a "
        "temporary worktree (PYTHONPATH=<worktree>/solution/src) and its own embedded database "
        f"in .data/bench-load-baseline; '' for none [default: {DEFAULT_BASELINE}, the last "
        "commit before the pandas-based loader]",
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
