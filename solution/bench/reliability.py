"""`make reliability`: the service under reload, killed loads, corrupt input, a database restart,
sustained load and hostile requests. Prints a table of figures; exits 1 if a target is missed.

Everything runs against a dedicated embedded PostgreSQL in .data/reliability/pgdata (its own
database, recreated per run) and a gunicorn on 127.0.0.1. Data sets are synthetic, generated once
and cached under .data/reliability/datasets/.

Scenarios (see solution/RELIABILITY.md):
  refresh   8 clients query while a full reload swaps in a slightly different data set
  kill      SIGKILL the loader in every phase: previous or complete new data, never a mix
  corrupt   truncated, empty, garbage, header-less ... inputs: clear failure, data intact
  hostile   injection-shaped, unicode, NUL, oversized requests: 4xx problem+json, never 5xx
  restart   stop PostgreSQL under traffic: fast 503s (kept responses for its first second);
            start it: recovery time
  sustain   64 connections for 60 s: zero errors, worker memory flat
  cache     a POST seen by /genres on every worker; no 304 over a 404; Vary: Origin; one
            worker's RSS over 30,000 distinct small URLs within its response cache budget
  export    two exports read at 500 KiB/s while the default list is measured with wrk and a
            load runs: downloads complete, load committed, list p99 <= 20 ms (runs last: it
            leaves its larger data set loaded)

Example: .venv/bin/python solution/bench/reliability.py --only refresh,kill
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_corrupt as corrupt  # noqa: E402
import reliability_export as export  # noqa: E402
import reliability_hostile as hostile  # noqa: E402
import reliability_memory as memory  # noqa: E402
from harness import server_env  # noqa: E402
from reliability_stack import (  # noqa: E402
    Api,
    Database,
    LoadRun,
    SwapProbe,
    fingerprint,
    leftover_tables,
    refresh_dataset,
    run_load,
    sample_ids,
    synthetic_dataset,
    wait_for,
    wait_until_unlocked,
)
from reliability_traffic import PROBLEM_JSON, RequestMix, Traffic, window  # noqa: E402

from movies.api.caching import VERSION_TTL_S  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("refresh", "kill", "corrupt", "hostile", "restart", "sustain", "cache", "export")
TOKEN = "reliability-token"
DB_NAME = "reliability"
USER_MOVIES = (
    {"title": 'A "quoted" user movie', "year": 1999, "genres": ["Drama"]},
    {"title": "NA", "year": 2024},
    {"title": "Ünïcödé ユーザー 🎬", "genres": ["Comedy", "Romance"]},
)


@dataclass
class Row:
    scenario: str
    figure: str
    value: str
    target: str = ""
    verdict: str = "info"  # "ok", "FAIL" or "info"


@dataclass
class Context:
    args: argparse.Namespace
    data_dir: Path
    db: Database
    engine: sa.Engine
    env: dict[str, str]
    api: Api
    datasets: dict[str, Path]
    reference: dict[str, dict] = field(default_factory=dict)  # data set -> its first full load
    current: str = ""  # which data set is served: "a" or "b"
    initial: LoadRun | None = None  # the first load (no traffic): the kill scenario's timeline
    rows: list[Row] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)

    def row(
        self,
        scenario: str,
        figure: str,
        value: object,
        target: str = "",
        passed: bool | None = None,
    ) -> None:
        verdict = "info" if passed is None else ("ok" if passed else "FAIL")
        self.rows.append(Row(scenario, figure, str(value), target, verdict))
        print(
            f"  [{verdict:>4}] {figure}: {value}" + (f"  (target {target})" if target else ""),
            flush=True,
        )

    def other(self) -> str:
        return "b" if self.current == "a" else "a"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f} ms"


IMDB_KEYS = ("movies", "checksum", "genre_links")


def same_imdb(fp: dict, ref: dict) -> bool:
    """The same IMDb data (rows, checksum, genre links)."""
    return all(fp[k] == ref[k] for k in IMDB_KEYS)


def same_data(fp: dict, ref: dict) -> bool:
    """The same IMDb data and the same user movies."""
    return same_imdb(fp, ref) and fp["user_movies"] == ref["user_movies"]


def api_view(ctx: Context) -> dict:
    """What the API serves, summarised: /dataset and the first pages of two sorts."""
    session = requests.Session()
    view = {"dataset": session.get(ctx.api.base_url + "/dataset", timeout=10).json()}
    for sort in ("title", "-rating"):
        body = session.get(ctx.api.base_url + f"/movies?sort={sort}&limit=100", timeout=10).json()
        view[sort] = body.get("items")
    return view


def load_fully(ctx: Context, name: str) -> LoadRun:
    """Load data set `name` ('a' or 'b') to completion; raise if it fails."""
    run = run_load(ctx.datasets[name], ctx.env, force=True)
    if run.returncode != 0:
        raise SystemExit(f"load of {name} failed ({run.returncode}): {run.stderr_text[-2000:]}")
    ctx.current = name
    ctx.reference.setdefault(name, fingerprint(ctx.engine))
    return run


# ----------------------------------------------------------------------------------------------
# 1. Refresh under load


def scenario_refresh(ctx: Context) -> None:
    args = ctx.args
    session = requests.Session()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = []
    for body in USER_MOVIES:
        response = session.post(ctx.api.base_url + "/movies", json=body, headers=auth, timeout=10)
        if response.status_code != 201:
            ctx.row(
                "refresh",
                "POST user movie",
                f"{response.status_code} {response.text[:200]}",
                "201",
                False,
            )
            continue
        created.append(response.json()["id"])
    users_api_before = {
        i: session.get(f"{ctx.api.base_url}/movies/{i}", timeout=10).json() for i in created
    }
    before = fingerprint(ctx.engine)
    target = ctx.other()
    ids = sample_ids(ctx.engine, 500, refresh_safe=(ctx.current == "a")) + created
    traffic = Traffic(ctx.api.base_url, RequestMix(ids), clients=args.clients).start()
    log(f"refresh: {args.clients} clients, {args.baseline:.0f} s baseline, then load {target}")
    time.sleep(args.baseline)
    t_load0 = traffic.now()
    run = run_load(ctx.datasets[target], ctx.env, force=True)
    t_load1 = traffic.now()
    time.sleep(args.after)
    t_end = traffic.now()
    samples = traffic.stop()
    loaded = run.returncode == 0
    after = fingerprint(ctx.engine)
    if loaded:
        ctx.current = target
        ctx.reference.setdefault(target, after)
    users_api_after = {
        i: session.get(f"{ctx.api.base_url}/movies/{i}", timeout=10).json() for i in created
    }

    base = window(samples, 0, t_load0)
    during = window(samples, t_load0, t_load1)
    rest = window(samples, t_load1, t_end)
    total = window(samples, 0, t_end)
    ctx.row(
        "refresh",
        "data set size (movies before -> after)",
        f"{before['movies']:,} -> {after['movies']:,}",
        ">= 100,000",
        min(before["movies"], after["movies"]) >= 100_000,
    )
    ctx.row("refresh", "reload", f"exit {run.returncode} in {run.seconds:.1f} s", "exit 0", loaded)
    ctx.row(
        "refresh",
        "requests served (before / during / after reload)",
        f"{base.requests:,} / {during.requests:,} / {rest.requests:,}",
    )
    ctx.row(
        "refresh",
        "failed requests",
        f"{total.failures} {_statuses(total.statuses, total.empty_pages)}",
        "0",
        total.failures == 0,
    )
    ctx.row("refresh", "p50 before / during reload", f"{ms(base.p50_ms)} / {ms(during.p50_ms)}")
    ctx.row(
        "refresh",
        "p99 before / during / after reload",
        f"{ms(base.p99_ms)} / {ms(during.p99_ms)} / {ms(rest.p99_ms)}",
    )
    ctx.row("refresh", "max latency during reload", ms(during.max_ms))
    ctx.row(
        "refresh", "throughput before / during reload", f"{base.rps:.0f} / {during.rps:.0f} req/s"
    )
    ctx.row(
        "refresh",
        "user movies before -> after (DB rows, API bodies)",
        f"{len(before['user_movies'])} -> {len(after['user_movies'])}, "
        f"{'identical' if users_api_after == users_api_before else 'CHANGED'}",
        "identical set",
        before["user_movies"] == after["user_movies"]
        and users_api_after == users_api_before
        and len(created) == len(USER_MOVIES),
    )
    ctx.row(
        "refresh",
        "data changed by the reload",
        before["checksum"] != after["checksum"],
        "True",
        before["checksum"] != after["checksum"],
    )
    ctx.details["refresh"] = {
        "windows": {
            k: asdict(v) for k, v in {"before": base, "during": during, "after": rest}.items()
        },
        "load_seconds": run.seconds,
        "load_stderr": run.stderr[-50:],
        "load_stdout": run.stdout,
        "errors": sorted({s.error for s in samples if s.error}),
        "failures": [
            {"at": round(s.started, 3), "path": s.path, "status": s.status, "items": s.items}
            for s in samples
            if s.status != 200 or s.empty_page
        ][:200],
        "load_started_at": t_load0,
        "load_ended_at": t_load1,
    }


def _statuses(statuses: dict[int, int], empty_pages: int = 0) -> str:
    parts = [f"{k or 'no response'}: {v}" for k, v in statuses.items() if k != 200]
    if empty_pages:
        parts.append(f"200 with an empty page: {empty_pages}")
    return f"({', '.join(parts)})" if parts else ""


# ----------------------------------------------------------------------------------------------
# 2. Killed loader


def scenario_kill(ctx: Context) -> None:
    args = ctx.args
    started = time.monotonic()
    # The phases and log lines of a load without traffic place the kill points.
    reference = ctx.initial or load_fully(ctx, ctx.other())
    if ctx.other() not in ctx.reference:
        load_fully(ctx, ctx.other())  # a kill may land after COMMIT: know the complete new data
    timeline = phase_timeline(reference)
    ctx.row(
        "kill",
        "reference load timeline (s)",
        ", ".join(f"{name} {end - start:.1f}" for name, start, end in timeline),
    )
    plan = kill_plan(reference, args.kill_runs)
    runs = []
    queue = [(point, True) for point in plan]
    while queue:
        point, may_retry = queue.pop(0)
        if time.monotonic() - started > args.kill_budget:
            ctx.row("kill", "planned kills skipped (time budget)", len(queue) + 1, "0", False)
            break
        before, view = fingerprint(ctx.engine), api_view(ctx)
        target = ctx.other()
        probe = SwapProbe(ctx.engine) if point.on_swap_lock else None
        try:
            run = run_load(
                ctx.datasets[target],
                ctx.env,
                force=True,
                kill_after=point.kill_after,
                kill_on=(point.anchor, point.delay) if point.anchor else None,
                kill_when=probe,
            )
        finally:
            if probe:
                probe.close()
        unlocked = wait_until_unlocked(ctx.engine, timeout=120)
        after, view_after = fingerprint(ctx.engine), api_view(ctx)
        killed = run.killed_at is not None and run.returncode != 0
        new = ctx.reference[target]
        if same_data(after, before):
            outcome, api_ok = "previous data", view_after == view
        elif same_imdb(after, new) and after["user_movies"] == before["user_movies"]:
            # Killed after COMMIT (or not killed at all): the complete new data, also correct.
            outcome = "complete new data (killed after COMMIT)" if killed else "finished"
            api_ok = view_after["dataset"].get("movies") == new["movies"]
            ctx.current = target
        else:
            outcome, api_ok = "MIXED OR DAMAGED DATA", False
        record = {
            "planned_phase": point.phase,
            "plan": point.label,
            "phase": observed_phase(run) if killed else "-",
            "killed_at": run.killed_at,
            "exit": run.returncode,
            "killed": killed,
            "swap_lock_seen": probe.seen if probe else None,
            "last_log_line": run.last_line_before(run.killed_at or run.seconds),
            "outcome": outcome,
            "api_consistent": api_ok,
            "lock_released_after_s": unlocked,
            "leftover_tables": leftover_tables(ctx.engine),
            "orphan_processes": run.orphans,
        }
        if killed and args.reload_after_kill:
            next_run = run_load(ctx.datasets[ctx.other()], ctx.env, force=True)
            record["next_load_exit"] = next_run.returncode
            record["next_load_seconds"] = round(next_run.seconds, 2)
            if next_run.returncode == 0:
                ctx.current = ctx.other()
                fp = fingerprint(ctx.engine)
                record["next_load_complete"] = same_imdb(fp, ctx.reference[ctx.current])
        elif not killed and may_retry and run.returncode == 0:
            queue.insert(0, (point.sooner(), False))
        runs.append(record)
        log(f"kill {point.phase} [{point.label}]: {json.dumps(record, default=str)}")

    killed_runs = [r for r in runs if r["killed"]]
    ctx.details["kill"] = {"reference_stderr": reference.stderr, "timeline": timeline, "runs": runs}
    ctx.row(
        "kill",
        "runs: killed / finished before the kill",
        f"{len(killed_runs)} / {len(runs) - len(killed_runs)}",
        ">= 10 killed",
        len(killed_runs) >= 10,
    )
    ctx.row(
        "kill",
        "kills per phase (seen in the loader's log)",
        ", ".join(f"{k} {v}" for k, v in Counter(r["phase"] for r in killed_runs).items()),
        "each phase",
        {r["phase"] for r in killed_runs} >= {"startup", "parse", "copy", "index", "swap"},
    )
    outcomes = Counter(r["outcome"] for r in killed_runs)
    ctx.row(
        "kill",
        "data after a kill (DB fingerprint)",
        ", ".join(f"{k}: {v}" for k, v in outcomes.items()),
        "previous or complete new",
        not any(r["outcome"].startswith("MIXED") for r in runs),
    )
    ctx.row(
        "kill",
        "API consistent with the DB after a kill",
        f"{sum(r['api_consistent'] for r in runs)} of {len(runs)}",
        "all",
        all(r["api_consistent"] for r in runs),
    )
    ctx.row(
        "kill",
        "staging tables left behind",
        sum(bool(r["leftover_tables"]) for r in runs),
        "0",
        not any(r["leftover_tables"] for r in runs),
    )
    waits = [r["lock_released_after_s"] for r in killed_runs]
    ctx.row(
        "kill",
        "load lock released after a kill (max)",
        "never" if None in waits else f"{max(waits, default=0):.2f} s",
    )
    nexts = [r for r in killed_runs if "next_load_exit" in r]
    ok = [r for r in nexts if r["next_load_exit"] == 0 and r.get("next_load_complete")]
    ctx.row(
        "kill",
        "next load after a kill succeeds (complete data)",
        f"{len(ok)} of {len(nexts)}",
        "all",
        bool(nexts) and len(ok) == len(nexts),
    )
    in_swap = [r for r in killed_runs if r["phase"] == "swap"]
    ctx.row(
        "kill",
        "kills inside the swap: rolled back / committed",
        f"{sum(r['outcome'] == 'previous data' for r in in_swap)} / "
        f"{sum(r['outcome'].startswith('complete new') for r in in_swap)}",
    )
    orphans = sum(r["orphan_processes"] for r in runs)
    if orphans:
        ctx.row("kill", "loader children left running after SIGKILL", orphans, "0", False)


PHASE_SECONDS = re.compile(r"^\s*seconds\s+(.*?),\s*total", re.MULTILINE)
PHASE_LOG = re.compile(r"\b(download|parse|copy|index|swap):\s+\d[\d.]*\s?s\b")
NEXT_PHASE = {"download": "parse", "parse": "copy", "copy": "index", "index": "swap"}
# Kills per phase (10 runs): the swap is the shortest phase but the one that decides atomicity.
KILL_SHARES = {"startup": 1, "download": 0, "parse": 2, "copy": 2, "index": 2, "swap": 3}
# Where in a phase the kills land (share of its reference duration; phases vary with load).
KILL_FRACTIONS = {1: (0.25,), 2: (0.1, 0.4), 3: (0.05, 0.25, 0.5)}
# Seconds after the swap's first ACCESS EXCLUSIVE lock is seen.
SWAP_DELAYS = (0.0, 0.002, 0.01)
CACHE_WINDOW_MARGIN_S = 0.5  # the stop's own duration, a request's time in the queue


@dataclass(frozen=True)
class KillPoint:
    phase: str
    label: str
    kill_after: float | None = None  # seconds after the start
    anchor: re.Pattern[str] | None = None  # or: this stderr line ...
    delay: float = 0.0  # ... plus this many seconds
    on_swap_lock: bool = False  # ... then wait for the swap's lock first

    def sooner(self) -> KillPoint:
        """The same point, earlier: for a retry when the load finished before the kill."""
        return KillPoint(
            self.phase,
            self.label + " (retried sooner)",
            None if self.kill_after is None else self.kill_after * 0.6,
            self.anchor,
            self.delay * 0.3,
            self.on_swap_lock,
        )


def phase_timeline(reference: LoadRun) -> list[tuple[str, float, float]]:
    """(phase, start, end) offsets of a finished load, from the report's `seconds` line; the
    time before the first phase (interpreter start, schema, lock) is called `startup`."""
    match = PHASE_SECONDS.search(reference.stdout)
    if not match:
        return [("load", 0.0, reference.seconds)]
    durations = []
    for part in match.group(1).split(","):
        name, _, value = part.strip().rpartition(" ")
        durations.append((name, float(value)))
    start = max(reference.seconds - sum(d for _, d in durations) - 0.05, 0.0)
    timeline = [("startup", 0.0, start)]
    for name, duration in durations:
        timeline.append((name, start, start + duration))
        start += duration
    return timeline


def observed_phase(run: LoadRun) -> str:
    """The phase a killed load was in: the one after the last `<phase>: N s` line it logged."""
    last = ""
    for offset, line in run.stderr:
        if run.killed_at is not None and offset > run.killed_at:
            break
        match = PHASE_LOG.search(line)
        if match:
            last = match.group(1)
    if not last:
        return "startup"
    return NEXT_PHASE.get(last, "after the swap")


def kill_plan(reference: LoadRun, runs: int) -> list[KillPoint]:
    """Kill points spread over the phases of the reference load. A kill in a phase is anchored
    on the log line that ends the phase before it (`copy: 4.61 s`) plus a share of the phase's
    reference duration; swap kills wait for the swap's ACCESS EXCLUSIVE lock after the `copy:`
    line; without such log lines a kill is a plain offset from the start."""
    timeline = phase_timeline(reference)
    shares = {name: KILL_SHARES.get(name, 1) for name, _, _ in timeline}
    total = sum(shares.values()) or 1
    counts = {n: (max(1, round(sh * runs / total)) if sh else 0) for n, sh in shares.items()}
    logged = {m.group(1) for _, line in reference.stderr if (m := PHASE_LOG.search(line))}
    plan: list[KillPoint] = []
    for i, (name, start, end) in enumerate(timeline):
        n = counts[name]
        previous = timeline[i - 1][0] if i else ""
        if name == "swap" and "copy" in logged:
            anchor = re.compile(r"\bcopy:\s+\d[\d.]*\s?s\b")
            for delay in (SWAP_DELAYS * n)[:n]:
                label = f"{delay * 1000:.0f} ms after the swap's lock is seen"
                plan.append(KillPoint(name, label, anchor=anchor, delay=delay, on_swap_lock=True))
            continue
        fractions = KILL_FRACTIONS.get(n, tuple((k + 0.25) / n for k in range(n)))
        for fraction in fractions:
            delay = fraction * (end - start)
            if previous in logged:
                anchor = re.compile(rf"\b{re.escape(previous)}:\s+\d[\d.]*\s?s\b")
                label = f"{delay:.2f} s after the '{previous}:' line"
                plan.append(KillPoint(name, label, anchor=anchor, delay=delay))
            else:
                label = f"{start + delay:.2f} s after the start"
                plan.append(KillPoint(name, label, kill_after=start + delay))
    return plan


# ----------------------------------------------------------------------------------------------
# 3. Corrupt input


def scenario_corrupt(ctx: Context) -> None:
    good = ctx.datasets["a"]
    root = ctx.data_dir / "datasets" / "corrupt" / good.name
    results = []
    for case in corrupt.CASES:
        folder = corrupt.build_case(case, good, root)
        before, view = fingerprint(ctx.engine), api_view(ctx)
        run = run_load(folder, ctx.env, force=True, timeout=300)
        after = fingerprint(ctx.engine)
        leftovers = leftover_tables(ctx.engine)
        lines = [line for _, line in run.stderr if line.strip()]
        last = lines[-1] if lines else ""
        clear = (
            run.returncode not in (0, None)
            and "Traceback" not in run.stderr_text
            and last.startswith("Error:")
        )
        if run.returncode == 0:
            # Loaded: the bad rows must be skipped (and counted), the rest equal a clean load.
            ctx.current = "a"
            clean = ctx.reference["a"]
            skips = [
                " ".join(ln.split())
                for ln in run.stdout.splitlines()
                if any(word in ln.lower() for word in ("skip", "duplicate", "without"))
                and not ln.startswith("loaded ")
            ]
            identical = same_imdb(after, clean)
            passed = case.expect != "fail" and after["movies"] == clean["movies"]
            outcome = (
                f"loaded; {'; '.join(skips) or 'no skip count reported'}; data "
                f"{'identical to' if identical else 'differs from'} the clean load"
            )
        else:
            intact = same_data(after, before) and api_view(ctx) == view
            passed = case.expect != "skip" and clear and intact and not leftovers
            outcome = (
                f"exit {run.returncode}: {last.replace(str(folder.parent) + '/', '')[:110]}"
                + ("" if intact else "; SERVED DATA CHANGED")
                + ("" if clear else "; NOT ONE CLEAR LINE")
            )
        results.append(
            {
                "case": case.name,
                "expect": case.expect,
                "exit": run.returncode,
                "stderr_tail": lines[-5:],
                "stdout": run.stdout[-2000:],
                "leftovers": leftovers,
                "passed": passed,
                "seconds": run.seconds,
            }
        )
        target = {
            "fail": "clear error, data intact",
            "skip": "load, count skips",
            "either": "load, or clear error",
        }[case.expect]
        ctx.row("corrupt", case.name, outcome, target, passed)
    ctx.details["corrupt"] = results


# ----------------------------------------------------------------------------------------------
# 4. Hostile requests


def scenario_hostile(ctx: Context) -> None:
    session = requests.Session()
    first = session.get(ctx.api.base_url + "/movies?sort=-rating&limit=5", timeout=10).json()
    some_id = first["items"][0]["id"] if first.get("items") else "tt0000001"
    cases = hostile.build_hostile_requests(
        hostile.list_parameters_from_spec(),
        token=TOKEN,
        cursor=first.get("next_cursor") or "",
        movie_id=some_id,
    )
    before = fingerprint(ctx.engine)
    results = [hostile.send(session, ctx.api.base_url, case) for case in cases]
    after = fingerprint(ctx.engine)
    failed = [r for r in results if not r.passed]
    five = [r for r in results if r.status >= 500 or r.status == 0]
    ctx.row("hostile", "requests sent", len(results))
    ctx.row("hostile", "5xx or no response", len(five), "0", not five)
    ctx.row(
        "hostile",
        "not as expected (4xx problem+json / any 4xx / < 500)",
        len(failed),
        "0",
        not failed,
    )
    ctx.row("hostile", "slowest response", f"{max(r.seconds for r in results) * 1000:.0f} ms")
    ctx.row(
        "hostile",
        "data unchanged (IMDb rows, user movies)",
        same_data(after, before),
        "True",
        same_data(after, before),
    )
    for r in failed[:25]:
        ctx.row(
            "hostile",
            f"  {r.request.name}",
            f"{r.status} {r.content_type}",
            r.request.expect,
            False,
        )
    ctx.details["hostile"] = [
        {
            "name": r.request.name,
            "target": r.request.target[:200],
            "status": r.status,
            "content_type": r.content_type,
            "expect": r.request.expect,
            "passed": r.passed,
        }
        for r in results
    ]


# ----------------------------------------------------------------------------------------------
# 5. Database restart under traffic


def scenario_restart(ctx: Context) -> None:
    args = ctx.args
    ids = sample_ids(ctx.engine, 300, refresh_safe=False)
    workers_before = {p.pid for p in ctx.api.worker_processes()}
    traffic = Traffic(ctx.api.base_url, RequestMix(ids), clients=args.clients, timeout=30)
    traffic.start()
    time.sleep(3)
    t_stop0 = traffic.now()
    ctx.db.stop()
    t_down = traffic.now()
    log(f"restart: PostgreSQL stopped in {t_down - t_stop0:.2f} s")
    probe = requests.Session()
    ready = probe.get(ctx.api.base_url + "/readyz", timeout=30)
    health = probe.get(ctx.api.base_url + "/healthz", timeout=30)
    time.sleep(args.outage)
    t_start0 = traffic.now()
    ctx.db.start_again()
    t_up = traffic.now()
    log(f"restart: PostgreSQL started in {t_up - t_start0:.2f} s")

    def recovered() -> bool:
        recent = traffic.recent(1.0)
        return bool(recent) and all(s.status == 200 for s in recent)

    wait_for(recovered, timeout=30, interval=0.1)
    time.sleep(2)
    t_end = traffic.now()
    samples = traffic.stop()
    workers_after = {p.pid for p in ctx.api.worker_processes()}

    outage = [s for s in samples if t_down <= s.started < t_start0]
    statuses = {}
    for s in outage:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    problem = sum(1 for s in outage if s.status == 503 and s.content_type == PROBLEM_JSON)
    # A worker that read the data version just before the stop answers repeated URLs from its
    # response cache (correct data, no query) until the version is VERSION_TTL_S old.
    cache_window = VERSION_TTL_S + CACHE_WINDOW_MARGIN_S
    cached = [s for s in outage if s.status == 200 and s.started < t_down + cache_window]
    late = [s for s in outage if s.status != 503 and s not in cached]
    after_up = [s for s in samples if s.started >= t_up]
    first_ok = next((s.started + s.seconds for s in after_up if s.status == 200), None)
    last_bad = max((s.started + s.seconds for s in after_up if s.status != 200), default=t_up)
    latencies = [s.seconds * 1000 for s in outage]
    ctx.row("restart", "requests while PostgreSQL was down", len(outage))
    ctx.row(
        "restart",
        "answers while down (status: count)",
        ", ".join(f"{k or 'conn error'}: {v}" for k, v in sorted(statuses.items())),
        f"503, or 200 in the first {cache_window:g} s (kept responses)",
        bool(outage) and not late and 503 in statuses,
    )
    ctx.row("restart", "200s from kept responses, first s of the outage", len(cached))
    ctx.row(
        "restart",
        "503s with a problem+json body",
        f"{problem} of {statuses.get(503, 0)}",
        "all",
        problem == statuses.get(503, 0) > 0,
    )
    ctx.row(
        "restart",
        "max latency while down",
        ms(max(latencies, default=float("nan"))),
        "< 2000 ms",
        bool(latencies) and max(latencies) < 2000,
    )
    ctx.row(
        "restart",
        "/readyz and /healthz while down",
        f"{ready.status_code} / {health.status_code}",
        "503 / 200",
        ready.status_code == 503 and health.status_code == 200,
    )
    ctx.row("restart", "pg_ctl start took", f"{t_up - t_start0:.2f} s")
    first = "never" if first_ok is None else f"{first_ok - t_up:.2f} s"
    ctx.row(
        "restart",
        "server up -> first 200 / all 200",
        f"{first} / {last_bad - t_up:.2f} s",
        "<= 5 s",
        first_ok is not None and last_bad - t_up <= 5,
    )
    ctx.row(
        "restart",
        "gunicorn workers replaced",
        len(workers_before - workers_after),
        "0",
        workers_before == workers_after,
    )
    ctx.details["restart"] = {
        "outage_statuses": statuses,
        "t_down": t_down,
        "t_up": t_up,
        "t_end": t_end,
        "errors": sorted({s.error for s in samples}),
    }


# ----------------------------------------------------------------------------------------------
# 6. Sustained load


def scenario_sustain(ctx: Context) -> None:
    args = ctx.args
    ids = sample_ids(ctx.engine, 1000, refresh_safe=False)
    workers_before = {p.pid for p in ctx.api.worker_processes()}
    traffic = Traffic(
        ctx.api.base_url, RequestMix(ids), clients=args.sustain_clients, timeout=30, seed=7
    ).start()
    log(f"sustain: {args.sustain_clients} connections for {args.sustain_seconds:.0f} s")
    time.sleep(5)
    rss_start = ctx.api.worker_rss()
    peak = dict(rss_start)
    t0 = traffic.now()
    deadline = time.monotonic() + args.sustain_seconds
    while time.monotonic() < deadline:
        time.sleep(min(5, max(0.0, deadline - time.monotonic())))
        for pid, rss in ctx.api.worker_rss().items():
            peak[pid] = max(peak.get(pid, 0), rss)
    rss_end = ctx.api.worker_rss()
    t1 = traffic.now()
    samples = traffic.stop()
    workers_after = {p.pid for p in ctx.api.worker_processes()}
    w = window(samples, t0, t1)
    growth = {pid: (rss_end.get(pid, 0) - rss_start[pid]) / 2**20 for pid in rss_start}
    ctx.row("sustain", "connections x seconds", f"{args.sustain_clients} x {t1 - t0:.0f} s")
    ctx.row("sustain", "requests / throughput", f"{w.requests:,} / {w.rps:.0f} req/s")
    ctx.row(
        "sustain",
        "errors",
        f"{w.failures} {_statuses(w.statuses, w.empty_pages)}",
        "0",
        w.failures == 0,
    )
    ctx.row("sustain", "p50 / p99 / max", f"{ms(w.p50_ms)} / {ms(w.p99_ms)} / {ms(w.max_ms)}")
    start_mb = ", ".join(f"{v / 2**20:.0f}" for v in rss_start.values())
    end_mb = ", ".join(f"{rss_end.get(pid, 0) / 2**20:.0f}" for pid in rss_start)
    ctx.row("sustain", "worker RSS start -> end (MB)", f"[{start_mb}] -> [{end_mb}]")
    worst = max(growth.values(), default=0.0)
    ctx.row(
        "sustain", "worker RSS growth (max over workers)", f"{worst:+.1f} MB", "< 20 MB", worst < 20
    )
    ctx.row(
        "sustain",
        "gunicorn workers replaced",
        len(workers_before - workers_after),
        "0",
        workers_before == workers_after,
    )
    ctx.details["sustain"] = {
        "window": asdict(w),
        "rss_start": rss_start,
        "rss_end": rss_end,
        "rss_peak": peak,
    }


# ----------------------------------------------------------------------------------------------
# 7. The caches: answers that follow the data, and memory within the budget


def genre_count(base_url: str, name: str) -> int:
    """The /genres count of `name`, on a new connection (so any worker may answer)."""
    response = requests.get(base_url + "/genres", headers={"Connection": "close"}, timeout=10)
    return next(item["movies"] for item in response.json()["items"] if item["name"] == name)


def scenario_cache(ctx: Context) -> None:
    session = requests.Session()
    base = ctx.api.base_url
    # Enough requests that every worker keeps the old count before the POST.
    before = {genre_count(base, "Film-Noir") for _ in range(40)}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"title": "Cache check", "genres": ["Film-Noir"]}
    created = session.post(base + "/movies", json=body, headers=auth, timeout=10)
    expected = max(before) + 1
    waited = wait_for(lambda: genre_count(base, "Film-Noir") == expected, timeout=10)
    time.sleep(VERSION_TTL_S)  # every worker's version read again by now
    counts = {genre_count(base, "Film-Noir") for _ in range(40)}
    first_seen = ms((waited or math.nan) * 1000)
    ctx.row(
        "cache",
        "/genres after a POST (Film-Noir, 40 requests over the workers)",
        f"{sorted(before)} -> {sorted(counts)} (first seen after {first_seen})",
        f"[{expected}] within {VERSION_TTL_S:.0f} s",
        created.status_code == 201 and counts == {expected},
    )
    future = "Fri, 01 Jan 2100 00:00:00 GMT"
    statuses = sorted(
        session.get(base + path, headers=headers, timeout=10).status_code
        for path in ("/movies/tt9999999", "/movies?limit=0")
        for headers in ({"If-Modified-Since": future}, {"If-None-Match": "*"})
    )
    ctx.row(
        "cache", "conditional GETs of a 404 and a 400", statuses, "[400, 400, 404, 404]",
        statuses == [400, 400, 404, 404],
    )  # fmt: skip
    vary = session.get(base + "/movies?limit=1", timeout=10).headers.get("Vary", "")
    ctx.row("cache", "Vary of a data GET (CORS *)", vary, "Origin", "Origin" in vary)
    ids = memory.movie_ids(ctx.engine, memory.URLS + memory.WARM_UP)
    log(f"cache: {len(ids):,} one-movie pages on one worker, cache {memory.CACHE_MB} MiB")
    growth = memory.measure_cache_growth(ctx.env, ctx.data_dir / "logs" / "cache-memory.log", ids)
    ctx.row(
        "cache",
        f"worker RSS growth, {growth.urls:,} distinct one-movie pages, cache {growth.cache_mb} MiB",
        f"{growth.rss_before / 2**20:.0f} -> {growth.rss_after / 2**20:.0f} MiB "
        f"({growth.growth_mib:+.1f} MiB)",
        f"<= {growth.limit_mib:.0f} MiB",
        growth.within_budget,
    )


# ----------------------------------------------------------------------------------------------
# 8. Slow exports during a load


EXPORT_FORMATS = ("csv", "ndjson")
EXPORT_RATE = 500 * 1024  # bytes per second of each slow client
EXPORT_LIST_P99_MS = 20.0
SWAP_PHASE = re.compile(r"\bswap: ([\d.]+) s\b")


def scenario_export(ctx: Context) -> None:
    args = ctx.args
    dataset, _ = synthetic_dataset(
        ctx.data_dir / "datasets", scale=args.export_scale, seed=args.seed
    )
    first = run_load(dataset, ctx.env, force=True)
    if first.returncode != 0:
        raise RuntimeError(f"load of the export data set failed: {first.stderr_text[-500:]}")
    ctx.current = "export"
    session = requests.Session()
    movies = session.get(ctx.api.base_url + "/movies?count=exact&limit=1", timeout=30)
    expected = movies.json()["total"]
    ctx.row("export", "movies exported (default filters)", f"{expected:,}")
    list_url = ctx.api.base_url + "/movies"
    seconds = args.export_wrk_seconds
    baseline = export.wrk(list_url, seconds, args.clients)
    workers_before = {p.pid for p in ctx.api.worker_processes()}
    t0 = time.monotonic()
    downloads = {
        fmt: export.Background(
            lambda fmt=fmt: export.slow_download(ctx.api.base_url, fmt, EXPORT_RATE)
        )
        for fmt in EXPORT_FORMATS
    }
    time.sleep(1)  # both downloads under way
    log(f"export: load started; wrk on /movies ({args.clients} connections, {seconds} s)")
    listing = export.Background(lambda: export.wrk(list_url, seconds, args.clients))
    loaded = run_load(dataset, ctx.env, force=True)
    committed = time.monotonic() - t0
    log(f"export: load ended ({loaded.returncode}) in {loaded.seconds:.1f} s")
    during = listing.result()
    done = {fmt: d.result() for fmt, d in downloads.items()}
    workers_after = {p.pid for p in ctx.api.worker_processes()}
    retries = [line for _, line in loaded.stderr if "swap attempt" in line]
    ctx.row(
        "export",
        "load during the downloads",
        f"exit {loaded.returncode} in {loaded.seconds:.1f} s, {len(retries)} swap retries",
        "committed (exit 0)",
        loaded.returncode == 0,
    )
    ends = ", ".join(f"{fmt} {d.seconds:.0f} s" for fmt, d in done.items())
    ctx.row(
        "export",
        "load ended / downloads ended (s after their start)",
        f"{committed:.0f} s / {ends}",
        "load first",
        all(committed < d.seconds for d in done.values()),
    )
    for fmt, d in done.items():
        want = expected + (1 if fmt == "csv" else 0)
        how = "ended cleanly" if d.complete else (d.error or f"status {d.status}")
        ctx.row(
            "export",
            f"{fmt} download at 500 KiB/s",
            f"{d.lines:,} lines, {d.body_bytes / 2**20:.1f} MiB in {d.seconds:.0f} s, {how}",
            f"{want:,} lines, ended cleanly",
            d.complete and d.lines == want,
        )
    ctx.row("export", "GET /movies before: p99 / max (no export, no load)", _wrk_figures(baseline))
    errors = during.non_2xx + during.socket_errors
    ctx.row(
        "export",
        "GET /movies during exports + load: p99",
        _wrk_figures(during),
        f"<= {EXPORT_LIST_P99_MS:g} ms, 0 errors",
        during.p99_ms <= EXPORT_LIST_P99_MS and errors == 0,
    )
    swap = SWAP_PHASE.search(loaded.stderr_text)
    # Readers wait while the swap holds the tables (until its commit), so the slowest list
    # request is about the swap phase; an export holding a lock would add the swap's retries.
    ctx.row(
        "export",
        "slowest GET /movies / the load's swap phase",
        f"{during.max_ms:.0f} ms / {swap.group(1) if swap else '?'} s",
    )
    ctx.row(
        "export",
        "gunicorn workers replaced",
        len(workers_before - workers_after),
        "0",
        workers_before == workers_after,
    )
    ctx.details["export"] = {
        "expected_movies": expected,
        "downloads": {fmt: asdict(d) for fmt, d in done.items()},
        "load_seconds": loaded.seconds,
        "load_committed_s": committed,
        "load_stderr_tail": loaded.stderr_text[-2000:],
        "wrk_before": asdict(baseline),
        "wrk_during": asdict(during),
    }


def _wrk_figures(run: export.ListRun) -> str:
    errors = run.non_2xx + run.socket_errors
    return (
        f"{run.p99_ms:.1f} ms / {run.max_ms:.0f} ms, {run.requests_per_s:,.0f} req/s, "
        f"{errors} errors"
    )


# ----------------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    widths = [
        max(
            len(getattr(r, f))
            for r in rows + [Row("scenario", "figure", "value", "target", "verdict")]
        )
        for f in ("scenario", "figure", "value", "target")
    ]
    widths = [min(w, cap) for w, cap in zip(widths, (8, 52, 70, 30), strict=True)]
    header = Row("scenario", "figure", "value", "target", "verdict")
    print()
    for r in [header] + rows:
        cells = [
            getattr(r, f)[:w].ljust(w)
            for f, w in zip(("scenario", "figure", "value", "target"), widths, strict=True)
        ]
        print(" | ".join(cells + [r.verdict]))


def load_average() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def machine_summary() -> str:
    """CPUs, memory and the load average: the machine is shared, so figures carry its load."""
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} CPUs, {memory:.0f} GiB RAM, load average {load_average()}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios from {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--scale", type=float, default=0.15, help="synthetic scale (0.15: about 105 k movies)"
    )
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--data-dir", type=Path, default=REPO / ".data" / "reliability")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds before the reload")
    parser.add_argument("--after", type=float, default=5.0, help="seconds after the reload")
    parser.add_argument("--kill-runs", type=int, default=10)
    parser.add_argument("--kill-budget", type=float, default=480.0, help="seconds for kills")
    parser.add_argument("--no-reload-after-kill", dest="reload_after_kill", action="store_false")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--sustain-clients", type=int, default=64)
    parser.add_argument("--sustain-seconds", type=float, default=60.0)
    parser.add_argument(
        "--export-scale", type=float, default=0.2, help="export data set (0.2: about 140 k movies)"
    )
    parser.add_argument("--export-wrk-seconds", type=int, default=40, help="each wrk run")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    return args


def prepare_database(server: Database) -> str:
    """A fresh database on the embedded server, with the schema; returns its URL."""
    from movies import schema

    admin = sa.create_engine(
        sa.make_url(server.url).set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{DB_NAME}" TEMPLATE template0 ENCODING "UTF8"')
    admin.dispose()
    url = sa.make_url(server.url).set(database=DB_NAME).render_as_string(hide_password=False)
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg2"))
    schema.apply(engine)
    engine.dispose()
    return url


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    data_dir = args.data_dir.resolve()
    datasets_dir = data_dir / "datasets"
    datasets_dir.mkdir(parents=True, exist_ok=True)
    log(f"reliability: data in {data_dir}; scenarios {', '.join(args.only)}")

    a, gen_seconds = synthetic_dataset(datasets_dir, scale=args.scale, seed=args.seed)
    log(f"data set a: {a}" + (f" (generated in {gen_seconds:.0f} s)" if gen_seconds else ""))
    b, derive_seconds = refresh_dataset(a, datasets_dir)
    log(f"data set b: {b}" + (f" (derived in {derive_seconds:.0f} s)" if derive_seconds else ""))

    server = Database.start(data_dir / "pgdata")
    db = Database(server.pgdata, prepare_database(server))
    # The benchmarks' environment (venv on PATH, this database), minus any MOVIES_* of the caller.
    env = {k: v for k, v in server_env(db.url, data_dir).items() if not k.startswith("MOVIES_")}
    env.update(
        MOVIES_DATA_DIR=str(data_dir),
        MOVIES_API_TOKENS=TOKEN,
        MOVIES_LOG_LEVEL="info",
        # The harness is one client address sending far more than a person would; the limits
        # are a door of their own, tested in tests/integration/test_api_security.py.
        MOVIES_RATE_LIMIT_READS="off",
        MOVIES_RATE_LIMIT_WRITES="off",
        PYTHONUNBUFFERED="1",
    )
    api = Api(env, data_dir / "logs" / "gunicorn.log", workers=args.workers)
    ctx = Context(args, data_dir, db, db.engine(), env, api, {"a": a, "b": b})
    code = 0
    try:
        first = ctx.initial = load_fully(ctx, "a")
        movies = ctx.reference["a"]["movies"]
        log(f"initial load of a: {first.seconds:.1f} s, {movies:,} movies")
        ctx.row("setup", "initial load (a)", f"{first.seconds:.1f} s, {movies:,} movies")
        api.start()
        time.sleep(2)
        if api.server.process and api.server.process.poll() is not None:
            # Seen once: a worker failed to boot (schema applied by 4 workers at once) and
            # gunicorn's master shut down. Report it, then start again so the run goes on.
            failure = next(
                (ln for ln in api.server.log_tail(200).splitlines() if "Error" in ln), "?"
            )
            ctx.row("setup", "gunicorn start", f"master exited: {failure[:150]}", "up", False)
            api = ctx.api = Api(env, data_dir / "logs" / "gunicorn-2.log", workers=args.workers)
            api.start()
        ctx.row("setup", "gunicorn workers", len(api.worker_processes()))
        ctx.row("setup", "machine", machine_summary())
        for name in SCENARIOS:
            if name not in args.only:
                continue
            log(f"--- {name}")
            t0 = time.monotonic()
            try:
                globals()[f"scenario_{name}"](ctx)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                ctx.row(name, "scenario aborted", f"{type(exc).__name__}: {exc}"[:300], "", False)
                if not db.is_running():
                    db.start_again()
            ctx.row(name, "scenario wall time", f"{time.monotonic() - t0:.0f} s")
    finally:
        api.stop()
        try:
            db.stop()
        except Exception as exc:  # noqa: BLE001 - report, do not mask the run's own error
            log(f"could not stop PostgreSQL: {exc}")
        ctx.engine.dispose()
    ctx.row("total", "load average at the end (1 / 5 / 15 min)", load_average())
    ctx.row(
        "total",
        "wall time",
        f"{time.monotonic() - t_start:.0f} s",
        "< 900 s",
        time.monotonic() - t_start < 900,
    )
    print_table(ctx.rows)
    out = data_dir / "results.json"
    out.write_text(
        json.dumps(
            {"rows": [asdict(r) for r in ctx.rows], "details": ctx.details}, indent=1, default=str
        )
    )
    print(f"\nfull results: {out}")
    if any(r.verdict == "FAIL" for r in ctx.rows):
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
