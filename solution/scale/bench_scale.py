"""`make bench-scale`: the scale-out topology (topology.py) under load, through nginx.

Starts the topology if it is not up (and stops it again at the end in that case), then:

1. spread: uncached reads by id; which API replica answered (nginx's access log) and how many
   transactions each PostgreSQL server ran (pg_stat_database), so reads reach both replicas and
   not the primary;
2. cache: the same URLs again; nginx answers them (X-Cache-Status HIT), the API logs none; a
   request with Authorization is never answered from the cache (BYPASS);
3. reload: a full load on the primary under 8-connection read load: failed requests, the
   replicas' replay lag while it runs (pg_stat_replication), and both replicas serving the new
   load at the end;
4. failures: under the same load, one PostgreSQL replica and one API replica are stopped, then
   started again: the failed share, the recovery time, and both rejoining;
5. replica behind pooler: under the same load, one PostgreSQL replica alone is stopped, its
   pgbouncer left running (it accepts connections and fails their queries): the failed share,
   the fallbacks to the primary logged, and the replica read from again once restarted;
6. export: three NDJSON exports under the same load, through nginx (the API reads them straight
   from the replicas, past the poolers): complete, each line count equal to count=exact;
7. read-your-writes: 1,000 times POST then an immediate GET of its Location through nginx, each
   try a new client: misses must be 0;
8. rate limit: writes from one client address, spread by nginx over both API replicas, are
   limited once in total (redis), and with redis stopped requests are served and the failure
   logged (the limiter fails open).

Every client request goes to 127.0.0.1. Load connections take their source address from
127.1.0.0/16 and change it every 100 requests, so the per-address read limit (6,000/minute) never
bites the load itself. Figures are printed; nothing is written to disk beyond the topology's logs.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pg_servers
import topology
from topology import DATA, PORTS

from movies.api.connection import REPLICA_RECYCLE_S
from movies.db import create_engine

NGINX_LOG = DATA / "nginx" / "access.log"
LOAD_CONNECTIONS = 8
REQUESTS_PER_ADDRESS = 100
POST_GET_TRIES = 1000
REJOIN_S = REPLICA_RECYCLE_S + 10
STATS_FLUSH_S = 11
AUTH = {"Authorization": f"Bearer {topology.API_TOKEN}"}
_addresses = (f"127.1.{a}.{b}" for a, b in itertools.product(range(256), range(1, 255)))
_address_lock = threading.Lock()


def next_address() -> str:
    with _address_lock:
        return next(_addresses)


def request(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    address: str = "127.0.0.1",
) -> http.client.HTTPResponse:
    """One request through nginx on a connection of its own (read body included)."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", PORTS.nginx, timeout=10, source_address=(address, 0)
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.body = response.read()  # type: ignore[attr-defined]
        return response
    finally:
        conn.close()


# --- load -----------------------------------------------------------------------------------


@dataclass
class Load:
    """`connections` threads reading `paths` through nginx, each path once, until stopped.

    Each path is sent once (nginx has not seen it: the API and PostgreSQL answer every request)
    until all were sent; then they go round again, answered by nginx's cache.
    """

    paths: list[str]
    connections: int = LOAD_CONNECTIONS
    # (monotonic time, HTTP status; 0 for a connection that failed)
    outcomes: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _next_path: Iterator[str] = field(init=False)

    def __post_init__(self) -> None:
        self._next_path = itertools.cycle(self.paths)

    def __enter__(self) -> Load:
        for _ in range(self.connections):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection(
                    "127.0.0.1", PORTS.nginx, timeout=10, source_address=(next_address(), 0)
                )
                sent = 0
            try:
                conn.request("GET", next(self._next_path))
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = None
            self.outcomes.append((time.monotonic(), status))
            sent += 1
            if conn is not None and sent >= REQUESTS_PER_ADDRESS:
                conn.close()
                conn = None

    def summary(self, since: float = 0.0, until: float = float("inf")) -> tuple[int, int]:
        """(requests, failed) between the monotonic times `since` and `until`."""
        chosen = [status for t, status in self.outcomes if since <= t < until]
        return len(chosen), sum(status != 200 for status in chosen)

    def failures(self, since: float = 0.0) -> Counter:
        """The failed requests since `since` by status (0: the connection failed)."""
        return Counter(status for t, status in self.outcomes if t >= since and status != 200)

    def last_failure(self) -> float | None:
        failures = [t for t, status in self.outcomes if status != 200]
        return failures[-1] if failures else None


