"""The system under test for `make reliability`: embedded PostgreSQL, `movies load`, `movies serve`.

Everything runs on this machine; the API listens on 127.0.0.1 only. Every process started here is
started in its own session and stopped by its own pid, so nothing else on the machine is touched.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil
import sqlalchemy as sa
from harness import BenchError, Server, free_port
from sqlalchemy.pool import NullPool

BIN = Path(sys.executable).parent
MOVIES = str(BIN / "movies")
STAGING_TABLES = ("movie_imdb_next", "movie_genre_imdb_next")
BASICS = "title.basics.tsv.gz"
RATINGS = "title.ratings.tsv.gz"

# A refresh drops the movies whose tconst number leaves this remainder (2 %), so a GET for any
# other id of the first data set succeeds before, during and after the swap.
REFRESH_DROP_MODULUS = 50
REFRESH_DROP_REMAINDER = 7


class StackError(RuntimeError):
    """A part of the system under test did not start or stop as expected."""


# ----------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass
class Database:
    """The embedded server in `pgdata`, reached through a Unix socket."""

    pgdata: Path
    url: str

    @classmethod
    def start(cls, pgdata: Path) -> Database:
        """Start (or reuse) the embedded server, the same way every `movies` command does."""
        from movies.embedded import start_embedded

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        return cls(pgdata, start_embedded(pgdata))

    @property
    def socket_dir(self) -> str:
        return parse_qs(urlsplit(self.url).query)["host"][0]

    def engine(self) -> sa.Engine:
        """A pool-less engine: every check opens a fresh connection, so a restart never bites."""
        url = sa.make_url(self.url).set(drivername="postgresql+psycopg2")
        return sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})

    def _pg_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        import pgserver._commands

        pg_ctl = str(pgserver._commands.POSTGRES_BIN_PATH / "pg_ctl")
        # pgserver runs the server as the unprivileged user `pgserver` when started by root.
        user = "pgserver" if os.geteuid() == 0 else None
        return subprocess.run(
            [pg_ctl, "-D", str(self.pgdata), *args],
            user=user,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def stop(self) -> None:
        """Fast shutdown: active sessions are rolled back and disconnected."""
        self._pg_ctl("-w", "stop", "-m", "fast")

    def start_again(self) -> None:
        """Start the stopped server with the socket it had, so the URL stays valid."""
        self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.pgdata / "log"),
            "start",
        )

    def is_running(self) -> bool:
        try:
            self._pg_ctl("status", timeout=10)
        except subprocess.CalledProcessError:
            return False
        return True


def fingerprint(engine: sa.Engine) -> dict:
    """What a load may change, summarised: IMDb rows (count + checksum), links, user movies."""
    with engine.connect() as conn:
        movies, checksum = conn.execute(
            sa.text(
                "SELECT count(*), md5(coalesce(string_agg(concat_ws('|', id, title, "
                "original_title, year, runtime_minutes, rating, votes, is_adult, genres::text), "
                "E'\\n' ORDER BY id), '')) FROM movie_imdb"
            )
        ).one()
        links = conn.execute(sa.text("SELECT count(*) FROM movie_genre_imdb")).scalar_one()
        users = conn.execute(
            sa.text(
                "SELECT concat_ws('|', id, title, year, rating, genres::text, imdb_id) "
                "FROM movie_user ORDER BY id"
            )
        ).scalars()
        loads = conn.execute(sa.text("SELECT count(*) FROM dataset_load")).scalar_one()
        return {
            "movies": movies,
            "checksum": checksum,
            "genre_links": links,
            "user_movies": list(users),
            "loads": loads,
        }


def leftover_tables(engine: sa.Engine) -> list[str]:
    """Staging tables visible to other sessions (a committed or leaked half-done load)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relname = ANY(:names) "
                    "OR relname LIKE '%\\_next' OR relname LIKE '%\\_old' ORDER BY relname"
                ),
                {"names": list(STAGING_TABLES)},
            ).scalars()
        )


