"""The scale-out topology on one machine, from Debian's packages: `make scale-up` / `scale-down`.

    python solution/scale/topology.py up      # start everything (loads a synthetic data set)
    python solution/scale/topology.py down    # stop everything it started; nothing keeps running
    python solution/scale/topology.py status  # what runs, on which port

On 127.0.0.1, each process under its own folder of .data/scale/:

    nginx :26080 ─┬─ api1 :26501 ─┬─ pgbouncer :26442 ── primary :26432 (writes, loader)
     cache, LB    └─ api2 :26502 ─┤    streaming replication ─┴─┬───────────────┐
                                  ├─ pgbouncer :26443 ── replica1 :26433       │
                                  └─ pgbouncer :26444 ── replica2 :26434 ──────┘
    redis :26379: the rate-limit counters of both API replicas

Each API replica reads through both replica poolers: DATABASE_READ_URL names the two hosts, its
own replica first; libpq connects to the first that accepts, so API replica N reads from
PostgreSQL replica N, and from the other one while replica N's host (PostgreSQL and its pooler)
is down. Writes go through the primary's pooler. The poolers run in transaction mode; Debian's
pgbouncer 1.18 knows nothing of prepared statements (protocol-level support came with 1.21, and
SQL-level PREPARE never works in transaction mode: the EXECUTE may reach another server
connection), so the API runs with MOVIES_PREPARED_STATEMENTS=off. pgbouncer also refuses the
`options` startup parameter the app sends its per-connection settings in, so it ignores it: the
API sends its statement timeout with the first statement of each transaction instead
(movies/db.py), and the API role carries the planner settings (ALTER ROLE ... SET). The
poolers' configuration is pgbouncers.py's. The loader connects to the primary directly (its load
is one long transaction with session settings, which a transaction pooler would not keep).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pg_servers
import pgbouncers

from movies import schema
from movies.db import create_engine

SCALE_FOLDER = Path(__file__).resolve().parent
REPO = SCALE_FOLDER.parents[1]
VENV_BIN = REPO / ".venv" / "bin"
DATA = REPO / ".data" / "scale"
APT_PACKAGES = ("postgresql", "pgbouncer", "nginx", "redis-server")
SECRET_KEY = "scale-topology-secret-key"
API_TOKEN = "scale-token"
DATASET_SCALE = 0.1  # about 70 k movies: a reload takes seconds, enough to measure replay lag


@dataclass(frozen=True)
class Ports:
    """Below Linux's ephemeral range (32768-60999): no outgoing connection can hold them."""

    primary: int = 26432
    replicas: tuple[int, ...] = (26433, 26434)
    bouncer_primary: int = 26442
    bouncer_replicas: tuple[int, ...] = (26443, 26444)
    apis: tuple[int, ...] = (26501, 26502)
    nginx: int = 26080
    redis: int = 26379


PORTS = Ports()
REPLICA_NAMES = tuple(f"replica{n}" for n in range(1, len(PORTS.replicas) + 1))
# The API's planner settings of engine_options(), which pgbouncer cannot pass on. The
# statement timeout here only backs up the API's own (MOVIES_STATEMENT_TIMEOUT_MS, sent with
# each transaction's first statement, movies/db.py), which overrides it.
API_ROLE_SETTINGS = {
    "statement_timeout": "5000",
    "max_parallel_workers_per_gather": "0",
    "random_page_cost": "1.1",
}


class TopologyError(RuntimeError):
    """A part of the topology could not be started."""


def log(message: str) -> None:
    print(f"[scale] {message}", flush=True)


# --- packages -------------------------------------------------------------------------------