# --- measurements ---------------------------------------------------------------------------


def servers() -> dict[str, pg_servers.PgServer]:
    return {"primary": topology.primary_server()} | {
        s.data.name: s for s in topology.replica_servers()
    }


def transactions() -> dict[str, int]:
    """Committed transactions in database movies, per server (read straight from each)."""
    counts = {}
    for name, server in servers().items():
        engine = create_engine(server.url("movies"))
        with engine.connect() as conn:
            counts[name] = conn.exec_driver_sql(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = 'movies'"
            ).scalar()
        engine.dispose()
    return counts


def nginx_upstreams(since_line: int) -> Counter:
    lines = NGINX_LOG.read_text().splitlines()[since_line:]
    return Counter(line.rsplit(" ", 2)[1] for line in lines)


def nginx_cache_statuses(since_line: int) -> Counter:
    lines = NGINX_LOG.read_text().splitlines()[since_line:]
    return Counter(line.rsplit(" ", 1)[1] for line in lines)


def log_lines(path: Path) -> int:
    return len(path.read_text(errors="replace").splitlines()) if path.exists() else 0


def api_access_lines(since: dict[int, int]) -> int:
    total = 0
    for number in since:
        lines = (DATA / f"api{number}" / "api.log").read_text(errors="replace").splitlines()
        total += sum(" movies.access " in line for line in lines[since[number] :])
    return total


def movie_paths() -> list[str]:
    engine = create_engine(topology.primary_server().url("movies"))
    with engine.connect() as conn:
        ids = conn.exec_driver_sql("SELECT id FROM movie_imdb ORDER BY random()").scalars()
        paths = [f"/movies/{movie_id}" for movie_id in ids]
    engine.dispose()
    return paths


# --- the scenarios --------------------------------------------------------------------------


def scenario_spread(paths: list[str]) -> list[str]:
    paths = paths[:2000]
    # A pooled server backend reports its statistics when idle, at most once a second, else
    # 10 s later (PGSTAT_IDLE_INTERVAL): read the counts once everything before has arrived.
    time.sleep(STATS_FLUSH_S)
    before_tx, before_line = transactions(), log_lines(NGINX_LOG)
    for path in paths:
        assert request("GET", path, address=next_address()).status == 200, path
    time.sleep(STATS_FLUSH_S)
    after_tx = transactions()
    upstreams = nginx_upstreams(before_line)
    tx = {name: after_tx[name] - before_tx[name] for name in after_tx}
    return [
        f"spread: {len(paths)} uncached GETs; API replicas {dict(upstreams)}",
        f"spread: transactions per PostgreSQL server {tx}",
    ]


def scenario_cache(paths: list[str]) -> list[str]:
    paths = paths[:2000]
    before_line = log_lines(NGINX_LOG)
    before_api = {n: log_lines(DATA / f"api{n}" / "api.log") for n in (1, 2)}
    for path in paths:
        request("GET", path, address=next_address())
    statuses = nginx_cache_statuses(before_line)
    reached = api_access_lines(before_api)
    with_auth = [
        request("GET", paths[0], headers=AUTH).getheader("X-Cache-Status") for _ in range(2)
    ]
    return [
        f"cache: {len(paths)} repeated GETs; nginx cache {dict(statuses)}; "
        f"API access lines {reached}",
        f"cache: GET with Authorization twice: X-Cache-Status {with_auth}",
    ]


def replication_lag() -> tuple[int, float]:
    """(bytes, seconds) the furthest replica is behind the primary now."""
    engine = create_engine(topology.primary_server().url())
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0),"
            " coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication"
        ).one()
    engine.dispose()
    return int(row[0]), float(row[1])


