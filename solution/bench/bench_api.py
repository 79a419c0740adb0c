"""API throughput and latency per query shape, with and without the response cache, against the
framework's ceiling on this machine; and the discovery targets (search, facets, 304, export).

Loads the synthetic data set (scale 1.0 by default, generated once and cached in .data/) into a
dedicated embedded PostgreSQL (.data/bench-api/scale-<scale>/) and serves the API twice with
`movies serve` (gunicorn, `--config python:movies.gunicorn_conf`), each on a free port of
127.0.0.1: "cached" with the default settings (each worker keeps finished responses by ETag and
answers a repeated URL without a query: what users of a popular URL get) and "uncached" with
MOVIES_RESPONSE_CACHE_MB=0 (every request runs its query: what users with a novel query get).
Beside them, a minimal Flask app (ceiling_app.py) returns a fixed body of the same bytes as the
default list response, under the same gunicorn config.

wrk measures each URL for `--duration` seconds, `--runs` times, in rounds (ceiling; every query
shape on the cached then the uncached server; the discovery URLs; the round's export downloads;
...; ceiling again) so that both sides of a ratio see the same machine load. The tables report
median requests/s and median p99 per URL, and the share of the ceiling as the median over rounds
of each run against the two ceiling runs around it. A query shape meets its target when it
reaches 50 % of the ceiling's requests/s with p99 <= 20 ms.

Where each request's time goes: during every run the CPU time (user + system, from /proc) of
the server's workers (the gunicorn master's children) and of the PostgreSQL server's processes
(the postmaster's children) is divided by the requests wrk completed. With both cores busy,
req/s is about 2 cores / (workers + PostgreSQL + wrk CPU per request), so this table says which
side a shape must shed to come closer to the ceiling.

The discovery table (same rounds):
- `q=` title search for a common, a middling and a rare word of the synthetic titles, on the
  uncached server (their cost is the query): p99 <= 30 ms. The number of matches is read with
  `count=exact` first; a word that lists no movie fails the run.
- facets of the unfiltered list (`facets=genre,decade`), uncached server: p99 <= 100 ms.
- 304s: GET /movies with `If-None-Match: <its ETag>` on the cached server: >= 90 % of the
  ceiling's requests/s. A request first checks that the header gets a 304; wrk counts 3xx as
  fine, so each run's bytes read per response must also stay within 1 % of the way from a 304's
  size to a 200's, or the run fails.
- the NDJSON export of every movie (`/movies/export?format=ndjson&include_adult=true`), on the
  uncached server: not wrk but a streamed download (requests, iter_content), `--export-runs`
  times spread over the rounds, median wall time <= 15 s. Its lines must equal the data set's
  movies, or the run fails. Meanwhile the VmRSS of every worker of that server (the master's
  children, from /proc) is sampled every 50 ms; the growth of a download is the largest, over
  workers, of the peak during it minus the value just before: <= 50 MiB.

wrk is a single client address, so the API's per-client read limit is raised out of reach
(MOVIES_RATE_LIMIT_READS=1000000/minute unless set in the environment); the limiter still runs.
Any response other than 2xx/3xx or any socket error fails the run: figures from failing
requests mean nothing.

Side by side with the code before the read path's redesign (`--baseline COMMIT`, default
1f498af; `--no-baseline` to skip): the commit is checked out once as a detached git worktree in
.data/bench-api/baseline-<sha>/ and served uncached by its own `movies serve`, its src/ first on
PYTHONPATH, measured in the same rounds as this code's servers. It shares the database unless its
schema, tables or loader differ from this code's (then it gets .data/bench-api/scale-<scale>-
baseline-<sha>/, loaded by its own loader). The comparison table gives, per shape, both uncached
req/s, p99 and PostgreSQL CPU per request, the change of req/s (the median over rounds of the
ratio of the two runs of the same round) and the cached share of the ceiling, against the gates:
no shape loses more than 10 % of the baseline's req/s, every uncached p99 <= 20 ms, cached >= 90 %
of the ceiling. Every other round runs its URLs in reverse order, so neither side of a pair
always runs first.

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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar
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

from movies.config import Settings

log = logging.getLogger("bench")
T = TypeVar("T")

TARGET_SHARE = 0.5
TARGET_P99_MS = 20.0
SEARCH_P99_MS = 30.0
FACETS_P99_MS = 100.0
NOT_MODIFIED_SHARE = 0.9
EXPORT_SECONDS = 15.0
EXPORT_RSS_MIB = 50.0
CEILING = "ceiling: fixed body, no database"
BENCH_READ_LIMIT = "1000000/minute"
CACHE_ENV = "MOVIES_RESPONSE_CACHE_MB"
CACHED, UNCACHED = "cached", "uncached"
BASELINE = "uncached, baseline"
# The commit before the read path's redesign: what the redesign must not be slower than.
BASELINE_COMMIT = "1f498af"
MAX_LOSS = 0.10  # a shape may lose at most this share of the baseline's uncached req/s
CACHED_MIN_SHARE = 0.9  # cached shapes keep at least this share of the ceiling's req/s
# What the database's schema and contents depend on: if any differs from the baseline commit,
# the baseline gets a database of its own, created and loaded by its own code.
SCHEMA_PATHS = (
    "sql-scripts",
    "solution/src/movies/schema.py",
    "solution/src/movies/tables.py",
    "solution/src/movies/loader",
)
ITEMS_KEY = "items"
CURSOR_KEY = "next_cursor"
TOTAL_KEY = "total"
EXPORT_PATH = "/movies/export?format=ndjson&include_adult=true"
FACETS_PATH = "/movies?facets=genre,decade"
# Words of the synthetic titles (movies.synthetic), by how many of the ~700 k movies of scale 1.0
# they match: "the" about 223 k, "mountain" (a noun of the title pool) about 11.8 k, "null" (the
# fixed titles "null" and "NULL", present at every scale, and a few quirk rows) about 5.
SEARCH_WORDS = (("common word", "the"), ("middling word", "mountain"), ("rare word", "null"))
# A 304 run fails if its bytes per response lie more than this share of the way from a 304's size
# to a 200's: some responses were not 304s.
NOT_MODIFIED_SLACK = 0.01
RSS_INTERVAL_S = 0.05

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
    bytes_read: int = 0
    # CPU (user + system) per completed request, of the server's workers and of PostgreSQL's
    # processes during the run; None where not measured.
    worker_cpu_us: float | None = None
    database_cpu_us: float | None = None


@dataclasses.dataclass(frozen=True)
class Probe:
    """One wrk run per round: a URL with its request headers, its figures kept under `key`.

    `max_response_bytes`, if set, bounds the mean bytes read per response (a 304 run: the bodies
    of 200s would exceed it).
    """

    key: str
    url: str
    headers: tuple[str, ...] = ()
    max_response_bytes: float | None = None
    server_pid: int | None = None  # the gunicorn master whose workers' CPU is counted
    database_pid: int | None = None  # the postmaster of the database it reads


@dataclasses.dataclass(frozen=True)
class Discovery:
    """One discovery URL: on which server, what it answers, and its target (p99 or share)."""

    label: str
    server: str  # CACHED or UNCACHED
    path: str
    answer: str  # what it answers, for the table
    headers: tuple[str, ...] = ()
    max_p99_ms: float | None = None
    min_share: float | None = None
    max_response_bytes: float | None = None

    @property
    def key(self) -> str:
        return f"discovery: {self.label}"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """One streamed download of the export."""

    seconds: float
    body_bytes: int
    lines: int
    rss_growth_bytes: int
    workers: int
    rss_samples: int


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_UNIT_BYTES = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def shape_key(server: str, label: str) -> str:
    """The results key of a query shape measured on the CACHED or UNCACHED server."""
    return f"{server}: {label}"


def parse_wrk(output: str) -> WrkResult:
    """Read requests/s, p99, request count and error counts from `wrk --latency` output.

    :raise BenchError: if the output lacks the requests/s or the p99 line.
    """
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    total = re.search(r"^\s*(\d+) requests in [^,]+, ([\d.]+)([KMGT]?B) read", output, re.M)
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
        bytes_read=round(float(total.group(2)) * _UNIT_BYTES[total.group(3)]),
    )


def run_wrk(
    probe: Probe, duration_s: int, connections: int, threads: int, *, warmup: bool = False
) -> WrkResult:
    """Run wrk against the probe's URL with its headers; return its figures.

    A warm-up absorbs one-time costs (first requests of each worker, cold caches), so it may
    time out or complete nothing; only an error response fails it.
    :raise BenchError: if wrk fails, or any response was not 2xx/3xx, or (except in a warm-up)
        any socket error occurred or no request completed, or the mean bytes per response
        exceed `probe.max_response_bytes`.
    """
    url = probe.url
    argv = wrk_argv(url, duration_s, connections, threads, probe.headers)
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
    limit = probe.max_response_bytes
    if limit is not None and figures.requests and figures.bytes_read / figures.requests > limit:
        raise BenchError(
            f"{url} with {' '.join(probe.headers)}: {figures.bytes_read / figures.requests:,.0f} "
            f"bytes per response, more than {limit:,.0f}: not every response was a 304; "
            f"wrk said:\n{result.stdout}"
        )
    return figures


def wrk_argv(
    url: str, duration_s: int, connections: int, threads: int, headers: tuple[str, ...] = ()
) -> list[str]:
    header_args = [arg for header in headers for arg in ("-H", header)]
    return [
        "wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s",
        *header_args, url,
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


def prepare_shapes(
    base_url: str, deep_pages: int, other_urls: tuple[str, ...] = ()
) -> tuple[list[Shape], bytes]:
    """The query URLs (cursors and id taken from live responses of `base_url`, each checked on
    `other_urls` too) and the default list body.

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
        for other in other_urls:
            get_json(session, other + path)
        shapes.append(Shape(label, path, rows))
    return shapes, default_body


