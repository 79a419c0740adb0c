"""API throughput and latency per query shape, against the framework's ceiling on this machine.

Loads the synthetic data set (scale 1.0 by default, generated once and cached in .data/) into a
dedicated embedded PostgreSQL (.data/bench-api/scale-<scale>/), serves the API with `movies serve`
(gunicorn, `--config python:movies.gunicorn_conf`) on a free port of 127.0.0.1, and serves beside it
a minimal Flask app (ceiling_app.py) that returns a fixed body of the same bytes as the default list
response, under the same gunicorn config. wrk then measures each URL for `--duration` seconds,
`--runs` times, in rounds (ceiling, every query; ...; ceiling again) so that both sides of the ratio
see the same machine load. The table reports median requests/s and median p99 per URL, and the
share of the ceiling as the median over rounds of each run against the two ceiling runs around it.

wrk is a single client address, so the API's per-client read limit is raised out of reach
(MOVIES_RATE_LIMIT_READS=1000000/minute unless set in the environment); the limiter still runs.

A query meets its target when it reaches 50 % of the ceiling's requests/s with p99 <= 20 ms.
Any non-2xx response or socket error fails the run: figures from failing requests mean nothing.

The database server is stopped at the end if this run started it (`--keep-db` leaves it running,
which makes the next run skip the start); the data stay on disk, so the next run skips the load.

Examples:
    make bench-api
    .venv/bin/python solution/bench/bench_api.py --quick          # scale 0.05, 3 s, 1 run
    .venv/bin/python solution/bench/bench_api.py --duration 20 --runs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import importlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import requests
from harness import (
    BENCH_DIR,
    DATA_ROOT,
    GUNICORN_CONFIG,
    BenchError,
    EmbeddedDatabase,
    Server,
    cpu_and_memory,
    ensure_loaded,
    ensure_synthetic_data,
    free_port,
    server_env,
    venv_command,
)

log = logging.getLogger("bench")

TARGET_SHARE = 0.5
TARGET_P99_MS = 20.0
CEILING = "ceiling: fixed body, no database"
BENCH_READ_LIMIT = "1000000/minute"
ITEMS_KEY = "items"
CURSOR_KEY = "next_cursor"

WRK_MISSING = """\
wrk (the HTTP benchmarking tool) is not installed. Install it with:
    sudo apt-get install -y wrk      # Debian, Ubuntu
    brew install wrk                 # macOS