def scenario_reload(paths: list[str]) -> list[str]:
    paths = paths[2000:]
    lags: list[tuple[int, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            lags.append(replication_lag())
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    with Load(paths) as load:
        time.sleep(2)
        sampler.start()
        seconds = topology.reload_dataset()
        time.sleep(2)
        done.set()
        sampler.join()
    sent, failed = load.summary()
    primary = topology.primary_server()
    engine = create_engine(primary.url("movies"))
    with engine.connect() as conn:
        lsn = conn.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar()
        load_id = conn.exec_driver_sql("SELECT max(id) FROM dataset_load").scalar()
    engine.dispose()
    replicas = []
    for replica in topology.replica_servers():
        pg_servers.wait_for_replay(lsn, replica.url("movies"))
        engine = create_engine(replica.url("movies"))
        with engine.connect() as conn:
            replicas.append(conn.exec_driver_sql("SELECT max(id) FROM dataset_load").scalar())
        engine.dispose()
    return [
        f"reload: load {seconds:.1f} s under {LOAD_CONNECTIONS} connections: {sent} requests, "
        f"{failed} failed",
        f"reload: replay lag max {max(b for b, _ in lags) / 2**20:.1f} MiB, "
        f"{max(s for _, s in lags):.2f} s ({len(lags)} samples)",
        f"reload: dataset_load id primary {load_id}, replicas {replicas}",
    ]


def scenario_failures(paths: list[str]) -> list[str]:
    """Replica 2's host goes away (its PostgreSQL and its pgbouncer) and API replica 1 dies.

    API replica 2 read from PostgreSQL replica 2: its reads must move to replica 1.
    """
    paths = paths[2000:]
    replica = topology.replica_servers()[1]
    name, bouncer_port, server_port = topology.bouncers()[2]
    bouncer_pid = DATA / f"pgbouncer-{name}" / "pgbouncer.pid"
    api_pid_file = DATA / "api1" / "api.pid"
    with Load(paths) as load:
        time.sleep(3)
        stopped = time.monotonic()
        pg_servers.stop(replica, "immediate")
        topology.stop_pid_file(bouncer_pid, f"pgbouncer {name}", signal.SIGKILL)
        # The whole process group, master and workers at once, as if its machine had gone.
        os.killpg(int(api_pid_file.read_text()), signal.SIGKILL)
        api_pid_file.unlink()
        time.sleep(10)
        during = load.summary(stopped)
        kinds = dict(load.failures(stopped))
        last = load.last_failure()
        restarted = time.monotonic()
        pg_servers.start(replica)
        topology.start_bouncer(name, bouncer_port, server_port)
        topology.start_api(1)
        before_line = log_lines(NGINX_LOG)
        before_tx = transactions()
        # Longer than REPLICA_RECYCLE_S: API replica 2 renews its read connections and so
        # goes back to its own PostgreSQL replica.
        time.sleep(REJOIN_S)
        after = load.summary(restarted)
    upstreams = nginx_upstreams(before_line)
    tx_replica = transactions()[replica.data.name] - before_tx[replica.data.name]
    recovery = f"{last - stopped:.2f} s after the stop" if last and last >= stopped else "none"
    share = 100 * during[1] / max(during[0], 1)
    return [
        f"failures: replica2's PostgreSQL (immediate) and pgbouncer, and api1 (SIGKILL) stopped "
        f"under {LOAD_CONNECTIONS} connections: {during[1]} of {during[0]} requests failed "
        f"({share:.2f} %, by status {kinds}) in the next 10 s; last failure: {recovery}",
        f"failures: after restarting them, {after[1]} of {after[0]} failed in {REJOIN_S} s; "
        f"API replicas {dict(upstreams)}; replica2 ran {tx_replica} transactions",
    ]


def scenario_replica_behind_pooler(paths: list[str]) -> list[str]:
    """Replica 2's PostgreSQL alone stops (`-m immediate`); its pgbouncer keeps running, so API
    replica 2's connections still open and fail at their first statement: each such read runs
    again on the primary (api/routing.py). Then it starts again and is read from once more."""
    paths = paths[40000:]  # not the paths of the scenarios before: nginx has not cached them
    replica = topology.replica_servers()[1]
    logs = {n: DATA / f"api{n}" / "api.log" for n in (1, 2)}
    before = {n: log_lines(path) for n, path in logs.items()}
    with Load(paths) as load:
        time.sleep(3)
        stopped = time.monotonic()
        pg_servers.stop(replica, "immediate")
        time.sleep(10)
        restarted = time.monotonic()
        during = load.summary(stopped, restarted)
        kinds = dict(load.failures(stopped))
        pg_servers.start(replica)
        before_tx = transactions()
        time.sleep(10)
        after = load.summary(time.monotonic() - 10)
    tx_replica = transactions()[replica.data.name] - before_tx[replica.data.name]
    fallbacks = sum(
        "reading from the primary" in line
        for n, path in logs.items()
        for line in path.read_text(errors="replace").splitlines()[before[n] :]
    )
    share = 100 * during[1] / max(during[0], 1)
    return [
        f"replica behind pooler: replica2's PostgreSQL stopped (immediate), its pgbouncer "
        f"running, under {LOAD_CONNECTIONS} connections: {during[1]} of {during[0]} requests "
        f"failed ({share:.2f} %, by status {kinds}) in the next 10 s; "
        f"'reading from the primary' logged {fallbacks} times",
        f"replica behind pooler: after restarting it, {after[1]} of {after[0]} failed in 10 s; "
        f"replica2 ran {tx_replica} transactions",
    ]


def scenario_export(paths: list[str]) -> list[str]:
    """Exports under read load, past the poolers: complete, line for line."""
    paths = paths[2000:]
    results = []
    with Load(paths) as load:
        time.sleep(2)
        for year in (1990, 2000, 2010):
            query = f"genre=Drama&year_gte={year}"
            expected = json.loads(
                request("GET", f"/movies?{query}&count=exact&limit=1", address=next_address()).body
            )["total"]
            started = time.monotonic()
            exported = request(
                "GET", f"/movies/export?format=ndjson&{query}", address=next_address()
            )
            lines = exported.body.count(b"\n")
            results.append(
                f"{exported.status} {lines:,}/{expected:,} lines {time.monotonic() - started:.1f} s"
            )
    sent, failed = load.summary()
    return [
        f"export: 3 NDJSON exports under {LOAD_CONNECTIONS} connections: {'; '.join(results)}; "
        f"reads {sent} sent, {failed} failed"
    ]


def scenario_read_your_writes(_paths: list[str]) -> list[str]:
    misses = 0
    started = time.monotonic()
    for n in range(POST_GET_TRIES):
        address = next_address()  # a new client each try: its own cookie, its own rate bucket
        body = json.dumps({"title": f"Read your writes {n}", "year": 2001}).encode()
        created = request(
            "POST",
            "/movies",
            headers={**AUTH, "Content-Type": "application/json"},
            body=body,
            address=address,
        )
        assert created.status == 201, created.body  # type: ignore[attr-defined]
        cookie = created.getheader("Set-Cookie", "").split(";", 1)[0]
        found = request(
            "GET", created.getheader("Location"), headers={"Cookie": cookie}, address=address
        )
        misses += found.status != 200
    seconds = time.monotonic() - started
    return [
        f"read-your-writes: {POST_GET_TRIES} POST + GET through nginx: {misses} misses "
        f"({seconds:.1f} s)"
    ]


def scenario_rate_limit(_paths: list[str]) -> list[str]:
    address = next_address()
    before_line = log_lines(NGINX_LOG)
    statuses = Counter(
        request(
            "POST",
            "/movies",
            headers={**AUTH, "Content-Type": "application/json"},
            body=b"{}",
            address=address,
        ).status
        for _ in range(40)
    )
    upstreams = nginx_upstreams(before_line)
    redis_pid = DATA / "redis" / "redis.pid"
    topology.stop_pid_file(redis_pid, "redis")
    logs = {n: DATA / f"api{n}" / "api.log" for n in (1, 2)}
    before = {n: log_lines(path) for n, path in logs.items()}
    served = Counter(request("GET", "/genres", address=next_address()).status for _ in range(10))
    logged = sum(
        "rate-limit storage failed" in line
        for n, path in logs.items()
        for line in path.read_text(errors="replace").splitlines()[before[n] :]
    )
    topology.start_redis()
    return [
        f"rate limit: 40 POSTs from one address (limit 30/minute) over API replicas "
        f"{dict(upstreams)}: statuses {dict(statuses)}",
        f"rate limit: redis stopped: 10 GETs answered {dict(served)}; "
        f"'rate-limit storage failed' logged {logged} times",
    ]


SCENARIOS = {
    "spread": scenario_spread,
    "cache": scenario_cache,
    "reload": scenario_reload,
    "failures": scenario_failures,
    "replica-behind-pooler": scenario_replica_behind_pooler,
    "export": scenario_export,
    "read-your-writes": scenario_read_your_writes,
    "rate-limit": scenario_rate_limit,
}


def main(argv: list[str] | None = None) -> int:
    chosen = set(argv if argv is not None else sys.argv[1:]) or set(SCENARIOS)
    started_here = not all(topology.status(quiet=True).values())
    if started_here:
        topology.up()
    try:
        # Every movie once, in a random order: the first 2,000 for spread and cache, the rest
        # (68 k) for the loads, which so reach the API uncached.
        paths = movie_paths()
        report = []
        for name, scenario in SCENARIOS.items():
            if name in chosen:
                report += scenario(paths)
    except (AssertionError, subprocess.CalledProcessError, pg_servers.PgServerError) as exc:
        print(f"bench-scale failed: {exc!r}", file=sys.stderr)
        return 1
    finally:
        if started_here:
            topology.down()
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