def response_size(response: requests.Response) -> int:
    """Bytes of `response` on the wire, near enough: status line, headers and body."""
    head = len(f"HTTP/1.1 {response.status_code} {response.reason}\r\n") + 2
    head += sum(len(name) + len(value) + 4 for name, value in response.headers.items())
    return head + len(response.content)


def prepare_discovery(cached_url: str, uncached_url: str) -> list[Discovery]:
    """The discovery URLs, each checked once: search matches counted (`count=exact`) and at
    least one item listed, facets present, the ETag of GET /movies read and its 304 confirmed.

    :raise BenchError: if a response is not as expected, a search word matches no movie, or
        `If-None-Match` with the ETag does not get a 304.
    """
    session = requests.Session()
    cases = []
    for kind, word in SEARCH_WORDS:
        path = f"/movies?q={quote(word, safe='')}"
        total = get_json(session, f"{uncached_url}{path}&count=exact&limit=1")[1].get(TOTAL_KEY)
        items = get_json(session, uncached_url + path)[1].get(ITEMS_KEY)
        if not items or not isinstance(total, int):
            raise BenchError(f"q={word} ({kind}) lists no movie (total {total}): pick another")
        cases.append(
            Discovery(
                f"`q={word}` ({kind})", UNCACHED, path, f"{total:,} movies match",
                max_p99_ms=SEARCH_P99_MS,
            )
        )  # fmt: skip
    if "facets" not in get_json(session, uncached_url + FACETS_PATH)[1]:
        raise BenchError(f"GET {FACETS_PATH} answered no facets")
    cases.append(
        Discovery(
            "`facets=genre,decade`, unfiltered", UNCACHED, FACETS_PATH, "counts of all movies",
            max_p99_ms=FACETS_P99_MS,
        )
    )  # fmt: skip

    url = cached_url + "/movies"
    try:
        full = session.get(url, timeout=30)
        etag = full.headers.get("ETag")
        check = session.get(url, headers={"If-None-Match": etag or ""}, timeout=30)
    except requests.RequestException as exc:
        raise BenchError(f"GET {url} failed: {exc}") from exc
    if full.status_code != 200 or not etag:
        raise BenchError(f"GET {url} answered {full.status_code} with ETag {etag!r}")
    if check.status_code != 304:
        raise BenchError(f"GET {url} with If-None-Match: {etag} answered {check.status_code}")
    small, large = response_size(check), response_size(full)
    cases.append(
        Discovery(
            "304: `GET /movies`, `If-None-Match: <its ETag>`", CACHED, "/movies",
            f"304, {small} bytes (the 200: {large:,})", headers=(f"If-None-Match: {etag}",),
            min_share=NOT_MODIFIED_SHARE,
            max_response_bytes=small + NOT_MODIFIED_SLACK * (large - small),
        )
    )  # fmt: skip
    return cases


