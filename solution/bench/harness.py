"""Benchmark plumbing: synthetic data sets, a dedicated embedded database, gunicorn servers.

Everything lives under the repository's `.data/` folder, beside (never inside) the demo database,
so a benchmark neither reads nor disturbs what `make demo` serves. Child processes are started by
id and stopped by id; nothing here looks processes up by name.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests
import sqlalchemy as sa

from movies.db import create_engine
from movies.embedded import start_embedded

REPO = Path(__file__).resolve().parents[2]
DATA_ROOT = REPO / ".data"
BENCH_DIR = Path(__file__).resolve().parent
GUNICORN_CONFIG = "python:movies.gunicorn_conf"
MANIFEST = "synthetic.json"

log = logging.getLogger("bench")


class BenchError(RuntimeError):
    """A benchmark could not be set up or produced an invalid measurement; the message says why."""


def venv_command(name: str) -> str:
    """Path of a console script installed beside this interpreter (the project's venv).

    :raise BenchError: if the script is neither beside the interpreter nor on PATH.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"'{name}' not found; install the project: pip install -e solution")
    return found


def synthetic_dir(scale: float, seed: int) -> Path:
    """The cached synthetic data set for `scale` and `seed` (shared by every benchmark)."""
    return DATA_ROOT / f"synthetic-{scale}-seed{seed}"


def read_manifest(folder: Path) -> dict | None:
    """The generator's synthetic.json in `folder` (written last: marks a complete set), or None."""
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_synthetic_data(scale: float, seed: int) -> tuple[Path, dict]:
    """Return the folder and manifest of the synthetic data set, generating it if absent.

    :raise BenchError: if generation fails or leaves no matching manifest.
    """
    folder = synthetic_dir(scale, seed)
    _wait_for_other_generator(folder)
    manifest = read_manifest(folder)
    if manifest and manifest.get("scale") == scale and manifest.get("seed") == seed:
        log.info("reusing synthetic data in %s", folder)
        return folder, manifest
    log.info("generating synthetic data (scale %s, seed %s) in %s", scale, seed, folder)
    argv = [venv_command("movies"), "generate", str(folder), "--scale", str(scale)]
    argv += ["--seed", str(seed)]
    result = subprocess.run(argv, check=False)
    manifest = read_manifest(folder)
    if result.returncode != 0 or not manifest:
        raise BenchError(f"'{' '.join(argv)}' failed (exit {result.returncode})")
    return folder, manifest


def _wait_for_other_generator(folder: Path, timeout_s: float = 1800) -> None:
    """Wait while another process writes this data set (its `*.tmp-PID` files, PID alive)."""
    deadline = time.monotonic() + timeout_s
    announced = False
    while time.monotonic() < deadline:
        writers = {
            int(pid)
            for path in folder.glob("*.tmp-*")
            if (pid := path.name.rsplit(".tmp-", 1)[1]).isdigit() and _is_alive(int(pid))
        }
        if not writers:
            return
        if not announced:
            log.info("waiting for process %s to finish writing %s", sorted(writers), folder)
            announced = True
        time.sleep(2)
    raise BenchError(f"{folder} is still being written after {timeout_s:.0f} s")