def install_missing_packages() -> None:
    """apt-get install whichever of APT_PACKAGES' programs are missing."""
    have = {
        "postgresql": any(Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        "pgbouncer": shutil.which("pgbouncer") is not None,
        "nginx": shutil.which("nginx") is not None,
        "redis-server": shutil.which("redis-server") is not None,
    }
    missing = [name for name in APT_PACKAGES if not have[name]]
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


# --- PostgreSQL -----------------------------------------------------------------------------


def primary_server() -> pg_servers.PgServer:
    return pg_servers.PgServer(DATA / "pg" / "primary", PORTS.primary)


def replica_servers() -> list[pg_servers.PgServer]:
    return [
        pg_servers.PgServer(DATA / "pg" / name, port)
        for name, port in zip(REPLICA_NAMES, PORTS.replicas, strict=True)
    ]


def start_postgres() -> None:
    """The primary with the schema and roles, then the replicas (pg_basebackup -R)."""
    folder = DATA / "pg"
    primary = primary_server()
    if (primary.data / "PG_VERSION").exists():
        for server in (primary, *replica_servers()):
            pg_servers.start(server)
        return
    pg_servers.init_primary(folder, PORTS.primary, {"max_wal_size": "2GB"})
    _prepare_database(primary)
    for name, port in zip(REPLICA_NAMES, PORTS.replicas, strict=True):
        pg_servers.init_replica(primary, folder, name, port)


def _prepare_database(primary: pg_servers.PgServer) -> None:
    """Database `movies`, the sql-scripts' roles and schema, logins for the two roles."""
    admin = create_engine(primary.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE movies")
    admin.dispose()
    engine = create_engine(primary.url("movies"), isolation_level="AUTOCOMMIT")
    schema.apply(engine)  # the sql-scripts' roles, tables and privileges, as compose's db runs them
    with engine.connect() as conn:
        # 127.0.0.1 is trusted (initdb -A trust): these logins need no password here.
        conn.exec_driver_sql("ALTER ROLE movies_loader LOGIN")
        conn.exec_driver_sql("ALTER ROLE movies_api LOGIN")
        for name, value in API_ROLE_SETTINGS.items():
            conn.exec_driver_sql(f"ALTER ROLE movies_api SET {name} = '{value}'")
    engine.dispose()


# --- pgbouncer ------------------------------------------------------------------------------


def bouncers() -> list[tuple[str, int, int]]:
    """(name, pooler port, server port) of each pooler."""
    return [
        ("primary", PORTS.bouncer_primary, PORTS.primary),
        *zip(REPLICA_NAMES, PORTS.bouncer_replicas, PORTS.replicas, strict=True),
    ]


def start_bouncer(name: str, port: int, server_port: int) -> None:
    pgbouncers.start(
        DATA / f"pgbouncer-{name}", port, server_port, "movies", ["movies_api", "movies_loader"]
    )


# --- redis ----------------------------------------------------------------------------------


def start_redis() -> None:
    folder = DATA / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(PORTS.redis),
            "--dir",
            str(folder),
            "--daemonize",
            "yes",
            "--pidfile",
            str(folder / "redis.pid"),
            "--logfile",
            str(folder / "redis.log"),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    _wait_for_port(PORTS.redis, "redis")


# --- API replicas ---------------------------------------------------------------------------


def api_environment(number: int) -> dict[str, str]:
    """The settings of API replica `number` (1-based)."""
    # Replica `number` first, the others after it: libpq tries them in order, so each API
    # replica reads from its own PostgreSQL replica and goes on to the next when that one is
    # down. SQLAlchemy's spelling of a libpq multi-host URL: one host= per pooler.
    first = (number - 1) % len(PORTS.bouncer_replicas)
    ports = PORTS.bouncer_replicas[first:] + PORTS.bouncer_replicas[:first]
    reads = "&".join(f"host=127.0.0.1:{port}" for port in ports)
    replicas = PORTS.replicas[first:] + PORTS.replicas[:first]
    exports = "&".join(f"host=127.0.0.1:{port}" for port in replicas)
    return {
        **os.environ,
        "DATABASE_URL": f"postgresql://movies_api@127.0.0.1:{PORTS.bouncer_primary}/movies",
        "DATABASE_READ_URL": f"postgresql://movies_api@/movies?{reads}",
        # An export's cursor outlives its transaction: past the poolers, to the replicas.
        "DATABASE_EXPORT_URL": f"postgresql://movies_api@/movies?{exports}",
        "MOVIES_PREPARED_STATEMENTS": "off",
        "MOVIES_RATE_LIMIT_STORAGE_URI": f"redis://127.0.0.1:{PORTS.redis}",
        "MOVIES_TRUSTED_PROXIES": "1",  # nginx appends the client's address
        "MOVIES_SECRET_KEY": SECRET_KEY,  # shared: cursors and write cookies work on every replica
        "MOVIES_API_TOKENS": API_TOKEN,
        "MOVIES_DB_CONNECT_TIMEOUT_S": "2",
        "GUNICORN_WORKERS": "2",
    }


def loader_environment() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"postgresql://movies_loader@127.0.0.1:{PORTS.primary}/movies",
    }


def start_api(number: int) -> None:
    """API replica `number` (1-based) under gunicorn, detached; its pid in its folder."""
    port = PORTS.apis[number - 1]
    folder = DATA / f"api{number}"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "api.log").open("ab") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "movies"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**api_environment(number), "MOVIES_DATA_DIR": str(folder)},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (folder / "api.pid").write_text(str(process.pid))
    _wait_for_http(f"http://127.0.0.1:{port}/healthz", f"api{number}")


# --- nginx ----------------------------------------------------------------------------------


def nginx_conf(folder: Path) -> str:
    servers = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in PORTS.apis
    )
    return f"""worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}

http {{
    # Which API replica answered, and whether the cache did (HIT: the API never saw it).
    log_format scale '$remote_addr "$request" $status $upstream_addr $upstream_cache_status';
    access_log {folder}/access.log scale;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;

    proxy_cache_path {folder}/cache levels=1:2 keys_zone=movies:10m max_size=256m inactive=10m;

    upstream api {{
{servers}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{PORTS.nginx};
        location / {{
            include {SCALE_FOLDER / "nginx-proxy.conf"};
        }}
    }}
}}
"""