def worker_pids(master_pid: int) -> list[int]:
    """The gunicorn workers of `master_pid`: its child processes, from /proc."""
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text()
        return [int(pid) for pid in children.split()]
    except FileNotFoundError:
        pass  # a kernel without CONFIG_PROC_CHILDREN: look at every process's parent
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(stat)
        if fields and int(fields[1]) == master_pid:  # the parent pid
            pids.append(int(stat.parent.name))
    return pids


def _stat_fields(stat: Path) -> list[str] | None:
    """The fields of a /proc/<pid>/stat file after the command name (state, parent pid, ...),
    or None if the process has exited."""
    try:
        # The command name, in parentheses, may hold spaces and parentheses: skip past the last.
        return stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process of `pids` still alive, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        fields = _stat_fields(Path(f"/proc/{pid}/stat"))
        if fields:
            seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return seconds


class CpuMeter:
    """CPU spent by the children of some parent processes (gunicorn workers, PostgreSQL
    backends) between `start()` and `per_request()`: the processes alive at the start count."""

    def __init__(self, parent_pids: list[int | None]) -> None:
        self.parent_pids = parent_pids
        self._before: list[dict[int, float]] = []

    def start(self) -> None:
        self._before = [cpu_seconds(worker_pids(pid)) if pid else {} for pid in self.parent_pids]

    def per_request(self, requests: int) -> list[float | None]:
        """Microseconds per request of each parent's children (None for a parent not given)."""
        spent: list[float | None] = []
        for pid, before in zip(self.parent_pids, self._before, strict=True):
            if not pid or not requests:
                spent.append(None)
                continue
            after = cpu_seconds(list(before))
            total = sum(after[child] - before[child] for child in after)
            spent.append(total / requests * 1e6)
        return spent


