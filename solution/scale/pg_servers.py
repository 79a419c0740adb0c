"""A PostgreSQL primary and its streaming replicas, from the distribution's or pgserver's binaries.

Each server lives in a folder of its own (its data directory, with its log beside it), listens on
127.0.0.1 only (no Unix socket) and is started and stopped with `pg_ctl`. A replica is made with
`pg_basebackup -R`: a copy of the primary plus the `primary_conninfo` that makes it follow by
streaming replication. The binaries are Debian's newest PostgreSQL where it is installed (as
`make scale-up` installs it), else the embedded server's (the pgserver wheel ships initdb,
pg_ctl and pg_basebackup), so the tests need no system package. PostgreSQL refuses to run as
root, so as root every command runs as the `postgres` user (Debian's package creates it), or
else as the user the embedded server runs as, and the folders are given to it.

Used by the replica routing tests and by `make scale-up`. Every failure raises PgServerError
with the command's output or the server's log: nothing is skipped.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from movies.db import create_engine

BIN_ROOT = Path("/usr/lib/postgresql")
DB_SUPERUSER = "postgres"
START_TIMEOUT_S = 60


class PgServerError(RuntimeError):
    """A PostgreSQL server could not be made, started or stopped."""


@dataclass(frozen=True)
class PgServer:
    """One running server: its data folder and port."""

    data: Path
    port: int

    @property
    def log(self) -> Path:
        return self.data.with_name(self.data.name + ".log")

    def url(self, dbname: str = "postgres", user: str = DB_SUPERUSER) -> str:
        return local_url(self.port, dbname, user)


def local_url(port: int, dbname: str, user: str) -> str:
    """A URL that logs in on 127.0.0.1:`port` without a password (the folders' servers, and the
    poolers in front of them, trust 127.0.0.1)."""
    return f"postgresql://{user}@127.0.0.1:{port}/{dbname}"


def bin_dir() -> Path:
    """The newest installed Debian version's bin folder, else pgserver's.

    :raise PgServerError: if neither is installed.
    """
    found = sorted(
        (p for p in BIN_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise PgServerError(
            f"no PostgreSQL server binaries under {BIN_ROOT} and no pgserver: "
            "apt-get install postgresql-15, or pip install pgserver"
        ) from None
    return POSTGRES_BIN_PATH


@functools.cache
def service_user() -> str:
    """The system user the servers run as when this process is root (PostgreSQL refuses root).

    :raise PgServerError: if neither user exists and none can be created.
    """
    for name in ("postgres", "pgserver"):  # Debian's package's, pgserver's
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    done = subprocess.run(
        ["useradd", "-s", "/bin/bash", "pgserver"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise PgServerError(f"could not create the user pgserver: {done.stderr.strip()}")
    return "pgserver"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs; a zombie (its parent has not reaped it yet) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def prepare_folder(folder: Path) -> Path:
    """Create `folder` (and hand it to the service user when running as root)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, service_user(), service_user())
        # The service user must be able to reach the folder through its parents.
        for parent in folder.parents:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o711)
    return folder


def init_primary(folder: Path, port: int, settings: dict[str, str] | None = None) -> PgServer:
    """initdb in `folder`/primary and start it on `port` (settings: extra postgresql.conf lines)."""
    server = PgServer(prepare_folder(folder) / "primary", port)
    _run(
        [str(bin_dir() / "initdb"), "-D", str(server.data), "-U", DB_SUPERUSER, "-A", "trust"],
        "initdb",
    )
    # Read at every start, replicas included (pg_basebackup copies it).
    with (server.data / "postgresql.conf").open("a") as conf:
        for name, value in {"wal_level": "replica", **(settings or {})}.items():
            conf.write(f"{name} = '{value}'\n")
    start(server)
    return server


def init_replica(primary: PgServer, folder: Path, name: str, port: int) -> PgServer:
    """pg_basebackup -R of `primary` into `folder`/`name`, started on `port`."""
    server = PgServer(prepare_folder(folder) / name, port)
    _run(
        [
            str(bin_dir() / "pg_basebackup"),
            "-D",
            str(server.data),
            "-R",  # write standby.signal and primary_conninfo: follow by streaming replication
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            DB_SUPERUSER,
        ],
        f"pg_basebackup of {name}",
    )
    start(server)
    return server


def start(server: PgServer) -> None:
    """Start `server` and wait until it accepts connections. :raise PgServerError: if it fails."""
    options = f"-p {server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    command = [str(bin_dir() / "pg_ctl"), "start", "-w", "-t", str(START_TIMEOUT_S)]
    command += ["-D", str(server.data), "-l", str(server.log), "-o", options]
    _run(command, f"start of {server.data}", log=server.log)


def stop(server: PgServer, mode: str = "fast") -> None:
    """Stop `server` if it runs (`mode`: smart, fast or immediate)."""
    if not (server.data / "postmaster.pid").exists():
        return
    _run(
        [str(bin_dir() / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(server.data)],
        f"stop of {server.data}",
        log=server.log,
    )


def wait_for_replay(primary_lsn: str, replica_url: str, timeout_s: float = 30.0) -> float:
    """Seconds until the replica at `replica_url` has replayed `primary_lsn`.

    :raise PgServerError: if it has not within `timeout_s`.
    """
    engine = create_engine(replica_url)
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            while time.monotonic() - started < timeout_s:
                replayed = conn.exec_driver_sql(
                    "SELECT pg_last_wal_replay_lsn() >= %(lsn)s::pg_lsn", {"lsn": primary_lsn}
                ).scalar()
                if replayed:
                    return time.monotonic() - started
                time.sleep(0.01)
    finally:
        engine.dispose()
    raise PgServerError(f"the replica did not replay {primary_lsn} within {timeout_s} s")


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", service_user(), "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        raise PgServerError(f"{what} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")