def advisory_locks(engine: sa.Engine) -> int:
    """Advisory locks held by any session (the loader holds one for its whole transaction)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        ).scalar_one()


def wait_until_unlocked(engine: sa.Engine, timeout: float) -> float | None:
    """Seconds until no advisory lock is held (a killed loader's backend may still run its
    statement until it notices the client is gone); None if still locked after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if advisory_locks(engine) == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def sample_ids(engine: sa.Engine, n: int, *, refresh_safe: bool) -> list[str]:
    """Up to `n` IMDb ids spread over the table (kept by a refresh when `refresh_safe`)."""
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                sa.text("SELECT id FROM movie_imdb TABLESAMPLE SYSTEM (5) REPEATABLE (1) LIMIT :n"),
                {"n": n * 2},
            ).scalars()
        )
    if refresh_safe:
        ids = [i for i in ids if kept_by_refresh(i)]
    return ids[:n]


# ----------------------------------------------------------------------------------------------
# Data sets


def kept_by_refresh(tconst: str) -> bool:
    return int(tconst[2:]) % REFRESH_DROP_MODULUS != REFRESH_DROP_REMAINDER


def synthetic_dataset(root: Path, *, scale: float, seed: int) -> tuple[Path, float | None]:
    """A cached synthetic data set; returns (folder, seconds spent generating or None)."""
    from movies.synthetic import read_manifest

    out = root / f"synthetic-scale{scale}-seed{seed}"
    manifest = read_manifest(out) if out.exists() else None
    if manifest and manifest.get("seed") == seed and manifest.get("scale") == scale:
        return out, None
    started = time.monotonic()
    subprocess.run(
        [MOVIES, "generate", str(out), "--scale", str(scale), "--seed", str(seed)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out, time.monotonic() - started


def refresh_dataset(source: Path, root: Path) -> tuple[Path, float | None]:
    """`source` with 2 % of its movies dropped and some vote counts bumped: a realistic refresh.

    Written as a cached folder; `derived.json` is written last and marks it complete.
    """
    out = root / f"{source.name}-refresh"
    marker = out / "derived.json"
    if marker.exists() and json.loads(marker.read_text()).get("from") == str(source):
        return out, None
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    dropped = 0
    with (
        gzip.open(source / BASICS, "rt", encoding="utf-8", newline="\n") as src,
        gzip.open(out / BASICS, "wt", encoding="utf-8", newline="\n", compresslevel=1) as dst,
    ):
        dst.write(src.readline())
        for line in src:
            tconst, _, rest = line.partition("\t")
            if rest.startswith("movie\t") and not kept_by_refresh(tconst):
                dropped += 1
                continue
            dst.write(line)
    bumped = 0
    with (
        gzip.open(source / RATINGS, "rt", encoding="utf-8", newline="\n") as src,
        gzip.open(out / RATINGS, "wt", encoding="utf-8", newline="\n", compresslevel=1) as dst,
    ):
        dst.write(src.readline())
        for line in src:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 3 and fields[2].isdigit() and int(fields[0][2:]) % 10 == 3:
                fields[2] = str(int(fields[2]) + 1)
                line = "\t".join(fields) + "\n"
                bumped += 1
            dst.write(line)
    marker.write_text(json.dumps({"from": str(source), "dropped": dropped, "bumped": bumped}))
    return out, time.monotonic() - started


# ----------------------------------------------------------------------------------------------
# The loader


@dataclass
class LoadRun:
    """One `movies load` process: how it ended and what it said (stderr lines with offsets)."""

    source: str
    returncode: int | None = None
    seconds: float = 0.0
    stdout: str = ""
    stderr: list[tuple[float, str]] = field(default_factory=list)
    killed_at: float | None = None
    orphans: int = 0

    @property
    def stderr_text(self) -> str:
        return "\n".join(line for _, line in self.stderr)

    def last_line_before(self, offset: float) -> str:
        lines = [line for t, line in self.stderr if t <= offset]
        return lines[-1] if lines else ""


def run_load(
    source: Path | str,
    env: dict[str, str],
    *,
    force: bool = True,
    kill_after: float | None = None,
    kill_on: tuple[re.Pattern[str], float] | None = None,
    kill_when: Callable[[], bool] | None = None,
    timeout: float = 600,
) -> LoadRun:
    """Run `movies load`, optionally SIGKILLing it: `kill_after` seconds in; or, with
    `kill_on = (pattern, delay)`, `delay` seconds after a stderr line matches `pattern` and (with
    `kill_when`) after the predicate, polled every 2 ms from that line on, first holds."""
    argv = [MOVIES, "load", "--source", str(source)] + (["--force"] if force else [])
    run = LoadRun(str(source))
    matched = threading.Event()
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            run.stderr.append((time.monotonic() - started, line.rstrip("\n")))
            if kill_on and kill_on[0].search(line):
                matched.set()

    def read_stdout() -> None:
        assert proc.stdout is not None
        run.stdout = proc.stdout.read()

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stderr, read_stdout)]
    for reader in readers:
        reader.start()

    deadline = started + timeout
    if kill_after is not None:
        deadline = min(deadline, started + kill_after)
    elif kill_on is not None:
        while proc.poll() is None and not matched.is_set() and time.monotonic() < deadline:
            matched.wait(0.01)
        if matched.is_set() and kill_when is not None:
            while proc.poll() is None and time.monotonic() < deadline and not kill_when():
                time.sleep(0.002)
        if matched.is_set() and proc.poll() is None:
            deadline = time.monotonic() + kill_on[1]
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        run.killed_at = time.monotonic() - started
        os.kill(proc.pid, signal.SIGKILL)  # the loader itself, as the kernel's OOM killer would
        proc.wait()
        run.orphans = _reap_group(proc.pid)
    run.seconds = time.monotonic() - started
    for reader in readers:
        reader.join(timeout=10)
    run.returncode = proc.returncode
    return run


