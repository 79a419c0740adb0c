"""pgbouncer in transaction mode in front of one PostgreSQL server, from Debian's package.

Each pooler lives in a folder of its own (its configuration, user list, log and pid file),
listens on 127.0.0.1 only, trusts its clients (like the folders' servers) and runs detached as
the service user of pg_servers.py (pgbouncer refuses to run as root).

Used by `make scale-up` (topology.py) and by the pooler tests, so both run the same
configuration. Every failure raises PgServerError with the command's output or the pooler's
log: nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pg_servers import (
    PgServerError,
    local_url,
    port_open,
    prepare_folder,
    process_alive,
    service_user,
)

START_TIMEOUT_S = 30
# How long a client's query may wait for a server connection before pgbouncer fails it (its
# default is 120 s). A server that has gone leaves the queries that were waiting for it queued
# that long: the API's read would hang instead of moving to the primary (api/routing.py). On
# loopback a server connection takes milliseconds and the API never asks for more connections
# than a pool holds, so a longer wait means the server is unreachable: as long as the API lets a
# connection take to open (MOVIES_DB_CONNECT_TIMEOUT_S in topology.py).
QUERY_WAIT_TIMEOUT_S = 2


@dataclass(frozen=True)
class Bouncer:
    """One pooler: its folder and port."""

    folder: Path
    port: int

    @property
    def pid_file(self) -> Path:
        return self.folder / "pgbouncer.pid"

    @property
    def log(self) -> Path:
        return self.folder / "pgbouncer.log"

    def url(self, dbname: str, user: str) -> str:
        return local_url(self.port, dbname, user)


def binary() -> str:
    """The pgbouncer program. :raise PgServerError: if it is not installed."""
    found = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(found).exists():
        raise PgServerError("pgbouncer is not installed: apt-get install pgbouncer")
    return found


def ini(bouncer: Bouncer, server_port: int, dbname: str) -> str:
    """The configuration of `bouncer` in front of database `dbname` on 127.0.0.1:`server_port`."""
    folder = bouncer.folder
    return f"""[databases]
{dbname} = host=127.0.0.1 port={server_port} dbname={dbname}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {bouncer.port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
; Two API replicas x 2 workers x (pool + overflow) clients; few server connections serve them.
max_client_conn = 200
default_pool_size = 10
; A server that refuses logins is retried every second; meanwhile new queries fail at once.
server_login_retry = 1
query_wait_timeout = {QUERY_WAIT_TIMEOUT_S}
; The app sends its settings in `options`, which pgbouncer cannot pass on: the statement timeout
; travels with each transaction's first statement instead (movies/db.py), the planner settings
; with the role (topology.py).
ignore_startup_parameters = extra_float_digits,options
logfile = {bouncer.log}
pidfile = {bouncer.pid_file}
"""


def start(folder: Path, port: int, server_port: int, dbname: str, users: list[str]) -> Bouncer:
    """Write the configuration into `folder` and start pgbouncer on `port`, detached.

    :raise PgServerError: if it is not listening within START_TIMEOUT_S.
    """
    bouncer = Bouncer(prepare_folder(folder), port)
    (folder / "pgbouncer.ini").write_text(ini(bouncer, server_port, dbname))
    (folder / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in users))
    command = [binary(), "-d", str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        for path in folder.iterdir():
            shutil.chown(path, service_user(), service_user())
        command = ["runuser", "-u", service_user(), "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    deadline = time.monotonic() + START_TIMEOUT_S
    while done.returncode == 0 and time.monotonic() < deadline:
        if port_open(port):
            return bouncer
        time.sleep(0.05)
    tail = bouncer.log.read_text(errors="replace")[-3000:] if bouncer.log.exists() else ""
    raise PgServerError(
        f"pgbouncer on 127.0.0.1:{port} did not start ({done.returncode}): "
        f"{done.stderr.strip()}\n{tail}"
    )


def stop(bouncer: Bouncer, sig: signal.Signals = signal.SIGTERM) -> None:
    """Signal `bouncer`'s process (if it runs) and wait until it has gone."""
    text = bouncer.pid_file.read_text().strip() if bouncer.pid_file.exists() else ""
    if not text.isdigit():
        return
    pid = int(text)
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + START_TIMEOUT_S
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    bouncer.pid_file.unlink(missing_ok=True)