def rss_bytes(pid: int) -> int | None:
    """VmRSS of process `pid`, or None if it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


class RssSampler:
    """VmRSS of every worker of a gunicorn master, sampled on a thread every `interval_s`.

    Used as a context manager around one download: the first sample is taken on entry (the
    value just before), the last on exit.
    """

    def __init__(self, master_pid: int, interval_s: float = RSS_INTERVAL_S) -> None:
        self.master_pid = master_pid
        self.interval_s = interval_s
        self.before: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> None:
        for pid in worker_pids(self.master_pid):
            value = rss_bytes(pid)
            if value is None:
                continue
            # A worker born during the download (one restarted) starts from its first sample.
            self.before.setdefault(pid, value)
            self.peak[pid] = max(self.peak.get(pid, 0), value)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def growth(self) -> int:
        """The largest growth of one worker: its peak minus its value before, in bytes."""
        return max((self.peak[pid] - self.before[pid] for pid in self.peak), default=0)


def download_export(server: Server, expected_lines: int) -> ExportResult:
    """Download the NDJSON export of every movie from `server`, streamed, timed, with the RSS
    growth of its workers meanwhile.

    :raise BenchError: if the request fails, is not 200, or its lines are not `expected_lines`.
    """
    if server.process is None:
        raise BenchError(f"{server.name} is not running")
    url = server.base_url + EXPORT_PATH
    lines = size = 0
    last = b"\n"
    with RssSampler(server.process.pid) as rss:
        started = time.monotonic()
        try:
            with requests.get(url, stream=True, timeout=(10, 300)) as response:
                if response.status_code != 200:
                    raise BenchError(
                        f"GET {url} answered {response.status_code}: {response.text[:500]}"
                    )
                for chunk in response.iter_content(chunk_size=1 << 20):
                    if chunk:
                        lines += chunk.count(b"\n")
                        size += len(chunk)
                        last = chunk[-1:]
        except requests.RequestException as exc:
            raise BenchError(f"GET {url} failed: {exc}") from exc
        seconds = time.monotonic() - started
    if last != b"\n":
        lines += 1
    if lines != expected_lines:
        raise BenchError(
            f"GET {url}: {lines:,} lines, but the data set has {expected_lines:,} movies"
        )
    return ExportResult(seconds, size, lines, rss.growth(), len(rss.peak), rss.samples)


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


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The baseline commit, checked out in a worktree of its own, and whether its API needs a
    database of its own (its schema or loader differ from this code's)."""

    commit: str
    worktree: Path
    own_database: bool

    @property
    def src(self) -> Path:
        return self.worktree / "solution" / "src"

    def describe(self) -> str:
        database = "its own database, loaded by its code" if self.own_database else "same database"
        return f"baseline: commit {self.commit[:12]} from {self.src} (PYTHONPATH); {database}"


def prepare_baseline(commit: str) -> Baseline:
    """Check `commit` out (once) in .data/bench-api/baseline-<sha>, a detached git worktree.

    :raise BenchError: if git cannot resolve the commit or create the worktree.
    """
    try:
        sha = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
        worktree = DATA_ROOT / "bench-api" / f"baseline-{sha[:12]}"
        if not (worktree / ".git").exists():
            _git("worktree", "add", "--detach", str(worktree), sha)
        changed = _git("diff", "--name-only", sha, "--", *(f":(top){p}" for p in SCHEMA_PATHS))
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise BenchError(f"cannot check out the baseline {commit!r}: {detail}") from None
    return Baseline(sha, worktree, schema_differs(changed.splitlines()))


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


def _verdict(misses: list[str]) -> str:
    return f"NO ({', '.join(misses)})" if misses else "yes"


def shape_verdict(share: float, p99_ms: float) -> str:
    """'yes', or 'NO (...)' naming the missed parts of a query shape's target."""
    misses = []
    if share < TARGET_SHARE:
        misses.append(f"< {TARGET_SHARE:.0%}")
    if p99_ms > TARGET_P99_MS:
        misses.append(f"p99 > {TARGET_P99_MS:g} ms")
    return _verdict(misses)


def comparison_verdict(change: float, new_p99_ms: float, cached_share: float) -> str:
    """'yes', or 'NO (...)' naming the gates a shape misses against the baseline: at most
    MAX_LOSS of its uncached req/s lost (`change`, see paired_change), uncached p99 <=
    TARGET_P99_MS, cached share of the ceiling >= CACHED_MIN_SHARE."""
    misses = []
    if change < -MAX_LOSS:
        misses.append(f"lost > {MAX_LOSS:.0%} req/s")
    if new_p99_ms > TARGET_P99_MS:
        misses.append(f"p99 > {TARGET_P99_MS:g} ms")
    if cached_share < CACHED_MIN_SHARE:
        misses.append(f"cached < {CACHED_MIN_SHARE:.0%} of ceiling")
    return _verdict(misses)


def _medians(runs: list[WrkResult]) -> tuple[float, float]:
    return (
        statistics.median(r.requests_per_s for r in runs),
        statistics.median(r.p99_ms for r in runs),
    )