def _reap_group(pgid: int) -> int:
    """Count and stop what the killed loader left running in its process group (the harness
    started that group, so it may stop it)."""
    left = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                left.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    for proc in left:
        proc.kill()
    return len(left)


class SwapProbe:
    """True while a session holds an ACCESS EXCLUSIVE lock on a live table: only the loader's
    swap (DETACH/ATTACH PARTITION) takes one. One autocommit connection, polled."""

    SQL = sa.text(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE l.mode = 'AccessExclusiveLock' AND l.granted "
        "AND c.relname IN ('movie', 'movie_imdb', 'movie_genre', 'movie_genre_imdb')"
    )

    def __init__(self, engine: sa.Engine) -> None:
        self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.seen = False

    def __call__(self) -> bool:
        self.seen = self.conn.execute(self.SQL).scalar_one() > 0
        return self.seen

    def close(self) -> None:
        self.conn.close()


# ----------------------------------------------------------------------------------------------
# The API


class Api:
    """`movies serve` (gunicorn) on 127.0.0.1, through the benchmarks' shared `Server`."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int | None = None) -> None:
        port = free_port()
        argv = [MOVIES, "serve", "--host", "127.0.0.1", "--port", str(port)]
        if workers:
            argv += ["--workers", str(workers)]
        self.server = Server("gunicorn", argv, port, env, log_path)
        self.base_url = self.server.base_url

    def start(self) -> None:
        try:
            self.server.start(ready_path="/readyz", timeout_s=60)
        except BenchError as exc:
            raise StackError(str(exc)) from exc

    def stop(self) -> None:
        self.server.stop(timeout_s=20)

    def worker_processes(self) -> list[psutil.Process]:
        proc = self.server.process
        if proc is None or proc.poll() is not None:
            return []
        try:
            return psutil.Process(proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def worker_rss(self) -> dict[int, int]:
        """Resident set size in bytes of each gunicorn worker, by pid."""
        sizes = {}
        for worker in self.worker_processes():
            try:
                sizes[worker.pid] = worker.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return sizes


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until `predicate()` holds, or None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None