def _postmaster_pid(pgdata: Path) -> int | None:
    """Pid of the PostgreSQL server running in `pgdata`, or None if none is running."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _is_alive(pid) else None


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedDatabase:
    """A dedicated embedded PostgreSQL under `data_dir` (the layout MOVIES_DATA_DIR would give).

    `stop()` stops the server only if `start()` started it: a server someone else left running
    stays up.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.url: str | None = None
        self._started_pid: int | None = None

    def start(self) -> str:
        """Start (or reuse) the server; return its URL."""
        already = _postmaster_pid(self.pgdata)
        self.url = start_embedded(self.pgdata)
        if already is None:
            self._started_pid = _postmaster_pid(self.pgdata)
        log.info("embedded PostgreSQL in %s (%s)", self.pgdata, "reused" if already else "started")
        return self.url

    def pid(self) -> int | None:
        """The running server's postmaster pid (its backends are its children), or None."""
        return _postmaster_pid(self.pgdata)

    def stop(self, timeout_s: float = 60) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint, exit) of a server we started."""
        pid = self._started_pid
        if pid is None or not _is_alive(pid):
            return
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        while _is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_alive(pid):
            raise BenchError(f"embedded PostgreSQL (pid {pid}) did not stop in {timeout_s:.0f} s")
        self._started_pid = None
        log.info("embedded PostgreSQL in %s stopped", self.pgdata)


def loaded_movies(url: str) -> int | None:
    """Movies of the last successful load if the table still holds exactly them, else None."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.scalar(sa.text("SELECT to_regclass('dataset_load')")) is None:
                return None
            last = conn.scalar(sa.text("SELECT movies FROM dataset_load ORDER BY id DESC LIMIT 1"))
            if last is None:
                return None
            present = conn.scalar(sa.text("SELECT count(*) FROM movie WHERE source = 'imdb'"))
    finally:
        engine.dispose()
    return int(last) if present == last else None


def ensure_loaded(
    url: str, folder: Path, manifest: Mapping, env: Mapping[str, str], *, reload: bool = False
) -> None:
    """Load `folder` with `movies load --force` unless the database already holds that data set
    (and `reload` is false).

    :raise BenchError: if the load fails.
    """
    expected = manifest.get("loadable_movies", manifest.get("movies"))
    present = loaded_movies(url)
    if not reload and present is not None and present == expected:
        log.info("database already holds the data set (%s movies): skipping the load", present)
        return
    log.info("loading %s (database holds %s movies, want %s)", folder, present, expected)
    argv = [venv_command("movies"), "load", "--source", str(folder), "--force"]
    started = time.monotonic()
    # The load report goes to stderr with the progress: stdout stays the benchmark's report.
    result = subprocess.run(argv, env=dict(env), stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise BenchError(f"'{' '.join(argv)}' failed (exit {result.returncode})")
    log.info("loaded in %.1f s", time.monotonic() - started)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The environment for every child process: this one's, pointed at the bench database."""
    env = dict(os.environ)
    # As an activated venv would: `movies serve` looks gunicorn up on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DATABASE_URL"] = database_url
    env["MOVIES_DATA_DIR"] = str(data_dir)
    return env


class Server:
    """A server process (gunicorn) on 127.0.0.1:`port`, its output in `log_path`."""

    def __init__(
        self, name: str, argv: list[str], port: int, env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id (the gunicorn master), once started."""
        return self.process.pid if self.process else None

    def start(self, ready_path: str = "/readyz", timeout_s: float = 60) -> None:
        """Start the process and wait until `ready_path` answers 200.

        :raise BenchError: if the process exits or is not ready within `timeout_s`.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            # A session of its own: Ctrl-C reaches this script, which then stops the server.
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.process.returncode} before it was ready; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if requests.get(self.base_url + ready_path, timeout=2).status_code == 200:
                    log.info("%s ready on %s (pid %s)", self.name, self.base_url, self.process.pid)
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise BenchError(
            f"{self.name} not ready within {timeout_s:.0f} s; last lines of {self.log_path}:\n"
            f"{self.log_tail()}"
        )

    def raise_if_exited(self) -> None:
        """:raise BenchError: with the log's last lines, if the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise BenchError(
                f"{self.name} exited with {self.process.returncode} during the run; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self, timeout_s: float = 40) -> None:
        """SIGTERM (gunicorn: graceful shutdown), then SIGKILL after `timeout_s`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("%s stopped", self.name)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def cpu_and_memory() -> tuple[str, str]:
    """The CPU model and total RAM ("unknown" where /proc does not tell), for benchmark headers."""
    model, memory = platform.processor() or "unknown CPU", "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    return model, memory