def start_nginx() -> None:
    folder = DATA / "nginx"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(nginx_conf(folder))
    subprocess.run(["nginx", "-c", str(conf), "-p", str(folder)], check=True)
    _wait_for_http(f"http://127.0.0.1:{PORTS.nginx}/healthz", "nginx")


# --- data -----------------------------------------------------------------------------------


def load_dataset() -> None:
    """Generate the synthetic data set once and load it on the primary (skipped if loaded)."""
    engine = create_engine(primary_server().url("movies"))
    with engine.connect() as conn:
        loaded = conn.exec_driver_sql("SELECT count(*) FROM dataset_load").scalar()
    engine.dispose()
    if loaded:
        return
    dataset = DATA / "dataset"
    if not (dataset / "title.basics.tsv.gz").exists():
        log(f"generating a synthetic data set (scale {DATASET_SCALE})")
        subprocess.run(
            [str(VENV_BIN / "movies"), "generate", str(dataset), "--scale", str(DATASET_SCALE)],
            check=True,
        )
    reload_dataset()


def reload_dataset() -> float:
    """A full load on the primary; its wall seconds."""
    started = time.monotonic()
    subprocess.run(
        [str(VENV_BIN / "movies"), "load"],
        env={**loader_environment(), "MOVIES_SOURCE": str(DATA / "dataset")},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


# --- up, down, status -----------------------------------------------------------------------


def up() -> None:
    """Start the topology; if only some of it runs (an earlier start that failed), restart it."""
    install_missing_packages()
    if all(status(quiet=True).values()):
        log("already up")
        return
    down()
    DATA.mkdir(parents=True, exist_ok=True)
    log("PostgreSQL: primary and replicas")
    start_postgres()
    log("pgbouncer in front of each")
    for name, port, server_port in bouncers():
        start_bouncer(name, port, server_port)
    log("redis")
    start_redis()
    log("data set")
    load_dataset()
    log("API replicas")
    for number in range(1, len(PORTS.apis) + 1):
        start_api(number)
    log("nginx")
    start_nginx()
    status()


def down() -> None:
    """Stop every process of the topology (those that run); the data folders stay."""
    stop_pid_file(DATA / "nginx" / "nginx.pid", "nginx", signal.SIGQUIT)
    for number in range(1, len(PORTS.apis) + 1):
        stop_pid_file(DATA / f"api{number}" / "api.pid", f"api{number}")
    stop_pid_file(DATA / "redis" / "redis.pid", "redis")
    for name, _, _ in bouncers():
        stop_pid_file(DATA / f"pgbouncer-{name}" / "pgbouncer.pid", f"pgbouncer {name}")
    for server in (*replica_servers(), primary_server()):
        if (server.data / "postmaster.pid").exists():
            log(f"stopping PostgreSQL {server.data.name}")
            pg_servers.stop(server)


def status(*, quiet: bool = False) -> dict[str, bool]:
    """Print (unless `quiet`) and return which parts answer on their ports."""
    parts = {
        "primary": PORTS.primary,
        **dict(zip(REPLICA_NAMES, PORTS.replicas, strict=True)),
        **{f"pgbouncer-{name}": port for name, port, _ in bouncers()},
        "redis": PORTS.redis,
        **{f"api{n}": port for n, port in enumerate(PORTS.apis, 1)},
        "nginx": PORTS.nginx,
    }
    running = {name: pg_servers.port_open(port) for name, port in parts.items()}
    for name, answers in running.items() if not quiet else ():
        print(f"  {name:<20} 127.0.0.1:{parts[name]:<6} {'up' if answers else 'down'}")
    return running


# --- processes ------------------------------------------------------------------------------


def stop_pid_file(pid_file: Path, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
    """Signal the process of `pid_file` and wait (up to 30 s) until it has gone."""
    if not pid_file.exists():
        return
    text = pid_file.read_text().strip()
    pid = int(text) if text.isdigit() else None
    if pid is None or not pg_servers.process_alive(pid):
        pid_file.unlink(missing_ok=True)
        return
    log(f"stopping {name} (pid {pid})")
    os.kill(pid, sig)
    deadline = time.monotonic() + 30
    while pg_servers.process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pg_servers.process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def _wait_for_port(port: int, name: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not pg_servers.port_open(port):
        if time.monotonic() > deadline:
            raise TopologyError(f"{name} is not listening on 127.0.0.1:{port}")
        time.sleep(0.1)


def _wait_for_http(url: str, name: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TopologyError(f"{name} does not answer {url} (see its log under {DATA})")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    command = parser.parse_args(argv).command
    try:
        {"up": up, "down": down, "status": status}[command]()
    except (TopologyError, pg_servers.PgServerError, subprocess.CalledProcessError) as exc:
        print(f"[scale] {command} failed: {exc}", file=sys.stderr)
        if command == "up":
            down()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