then run this benchmark again."""

QUICK = {"scale": 0.05, "duration": 3, "runs": 1}
DEFAULTS = {"scale": 1.0, "duration": 10, "runs": 3}


@dataclasses.dataclass(frozen=True)
class Shape:
    """One URL to measure: a label for the table and the path with its query string."""

    label: str
    path: str
    rows: int
    skipped: str | None = None  # why the URL is not measured


@dataclasses.dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str) -> WrkResult:
    """Read requests/s, p99, request count and error counts from `wrk --latency` output.

    :raise BenchError: if the output lacks the requests/s or the p99 line.
    """
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    if not (rate and p99 and total):
        raise BenchError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests_per_s=float(rate.group(1)),
        p99_ms=float(p99.group(1)) * _UNIT_MS[p99.group(2)],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def run_wrk(
    url: str, duration_s: int, connections: int, threads: int, *, warmup: bool = False
) -> WrkResult:
    """Run wrk against `url`; return its figures.

    A warm-up absorbs one-time costs (first requests of each worker, cold caches), so it may
    time out or complete nothing; only an error response fails it.
    :raise BenchError: if wrk fails, or any response was not 2xx/3xx, or (except in a warm-up)
        any socket error occurred or no request completed.
    """
    argv = wrk_argv(url, duration_s, connections, threads)
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"wrk failed (exit {result.returncode}): {result.stderr or result.stdout}")
    figures = parse_wrk(result.stdout)
    if figures.non_2xx or (figures.socket_errors and not warmup):
        raise BenchError(
            f"{url}: {figures.non_2xx} non-2xx responses and {figures.socket_errors} socket "
            f"errors out of {figures.requests} requests; wrk said:\n{result.stdout}"
        )
    if figures.requests == 0 and not warmup:
        raise BenchError(f"{url}: wrk completed no request; wrk said:\n{result.stdout}")
    return figures


def wrk_argv(url: str, duration_s: int, connections: int, threads: int) -> list[str]:
    return [
        "wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s", url,
    ]  # fmt: skip


def get_json(session: requests.Session, url: str) -> tuple[bytes, dict]:
    """GET `url`; return the body bytes and the decoded JSON.

    :raise BenchError: if the request fails, the status is not 200 or the body is not an object.
    """
    try:
        response = session.get(url, timeout=30)
    except requests.RequestException as exc:
        raise BenchError(f"GET {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise BenchError(f"GET {url} answered {response.status_code}: {response.text[:500]}")
    try:
        document = response.json()
    except requests.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        raise BenchError(f"GET {url} did not answer a JSON object: {response.text[:200]}")
    return response.content, document


def with_cursor(path: str, cursor: str) -> str:
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}cursor={quote(cursor, safe='')}"


def prepare_shapes(base_url: str, deep_pages: int) -> tuple[list[Shape], bytes]:
    """The query URLs (cursors and id taken from live responses) and the default list body.

    A cursor URL whose walk reaches the last page first (a small --scale) is left unmeasured,
    with the reason in `Shape.skipped`.
    :raise BenchError: if a response is not 200 or the default list is empty.
    """
    session = requests.Session()

    def fetch(path: str) -> dict:
        return get_json(session, base_url + path)[1]

    def page_after(path: str, pages: int) -> str | None:
        """The URL of page `pages + 1` of `path`, following next_cursor; None if there is none."""
        url = path
        for _ in range(pages):
            cursor = fetch(url).get(CURSOR_KEY)
            if not cursor:
                return None
            url = with_cursor(path, cursor)
        return url

    default_body, default = get_json(session, base_url + "/movies")
    items = default.get(ITEMS_KEY)
    if not items:
        raise BenchError(f"GET /movies returned no {ITEMS_KEY!r}: is the data set loaded?")
    movie_id = items[0]["id"]

    action = "/movies?genre=Action&rating_gt=8.5&sort=-rating"
    started = time.monotonic()
    deep = page_after("/movies?sort=-rating", deep_pages)
    log.info("walked %d pages of sort=-rating in %.1f s", deep_pages, time.monotonic() - started)

    paths = [
        ("list, default sort (title)", "/movies"),
        ("Action, rating > 8.5, sort -rating", action),
        ("sort -year, limit 50", "/movies?sort=-year&limit=50"),
        ("same Action query, page 2 (cursor)", page_after(action, 1)),
        ("one movie by id", f"/movies/{quote(movie_id, safe='')}"),
        ("rare genre (Film-Noir)", "/movies?genre=Film-Noir"),
        (f"sort -rating, page {deep_pages + 1:,} (cursor)", deep),
        (
            "Comedy+Romance, 1990s, rating >= 7, sort -votes",
            "/movies?genre=Comedy,Romance&year_gte=1990&year_lte=1999&rating_gte=7&sort=-votes",
        ),
    ]
    shapes = []
    for label, path in paths:
        if path is None:
            shapes.append(Shape(label, "", 0, skipped="fewer pages at this --scale"))
            continue
        document = fetch(path)
        rows = len(document[ITEMS_KEY]) if ITEMS_KEY in document else 1
        shapes.append(Shape(label, path, rows))
    return shapes, default_body


def machine_summary() -> list[str]:
    """nproc, CPU model, RAM, load average now: what the figures were measured on."""
    model, memory = cpu_and_memory()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {os.cpu_count()} CPUs ({model}), {memory} RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        f"load average at start (1, 5, 15 min): {load}",
    ]


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(BENCH_DIR), *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def code_version() -> str:
    """The commit the benchmark ran on, and whether the code differed from it."""
    code = [str(BENCH_DIR.parent / "src"), str(BENCH_DIR.parents[1] / "sql-scripts")]
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changed = _git("status", "--porcelain", "--", *code)
    except (OSError, subprocess.CalledProcessError):
        return "code: unknown (not a git checkout)"
    changes = " plus uncommitted changes in src/ or sql-scripts/" if changed else ""
    return f"code: commit {commit}{changes}"


def gunicorn_summary() -> str:
    """The worker settings that movies.gunicorn_conf resolves to in this environment."""
    conf = importlib.import_module(GUNICORN_CONFIG.removeprefix("python:"))
    names = ("workers", "threads", "worker_class", "keepalive", "timeout", "preload_app")
    settings = ", ".join(f"{n}={getattr(conf, n)}" for n in names if hasattr(conf, n))
    return f"gunicorn ({GUNICORN_CONFIG}): {settings}"


def share_of_ceiling(runs: list[WrkResult], ceiling_runs: list[WrkResult]) -> float:
    """Median over rounds of a URL's req/s relative to the ceiling measured around it.

    Round r measures the ceiling first, then every query; the next round (or the closing run)
    measures the ceiling again. So the ceiling runs r and r + 1 bracket a query's run r, and
    their mean is its reference: a load that drifts during the run cancels out of the ratio.
    """
    ratios = [
        run.requests_per_s
        / ((ceiling_runs[r].requests_per_s + ceiling_runs[r + 1].requests_per_s) / 2)
        for r, run in enumerate(runs)
    ]
    return statistics.median(ratios)


def render_table(shapes: list[Shape], results: dict[str, list[WrkResult]]) -> list[str]:
    """Markdown table: median req/s, median p99, share of the ceiling, target met."""
    lines = [
        "| query | rows | req/s | p99 ms | % of ceiling | target met |",
        "|---|---:|---:|---:|---:|---|",
    ]
    ceiling = Shape(CEILING, "/movies", 20)
    for shape in [ceiling, *shapes]:
        if shape.skipped:
            lines.append(f"| {shape.label} | | | | | not measured: {shape.skipped} |")
            continue
        runs = results[shape.label]
        rate = statistics.median(r.requests_per_s for r in runs)
        p99 = statistics.median(r.p99_ms for r in runs)
        if shape is ceiling:
            lines.append(f"| {shape.label} | | {rate:,.0f} | {p99:.1f} | 100% | (reference) |")
            continue
        share = share_of_ceiling(runs, results[CEILING])
        misses = []
        if share < TARGET_SHARE:
            misses.append(f"< {TARGET_SHARE:.0%}")
        if p99 > TARGET_P99_MS:
            misses.append(f"p99 > {TARGET_P99_MS:g} ms")
        met = f"NO ({', '.join(misses)})" if misses else "yes"
        lines.append(
            f"| {shape.label} | {shape.rows} | {rate:,.0f} | {p99:.1f} | {share:.0%} | {met} |"
        )
    return lines


def measure(
    api: Server, ceiling: Server, shapes: list[Shape], args: argparse.Namespace
) -> dict[str, list[WrkResult]]:
    """Warm every URL up, then measure in rounds: ceiling, each query; finally the ceiling again."""
    urls = {CEILING: ceiling.base_url + "/movies"}
    urls.update({s.label: api.base_url + s.path for s in shapes if not s.skipped})

    def measure_url(label: str, duration_s: int, warmup: bool = False) -> WrkResult:
        try:
            return run_wrk(urls[label], duration_s, args.connections, args.threads, warmup=warmup)
        except BenchError:
            for server in (api, ceiling):
                server.raise_if_exited()
            raise

    for label in urls:
        log.info("warm-up %d s: %s", args.warmup, label)
        measure_url(label, args.warmup, warmup=True)
    results: dict[str, list[WrkResult]] = {label: [] for label in urls}
    order = [(r, label) for r in range(args.runs) for label in urls] + [(args.runs - 1, CEILING)]
    for round_index, label in order:
        figures = measure_url(label, args.duration)
        results[label].append(figures)
        log.info(
            "round %d/%d  %-48s %9.0f req/s  p99 %7.2f ms",
            round_index + 1, args.runs, label, figures.requests_per_s, figures.p99_ms,
        )  # fmt: skip
    return results


def run(args: argparse.Namespace) -> int:
    """Set up, measure, print; always stop what was started. Return the exit status."""
    machine = machine_summary()
    code = code_version()
    folder, manifest = ensure_synthetic_data(args.scale, args.seed)
    data_dir = args.db_dir or DATA_ROOT / "bench-api" / f"scale-{args.scale}"
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / "bench-api.lock").open("w")
    try:
        # Two runs on one database would load, measure and stop servers under each other.
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BenchError(f"another bench-api run is using {data_dir}; wait for it") from None
    database = EmbeddedDatabase(data_dir)
    scratch = Path(tempfile.mkdtemp(prefix="bench-api-"))
    api = ceiling = None
    try:
        url = database.start()
        env = server_env(url, data_dir)
        # wrk is one client address: under the per-client read limit it would measure 429s.
        # A limit out of reach keeps the limiter's own per-request work in the figures.
        env.setdefault("MOVIES_RATE_LIMIT_READS", BENCH_READ_LIMIT)
        ensure_loaded(url, folder, manifest, env, reload=args.reload)

        api_port = free_port()
        api = Server(
            "API",
            [venv_command("movies"), "serve", "--host", "127.0.0.1", "--port", str(api_port)],
            api_port, env, data_dir / "logs" / f"api-{os.getpid()}.log",
        )  # fmt: skip
        api.start()
        shapes, default_body = prepare_shapes(api.base_url, args.deep_pages)

        body_file = scratch / "body.json"
        body_file.write_bytes(default_body)
        ceiling_port = free_port()
        ceiling = Server(
            "ceiling app",
            [
                venv_command("gunicorn"), "--bind", f"127.0.0.1:{ceiling_port}",
                "--config", GUNICORN_CONFIG, "--pythonpath", str(BENCH_DIR),
                # Its own control socket: the default path is shared with the API's gunicorn.
                "--control-socket", str(scratch / "gunicorn.ctl"),
                f"ceiling_app:create_app({str(body_file)!r})",
            ],
            ceiling_port, env, data_dir / "logs" / f"ceiling-{os.getpid()}.log",
        )  # fmt: skip
        ceiling.start()

        results = measure(api, ceiling, shapes, args)
    finally:
        for server in (ceiling, api):
            if server is not None:
                server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        if not args.keep_db:
            database.stop()

    wrk_template = " ".join(wrk_argv("URL", args.duration, args.connections, args.threads))
    print()
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    for line in machine:
        print(line)
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(code)
    print(gunicorn_summary())
    print(f"API: {' '.join(api.argv)}  (MOVIES_RATE_LIMIT_READS={env['MOVIES_RATE_LIMIT_READS']})")
    print(f"ceiling: {' '.join(ceiling.argv)}")
    print(
        f"data: synthetic scale {args.scale} seed {args.seed} "
        f"({manifest.get('loadable_movies', manifest.get('movies')):,} movies); "
        f"default list body {len(default_body):,} bytes (the ceiling's body)"
    )
    print(
        f"wrk: {wrk_template}; warm-up {args.warmup} s per URL; {args.runs} runs per URL, "
        f"ceiling {args.runs + 1} runs interleaved; medians reported; % of ceiling = median "
        "over rounds of req/s / mean of the two ceiling runs around it"
    )
    print()
    for line in render_table(shapes, results):
        print(line)
    print()
    print(f"target: >= {TARGET_SHARE:.0%} of the ceiling's req/s and p99 <= {TARGET_P99_MS:g} ms")
    print("URLs:")
    for shape in shapes:
        print(f"  {shape.label}: {shape.path or shape.skipped}")
    if args.json:
        document = {
            "command": sys.argv,
            "machine": machine,
            "code": code,
            "gunicorn": gunicorn_summary(),
            "scale": args.scale,
            "wrk": wrk_template,
            "runs": args.runs,
            "shapes": [{"label": s.label, "path": s.path, "rows": s.rows} for s in shapes],
            "results": {
                label: [dataclasses.asdict(figures) for figures in runs]
                for label, runs in results.items()
            },
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog="Example: .venv/bin/python solution/bench/bench_api.py --quick",
    )
    parser.add_argument("--scale", type=float, help="synthetic data scale [default: 1.0]")
    parser.add_argument("--seed", type=int, default=42, help="synthetic data seed [default: 42]")
    parser.add_argument("--duration", type=int, help="seconds per measured run [default: 10]")
    parser.add_argument("--runs", type=int, help="measured runs per URL [default: 3]")
    parser.add_argument(
        "--warmup", type=int, default=2, help="warm-up seconds per URL [default: 2]"
    )
    parser.add_argument("--connections", type=int, default=8, help="wrk connections [default: 8]")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads [default: 2]")
    parser.add_argument(
        "--deep-pages", type=int, default=1000,
        help="pages to walk for the deep-page URL [default: 1000]",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke test: scale 0.05, 3 s, 1 run (explicit options still win)",
    )  # fmt: skip
    parser.add_argument(
        "--db-dir", type=Path,
        help="MOVIES_DATA_DIR of the bench database [default: .data/bench-api/scale-SCALE]",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write every run's figures to PATH"
    )
    parser.add_argument(
        "--reload", action="store_true",
        help="load the data set even if the database holds it (after a loader or schema change)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-db", action="store_true", help="leave the embedded PostgreSQL running at the end"
    )
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("duration", "runs", "warmup", "connections", "threads", "deep_pages"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.scale <= 0:
        parser.error("--scale must be positive")
    args.threads = min(args.threads, args.connections)
    return args


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    # The servers run in sessions of their own: on SIGTERM, as on Ctrl-C, stop them before exiting.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench-api failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench-api interrupted; servers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
