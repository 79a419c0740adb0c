"""`make reliability`: the service under reload, killed loads, corrupt input, a database restart,
sustained load and hostile requests. Prints a table of figures; exits 1 if a target is missed.

Everything runs against a dedicated embedded PostgreSQL in .data/reliability/pgdata (its own
database, recreated per run) and a gunicorn on 127.0.0.1. Data sets are synthetic, generated once
and cached under .data/reliability/datasets/.

Scenarios (see solution/RELIABILITY.md):
  refresh   8 clients query while a full reload swaps in a slightly different data set
  kill      SIGKILL the loader at many points of a load; the served data must not change
  corrupt   truncated, empty, garbage, header-less ... inputs: clear failure, data intact
  hostile   injection-shaped, unicode, NUL, oversized requests: 4xx problem+json, never 5xx
  restart   stop PostgreSQL under traffic: fast 503s; start it: recovery time
  sustain   64 connections for 60 s: zero errors, worker memory flat

Example: .venv/bin/python solution/bench/reliability.py --only refresh,kill
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_corrupt as corrupt  # noqa: E402
import reliability_hostile as hostile  # noqa: E402
from harness import server_env  # noqa: E402
from reliability_stack import (  # noqa: E402
    Api,
    Database,
    LoadRun,
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

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("refresh", "kill", "corrupt", "hostile", "restart", "sustain")
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
        f"{total.failures} {_statuses(total.statuses)}",
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
    }


def _statuses(statuses: dict[int, int]) -> str:
    bad = {k: v for k, v in statuses.items() if k != 200}
    return "" if not bad else "(" + ", ".join(f"{k or 'conn'}: {v}" for k, v in bad.items()) + ")"


# ----------------------------------------------------------------------------------------------
# 2. Killed loader

PHASE_WORDS = re.compile(
    r"download|fetch|read|pars|transform|copy|stag|index|analy|swap|attach|detach|commit|"
    r"lock|vacuum|genre|rating|basics",
    re.IGNORECASE,
)


def phase_of(line: str) -> str:
    """A log line reduced to its phase: numbers and timings removed, first words kept."""
    text = re.sub(r"^\S+ \S+ ", "", line) if re.match(r"^\d{4}-\d\d-\d\d", line) else line
    text = re.sub(r"[\d.,:]+( ?(s|ms|rows|%|M|k))?", "#", text)
    return " ".join(text.split()[:6])[:60]


def scenario_kill(ctx: Context) -> None:
    args = ctx.args
    started = time.monotonic()
    # A reference load without traffic: its duration and log lines place the kill points.
    reference = load_fully(ctx, ctx.other())
    log(
        f"kill: reference load of {ctx.current} took {reference.seconds:.1f} s, "
        f"{len(reference.stderr)} stderr lines"
    )
    ctx.row("kill", "reference load (no traffic)", f"{reference.seconds:.1f} s")
    plan = kill_plan(reference, args.kill_runs)
    runs = []
    for label, kill_after, kill_on in plan:
        if time.monotonic() - started > args.kill_budget:
            ctx.row("kill", "runs skipped (time budget)", len(plan) - len(runs), "", False)
            break
        before, view = fingerprint(ctx.engine), api_view(ctx)
        target = ctx.other()
        run = run_load(
            ctx.datasets[target], ctx.env, force=True, kill_after=kill_after, kill_on=kill_on
        )
        unlocked = wait_until_unlocked(ctx.engine, timeout=120)
        after, view_after = fingerprint(ctx.engine), api_view(ctx)
        completed = run.killed_at is None and run.returncode == 0
        record = {
            "plan": label,
            "killed_at": run.killed_at,
            "last_log_line": run.last_line_before(run.killed_at or run.seconds),
            "exit": run.returncode,
            "completed_before_kill": completed,
            "lock_released_after_s": unlocked,
            "leftover_tables": leftover_tables(ctx.engine),
            "orphan_children": run.orphans,
        }
        if completed:
            ctx.current = target
            record["db_unchanged"] = record["api_unchanged"] = True
            record["loaded_reference_data"] = same_imdb(after, ctx.reference[target])
        else:
            record["db_unchanged"] = same_data(after, before)
            record["api_unchanged"] = view_after == view
            if args.reload_after_kill:
                next_run = load_fully(ctx, target)
                record["next_load_exit"] = next_run.returncode
                record["next_load_seconds"] = round(next_run.seconds, 2)
        runs.append(record)
        log(f"kill [{label}] at {run.killed_at or 0:.2f} s: {json.dumps(record, default=str)}")

    killed = [r for r in runs if not r["completed_before_kill"]]
    ctx.details["kill"] = {"reference_stderr": reference.stderr, "runs": runs}
    ctx.row(
        "kill",
        "runs (killed / finished before the kill)",
        f"{len(killed)} / {len(runs) - len(killed)}",
        ">= 10 killed",
        len(killed) >= 10,
    )
    ctx.row(
        "kill",
        "phases hit (last log line before the kill)",
        "; ".join(sorted({phase_of(r["last_log_line"]) or "(no log yet)" for r in killed})),
    )
    ctx.row(
        "kill",
        "served data changed after a kill (DB / API)",
        f"{sum(not r['db_unchanged'] for r in runs)} / {sum(not r['api_unchanged'] for r in runs)}",
        "0 / 0",
        all(r["db_unchanged"] and r["api_unchanged"] for r in runs),
    )
    ctx.row(
        "kill",
        "staging tables left behind",
        sum(bool(r["leftover_tables"]) for r in runs),
        "0",
        not any(r["leftover_tables"] for r in runs),
    )
    waits = [r["lock_released_after_s"] for r in killed]
    ctx.row(
        "kill",
        "load lock released after a kill (max)",
        "never" if None in waits else f"{max(waits, default=0):.1f} s",
    )
    nexts = [r["next_load_exit"] for r in killed if "next_load_exit" in r]
    ctx.row(
        "kill",
        "next load after a kill succeeds",
        f"{sum(n == 0 for n in nexts)} of {len(nexts)}",
        "all",
        bool(nexts) and all(n == 0 for n in nexts),
    )
    orphans = sum(r["orphan_children"] for r in runs)
    if orphans:
        ctx.row("kill", "loader children left running after SIGKILL", orphans, "0", False)


def kill_plan(reference: LoadRun, runs: int) -> list[tuple[str, float | None, tuple | None]]:
    """Kill points: right after each phase the loader logs (up to half the runs, spread over
    the phases), the rest at fractions of the reference load's duration."""
    phases: list[str] = []
    seen: set[str] = set()
    for _offset, line in reference.stderr:
        phase = phase_of(line)
        if phase and phase not in seen and PHASE_WORDS.search(line):
            seen.add(phase)
            phases.append(line)
    by_log = min(len(phases), runs // 2)
    chosen = [phases[round(i * (len(phases) - 1) / max(by_log - 1, 1))] for i in range(by_log)]
    plan: list[tuple[str, float | None, tuple | None]] = [
        (f"log: {phase_of(line)}", None, (re.compile(_pattern_of(line)), 0.05)) for line in chosen
    ]
    fractions = [0.03, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.88, 0.94, 0.98, 0.995]
    timed = max(runs - len(plan), 0)
    for i in range(timed):
        fraction = fractions[round(i * (len(fractions) - 1) / max(timed - 1, 1))]
        plan.append((f"time: {fraction:.1%} of the load", fraction * reference.seconds, None))
    return plan


def _pattern_of(line: str) -> str:
    """A regex matching log lines of the same phase as `line` (numbers may differ)."""
    words = phase_of(line).split()
    return r"\s*".join(re.escape(w).replace("\\#", r"[^ ]*") for w in words[:4])


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
            skips = [ln.strip() for ln in run.stdout.splitlines() if "skip" in ln.lower()]
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
                f"exit {run.returncode}: {last[:110]}"
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
        recent = [s for s in list(_live(traffic)) if s.started >= traffic.now() - 1.0]
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
    after_up = [s for s in samples if s.started >= t_up]
    first_ok = next((s.started + s.seconds for s in after_up if s.status == 200), None)
    last_bad = max((s.started + s.seconds for s in after_up if s.status != 200), default=t_up)
    latencies = [s.seconds * 1000 for s in outage]
    ctx.row("restart", "requests while PostgreSQL was down", len(outage))
    ctx.row(
        "restart",
        "answers while down (status: count)",
        ", ".join(f"{k or 'conn error'}: {v}" for k, v in sorted(statuses.items())),
        "all 503",
        set(statuses) == {503},
    )
    ctx.row(
        "restart",
        "503s with a problem+json body",
        f"{problem} of {statuses.get(503, 0)}",
        "all",
        problem == len(outage) and bool(outage),
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


def _live(traffic: Traffic):
    for per in traffic._samples:
        yield from per[-200:]


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
    ctx.row("sustain", "errors", f"{w.failures} {_statuses(w.statuses)}", "0", w.failures == 0)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios from {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--scale", type=float, default=0.17, help="synthetic scale (0.17 is about 118 k movies)"
    )
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--data-dir", type=Path, default=REPO / ".data" / "reliability")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds before the reload")
    parser.add_argument("--after", type=float, default=5.0, help="seconds after the reload")
    parser.add_argument("--kill-runs", type=int, default=12)
    parser.add_argument("--kill-budget", type=float, default=330.0, help="seconds for kills")
    parser.add_argument("--no-reload-after-kill", dest="reload_after_kill", action="store_false")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--sustain-clients", type=int, default=64)
    parser.add_argument("--sustain-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    return args


def prepare_database(server: Database) -> str:
    """A fresh database on the embedded server, with the schema; returns its URL."""
    from movies.schema import apply_schema

    admin = sa.create_engine(
        sa.make_url(server.url).set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{DB_NAME}" TEMPLATE template0 ENCODING "UTF8"')
    admin.dispose()
    url = sa.make_url(server.url).set(database=DB_NAME).render_as_string(hide_password=False)
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg2"))
    apply_schema(engine)
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
        PYTHONUNBUFFERED="1",
    )
    api = Api(env, data_dir / "logs" / "gunicorn.log", workers=args.workers)
    ctx = Context(args, data_dir, db, db.engine(), env, api, {"a": a, "b": b})
    code = 0
    try:
        first = load_fully(ctx, "a")
        movies = ctx.reference["a"]["movies"]
        log(f"initial load of a: {first.seconds:.1f} s, {movies:,} movies")
        ctx.row("setup", "initial load (a)", f"{first.seconds:.1f} s, {movies:,} movies")
        api.start()
        ctx.row("setup", "gunicorn workers", len(api.worker_processes()))
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