def render_table(shapes: list[Shape], results: dict[str, list[WrkResult]]) -> list[str]:
    """Markdown table, one row per query shape: median req/s, median p99 and share of the
    ceiling on the cached and on the uncached server, and whether each met the target."""
    lines = [
        "| query | rows | cached req/s | p99 ms | % of ceiling "
        "| uncached req/s | p99 ms | % of ceiling | target met (cached / uncached) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rate, p99 = _medians(results[CEILING])
    lines.append(f"| {CEILING} | | {rate:,.0f} | {p99:.1f} | 100% | | | | (reference) |")
    for shape in shapes:
        if shape.skipped:
            lines.append(f"| {shape.label} | | | | | | | | not measured: {shape.skipped} |")
            continue
        cells, verdicts = [], []
        for server in (CACHED, UNCACHED):
            runs = results[shape_key(server, shape.label)]
            rate, p99 = _medians(runs)
            share = share_of_ceiling(runs, results[CEILING])
            cells.append(f"{rate:,.0f} | {p99:.1f} | {share:.0%}")
            verdicts.append(shape_verdict(share, p99))
        lines.append(
            f"| {shape.label} | {shape.rows} | {' | '.join(cells)} | {' / '.join(verdicts)} |"
        )
    return lines


def render_comparison(shapes: list[Shape], results: dict[str, list[WrkResult]]) -> list[str]:
    """Markdown table, one row per query shape: the baseline's and this code's uncached median
    req/s and p99, the change of req/s, the cached share of the ceiling, and the gates."""
    lines = [
        "| query | baseline req/s | p99 ms | PostgreSQL µs | new req/s | p99 ms | PostgreSQL µs "
        "| req/s change | cached % of ceiling | gates met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for shape in shapes:
        if shape.skipped:
            continue
        old_runs = results[shape_key(BASELINE, shape.label)]
        new_runs = results[shape_key(UNCACHED, shape.label)]
        old_rate, old_p99 = _medians(old_runs)
        new_rate, new_p99 = _medians(new_runs)
        change = paired_change(new_runs, old_runs)
        cached = share_of_ceiling(results[shape_key(CACHED, shape.label)], results[CEILING])
        verdict = comparison_verdict(change, new_p99, cached)
        lines.append(
            f"| {shape.label} | {old_rate:,.0f} | {old_p99:.1f} "
            f"| {_median_cpu(old_runs, 'database_cpu_us')} | {new_rate:,.0f} | {new_p99:.1f} "
            f"| {_median_cpu(new_runs, 'database_cpu_us')} | {change:+.0%} | {cached:.0%} "
            f"| {verdict} |"
        )
    return lines


def paired_change(new_runs: list[WrkResult], old_runs: list[WrkResult]) -> float:
    """The change of req/s from the baseline: the median over rounds of new / old measured in
    the same round, so that a round on a busier machine weighs on both sides alike."""
    return statistics.median(
        new.requests_per_s / old.requests_per_s - 1
        for new, old in zip(new_runs, old_runs, strict=True)
    )


def schema_differs(changed_paths: list[str]) -> bool:
    """Whether any of these repository paths (changed since the baseline) shapes the database."""
    return any(
        path == prefix or path.startswith(prefix + "/")
        for path in changed_paths
        for prefix in SCHEMA_PATHS
    )


def _median_cpu(runs: list[WrkResult], field: str) -> str:
    values = [getattr(r, field) for r in runs if getattr(r, field) is not None]
    return f"{statistics.median(values):,.0f}" if values else "n/a"


def render_cpu(shapes: list[Shape], results: dict[str, list[WrkResult]]) -> list[str]:
    """Markdown table of the median CPU per request of the workers and of PostgreSQL: where
    the time of each query shape goes, beside the ceiling's workers."""
    lines = [
        "| query | cached: workers | uncached: workers | uncached: PostgreSQL |",
        "|---|---:|---:|---:|",
        f"| {CEILING} | {_median_cpu(results[CEILING], 'worker_cpu_us')} | | |",
    ]
    for shape in shapes:
        if shape.skipped:
            continue
        cached = results[shape_key(CACHED, shape.label)]
        uncached = results[shape_key(UNCACHED, shape.label)]
        lines.append(
            f"| {shape.label} | {_median_cpu(cached, 'worker_cpu_us')} "
            f"| {_median_cpu(uncached, 'worker_cpu_us')} "
            f"| {_median_cpu(uncached, 'database_cpu_us')} |"
        )
    return lines


def discovery_target(case: Discovery) -> str:
    parts = []
    if case.min_share is not None:
        parts.append(f">= {case.min_share:.0%} of the ceiling's req/s")
    if case.max_p99_ms is not None:
        parts.append(f"p99 <= {case.max_p99_ms:g} ms")
    return ", ".join(parts)


def render_discovery(
    cases: list[Discovery], results: dict[str, list[WrkResult]], exports: list[ExportResult]
) -> list[str]:
    """Markdown table of the discovery targets: each wrk URL, then the export downloads."""
    lines = [
        "| case | server | answer | figures (median) | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for case in cases:
        runs = results[case.key]
        rate, p99 = _medians(runs)
        share = share_of_ceiling(runs, results[CEILING])
        misses = []
        if case.min_share is not None and share < case.min_share:
            misses.append(f"{share:.0%} < {case.min_share:.0%}")
        if case.max_p99_ms is not None and p99 > case.max_p99_ms:
            misses.append(f"p99 > {case.max_p99_ms:g} ms")
        figures = f"{rate:,.0f} req/s ({share:.0%} of ceiling), p99 {p99:.1f} ms"
        lines.append(
            f"| {case.label} | {case.server} | {case.answer} | {figures} "
            f"| {discovery_target(case)} | {_verdict(misses)} |"
        )
    if exports:
        seconds = statistics.median(e.seconds for e in exports)
        growth = max(e.rss_growth_bytes for e in exports) / 2**20
        size = statistics.median(e.body_bytes for e in exports) / 2**20
        misses = []
        if seconds > EXPORT_SECONDS:
            misses.append(f"> {EXPORT_SECONDS:g} s")
        if growth > EXPORT_RSS_MIB:
            misses.append(f"RSS growth > {EXPORT_RSS_MIB:g} MiB")
        each = ", ".join(f"{e.seconds:.1f}" for e in exports)
        figures = (
            f"{seconds:.1f} s for {size:,.0f} MiB (runs: {each} s); worker RSS growth "
            f"{growth:.1f} MiB (largest of {len(exports)})"
        )
        lines.append(
            f"| export, NDJSON, every movie (streamed download) | {UNCACHED} "
            f"| {exports[0].lines:,} lines | {figures} "
            f"| <= {EXPORT_SECONDS:g} s, RSS growth <= {EXPORT_RSS_MIB:g} MiB "
            f"| {_verdict(misses)} |"
        )
    return lines


def exports_in_round(round_index: int, export_runs: int, rounds: int) -> int:
    """How many export downloads round `round_index` makes: `export_runs` spread evenly."""
    return export_runs // rounds + (1 if round_index < export_runs % rounds else 0)


def measure(
    servers: list[Server],
    probes: list[Probe],
    args: argparse.Namespace,
    export: Callable[[], ExportResult],
) -> tuple[dict[str, list[WrkResult]], list[ExportResult]]:
    """Warm every URL up, then measure in rounds: the ceiling (the first probe), every other
    probe, then this round's export downloads; finally the ceiling again.

    Every other round measures the probes after the ceiling in reverse order, so that no side
    of a comparison always runs first (after the cached server's run of the same shape, say).
    Each run also counts the CPU of its server's workers and of the processes of its database.
    """

    def checked(action: Callable[[], T]) -> T:
        try:
            return action()
        except BenchError:
            for server in servers:
                server.raise_if_exited()
            raise

    def measure_probe(probe: Probe, duration_s: int, warmup: bool = False) -> WrkResult:
        meter = CpuMeter([probe.server_pid, probe.database_pid])
        meter.start()
        figures = checked(
            lambda: run_wrk(probe, duration_s, args.connections, args.threads, warmup=warmup)
        )
        workers, database = meter.per_request(figures.requests)
        return dataclasses.replace(figures, worker_cpu_us=workers, database_cpu_us=database)

    for probe in probes:
        log.info("warm-up %d s: %s", args.warmup, probe.key)
        measure_probe(probe, args.warmup, warmup=True)
    results: dict[str, list[WrkResult]] = {probe.key: [] for probe in probes}
    exports: list[ExportResult] = []

    def record(round_index: int, probe: Probe) -> None:
        figures = measure_probe(probe, args.duration)
        results[probe.key].append(figures)
        log.info(
            "round %d/%d  %-60s %9.0f req/s  p99 %7.2f ms",
            round_index + 1, args.runs, probe.key, figures.requests_per_s, figures.p99_ms,
        )  # fmt: skip

    for round_index in range(args.runs):
        in_order = probes[1:] if round_index % 2 == 0 else probes[:0:-1]
        for probe in [probes[0], *in_order]:
            record(round_index, probe)
        for _ in range(exports_in_round(round_index, args.export_runs, args.runs)):
            result = checked(export)
            exports.append(result)
            log.info(
                "round %d/%d  export: %d lines, %.1f MiB in %.1f s; RSS growth %.1f MiB "
                "(%d workers, %d samples)",
                round_index + 1, args.runs, result.lines, result.body_bytes / 2**20,
                result.seconds, result.rss_growth_bytes / 2**20, result.workers,
                result.rss_samples,
            )  # fmt: skip
    record(args.runs - 1, probes[0])
    return results, exports


def start_api(name: str, env: dict[str, str], data_dir: Path) -> Server:
    """Start `movies serve` on a free port with `env`; return the running server."""
    port = free_port()
    server = Server(
        f"API ({name})",
        [venv_command("movies"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        port, env, data_dir / "logs" / f"api-{name}-{os.getpid()}.log",
    )  # fmt: skip
    server.start()
    return server


def cache_setting(env: dict[str, str]) -> str:
    """The response cache setting of a server's environment, for the report."""
    value = env.get(CACHE_ENV)
    if value is None:
        return f"{CACHE_ENV} unset: {Settings.response_cache_mb} MiB per worker"
    return f"{CACHE_ENV}={value}"


@dataclasses.dataclass
class Measured:
    """What one benchmark run set up and measured: everything the report and the JSON need."""

    machine: list[str]
    code: str
    movies: int
    apis: dict[str, Server]  # CACHED and UNCACHED
    ceiling: Server
    shapes: list[Shape]
    default_body: bytes
    cases: list[Discovery]
    results: dict[str, list[WrkResult]]
    exports: list[ExportResult]
    baseline: Baseline | None = None


def run(args: argparse.Namespace) -> int:
    """Set up, measure, print; always stop what was started. Return the exit status."""
    measured = set_up_and_measure(args)
    print()
    for line in report_lines(measured, args):
        print(line)
    if args.json:
        document = json_document(measured, args)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold the bench database's lock (kept while the returned file stays open).

    :raise BenchError: if another run holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / "bench-api.lock").open("w")
    try:
        # Two runs on one database would load, measure and stop servers under each other.
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BenchError(f"another bench-api run is using {data_dir}; wait for it") from None
    return lock


def set_up_and_measure(args: argparse.Namespace) -> Measured:
    """Load the data if needed, start both APIs and the ceiling app, measure, stop them all."""
    machine = machine_summary()
    code = code_version()
    folder, manifest = ensure_synthetic_data(args.scale, args.seed)
    movies = manifest.get("loadable_movies", manifest.get("movies"))
    data_dir = args.db_dir or DATA_ROOT / "bench-api" / f"scale-{args.scale}"
    lock = lock_data_dir(data_dir)
    database = EmbeddedDatabase(data_dir)
    baseline = prepare_baseline(args.baseline) if args.baseline else None
    databases = [database]
    scratch = Path(tempfile.mkdtemp(prefix="bench-api-"))
    servers: list[Server] = []
    try:
        url = database.start()
        env = server_env(url, data_dir)
        # wrk is one client address: under the per-client read limit it would measure 429s.
        # A limit out of reach keeps the limiter's own per-request work in the figures.
        env.setdefault("MOVIES_RATE_LIMIT_READS", BENCH_READ_LIMIT)
        if env.get(CACHE_ENV, "").strip() == "0":
            raise BenchError(f"{CACHE_ENV}=0 in the environment: the cached API would not cache")
        ensure_loaded(url, folder, manifest, env, reload=args.reload)

        cached = start_api(CACHED, env, data_dir)
        servers.append(cached)
        uncached = start_api(UNCACHED, {**env, CACHE_ENV: "0"}, data_dir)
        servers.append(uncached)
        apis = {CACHED: cached, UNCACHED: uncached}
        if baseline is not None:
            apis[BASELINE] = start_baseline(baseline, env, folder, manifest, args, databases)
            servers.append(apis[BASELINE])
        others = tuple(api.base_url for api in apis.values() if api is not cached)
        shapes, default_body = prepare_shapes(cached.base_url, args.deep_pages, other_urls=others)
        cases = prepare_discovery(cached.base_url, uncached.base_url)
        ceiling = start_ceiling(default_body, scratch, env, data_dir)
        servers.append(ceiling)
        # The baseline's database is the last started: its own, or the same one.
        database_pids = {name: databases[-1 if name == BASELINE else 0].pid() for name in apis}
        probes = make_probes(ceiling, apis, shapes, cases, database_pids)
        results, exports = measure(servers, probes, args, lambda: download_export(uncached, movies))
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        if not args.keep_db:
            for each in reversed(databases):
                each.stop()
        lock.close()
    return Measured(
        machine, code, movies, apis, ceiling, shapes, default_body, cases, results, exports,
        baseline,
    )  # fmt: skip


def start_baseline(
    baseline: Baseline,
    env: dict[str, str],
    folder: Path,
    manifest: dict,
    args: argparse.Namespace,
    databases: list[EmbeddedDatabase],
) -> Server:
    """The baseline's uncached API, its code first on PYTHONPATH; on a database of its own
    (started, appended to `databases`, loaded by the baseline's loader) if its schema differs."""
    old_env = {**env, CACHE_ENV: "0", "PYTHONPATH": str(baseline.src)}
    if baseline.own_database:
        data_dir = Path(env["MOVIES_DATA_DIR"]).with_name(
            f"{Path(env['MOVIES_DATA_DIR']).name}-baseline-{baseline.commit[:12]}"
        )
        database = EmbeddedDatabase(data_dir)
        databases.append(database)
        url = database.start()
        old_env = {
            **server_env(url, data_dir),
            **{k: old_env[k] for k in (CACHE_ENV, "PYTHONPATH")},
        }
        old_env.setdefault("MOVIES_RATE_LIMIT_READS", BENCH_READ_LIMIT)
        ensure_loaded(url, folder, manifest, old_env, reload=args.reload)
    return start_api("baseline", old_env, Path(old_env["MOVIES_DATA_DIR"]))


def start_ceiling(body: bytes, scratch: Path, env: dict[str, str], data_dir: Path) -> Server:
    """The minimal Flask app serving `body`, under the API's gunicorn config, started."""
    body_file = scratch / "body.json"
    body_file.write_bytes(body)
    port = free_port()
    ceiling = Server(
        "ceiling app",
        [
            venv_command("gunicorn"), "--bind", f"127.0.0.1:{port}",
            "--config", GUNICORN_CONFIG, "--pythonpath", str(BENCH_DIR),
            # Its own control socket: the default path is shared with the API's gunicorn.
            "--control-socket", str(scratch / "gunicorn.ctl"),
            f"ceiling_app:create_app({str(body_file)!r})",
        ],
        port, env, data_dir / "logs" / f"ceiling-{os.getpid()}.log",
    )  # fmt: skip
    ceiling.start()
    return ceiling


def make_probes(
    ceiling: Server,
    apis: dict[str, Server],
    shapes: list[Shape],
    cases: list[Discovery],
    database_pids: dict[str, int | None],
) -> list[Probe]:
    """Every URL to measure: the ceiling, each shape on each API, each discovery case.
    `database_pids` names the postmaster of each API's database."""
    probes = [Probe(CEILING, ceiling.base_url + "/movies", server_pid=ceiling.pid)]
    for shape in shapes:
        if not shape.skipped:
            probes += [
                Probe(
                    shape_key(name, shape.label), server.base_url + shape.path,
                    server_pid=server.pid, database_pid=database_pids.get(name),
                )
                for name, server in apis.items()
            ]  # fmt: skip
    probes += [
        Probe(
            case.key, apis[case.server].base_url + case.path, case.headers,
            case.max_response_bytes, server_pid=apis[case.server].pid,
            database_pid=database_pids.get(case.server),
        )
        for case in cases
    ]  # fmt: skip
    return probes


def report_lines(measured: Measured, args: argparse.Namespace) -> list[str]:
    """The printed report: what ran where, both tables, the URLs."""
    wrk_template = " ".join(wrk_argv("URL", args.duration, args.connections, args.threads))
    lines = [
        f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}",
        *measured.machine,
        f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        measured.code,
        *([] if measured.baseline is None else [measured.baseline.describe()]),
        gunicorn_summary(),
    ]
    for server in measured.apis.values():
        lines.append(
            f"{server.name}: {' '.join(server.argv)}  (MOVIES_RATE_LIMIT_READS="
            f"{server.env['MOVIES_RATE_LIMIT_READS']}, {cache_setting(server.env)})"
        )
    lines += [
        f"ceiling: {' '.join(measured.ceiling.argv)}",
        f"data: synthetic scale {args.scale} seed {args.seed} ({measured.movies:,} movies); "
        f"default list body {len(measured.default_body):,} bytes (the ceiling's body)",
        f"wrk: {wrk_template}; warm-up {args.warmup} s per URL; {args.runs} runs per URL, "
        f"ceiling {args.runs + 1} runs interleaved; medians reported; % of ceiling = median "
        "over rounds of req/s / mean of the two ceiling runs around it",
        f"export: GET {EXPORT_PATH} streamed with requests, {args.export_runs} downloads spread "
        f"over the rounds; worker VmRSS sampled every {RSS_INTERVAL_S * 1000:.0f} ms",
        "",
        "Query shapes, response cache on (cached) and off (uncached):",
        "",
        *render_table(measured.shapes, measured.results),
        "",
        f"target: >= {TARGET_SHARE:.0%} of the ceiling's req/s and p99 <= {TARGET_P99_MS:g} ms",
        "",
        *comparison_lines(measured),
        "CPU per request, microseconds (user + system, median over rounds; wrk's not counted):",
        "",
        *render_cpu(measured.shapes, measured.results),
        "",
        "Discovery (same rounds):",
        "",
        *render_discovery(measured.cases, measured.results, measured.exports),
        "",
        "URLs:",
    ]
    lines += [f"  {shape.label}: {shape.path or shape.skipped}" for shape in measured.shapes]
    lines += [f"  {c.label}: {' '.join([*c.headers, c.path])}" for c in measured.cases]
    lines.append(f"  export: {EXPORT_PATH}")
    return lines


def comparison_lines(measured: Measured) -> list[str]:
    """The side-by-side section against the baseline (nothing without one)."""
    if measured.baseline is None:
        return []
    return [
        f"Against the baseline (uncached, same rounds); {measured.baseline.describe()}:",
        "",
        *render_comparison(measured.shapes, measured.results),
        "",
        f"gates: req/s >= {1 - MAX_LOSS:.0%} of the baseline's, p99 <= {TARGET_P99_MS:g} ms, "
        f"cached >= {CACHED_MIN_SHARE:.0%} of the ceiling's req/s",
        "",
    ]


def json_document(measured: Measured, args: argparse.Namespace) -> dict:
    """Every run's figures, for --json."""
    return {
        "command": sys.argv,
        "machine": measured.machine,
        "code": measured.code,
        "baseline": None if measured.baseline is None else measured.baseline.describe(),
        "gunicorn": gunicorn_summary(),
        "scale": args.scale,
        "movies": measured.movies,
        "wrk": " ".join(wrk_argv("URL", args.duration, args.connections, args.threads)),
        "runs": args.runs,
        "servers": {
            name: {"argv": server.argv, "cache": cache_setting(server.env)}
            for name, server in measured.apis.items()
        },
        "shapes": [{"label": s.label, "path": s.path, "rows": s.rows} for s in measured.shapes],
        "discovery": [
            {
                "label": c.label,
                "key": c.key,
                "server": c.server,
                "path": c.path,
                "headers": list(c.headers),
                "answer": c.answer,
                "target": discovery_target(c),
            }
            for c in measured.cases
        ],
        "results": {
            label: [dataclasses.asdict(figures) for figures in runs]
            for label, runs in measured.results.items()
        },
        "export": {
            "path": EXPORT_PATH,
            "server": UNCACHED,
            "target": f"<= {EXPORT_SECONDS:g} s, RSS growth <= {EXPORT_RSS_MIB:g} MiB",
            "runs": [dataclasses.asdict(e) for e in measured.exports],
        },
    }


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
        "--export-runs", type=int, default=3,
        help="export downloads, spread over the rounds [default: 3]",
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
    parser.add_argument(
        "--baseline", default=BASELINE_COMMIT, metavar="COMMIT",
        help="also serve COMMIT's code (a git worktree) uncached, side by side, and compare "
        f"[default: {BASELINE_COMMIT}]",
    )  # fmt: skip
    parser.add_argument(
        "--no-baseline", dest="baseline", action="store_const", const=None,
        help="measure this code only",
    )  # fmt: skip
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in (
        "duration", "runs", "warmup", "connections", "threads", "deep_pages", "export_runs",
    ):  # fmt: skip
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
