"""bench/bench_api.py's pure parts: wrk's output and arguments, the tables, the export schedule,
and the worker RSS sampler (on this test's own child process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import bench_api as bench
import instructions
import pytest

WRK_OUTPUT = """\
Running 3s test @ http://127.0.0.1:40000/movies
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.31ms    0.60ms  10.02ms   80.00%
    Req/Sec     3.01k   200.00     3.50k    70.00%
  Latency Distribution
     50%    1.20ms
     75%    1.50ms
     90%    2.00ms
     99%    3.76ms
  17973 requests in 3.00s, 5.93MB read
Requests/sec:   5991.00
Transfer/sec:      1.98MB
"""


def _wrk(rate: float, p99_ms: float) -> object:
    return bench.WrkResult(rate, p99_ms, 1000, 0, 0, 300_000)


def test_parse_wrk_reads_rate_p99_requests_and_bytes_read() -> None:
    figures = bench.parse_wrk(WRK_OUTPUT)
    assert figures.requests_per_s == 5991.0
    assert figures.p99_ms == pytest.approx(3.76)
    assert figures.requests == 17973
    assert figures.bytes_read == round(5.93 * 2**20)
    assert (figures.non_2xx, figures.socket_errors) == (0, 0)


def test_parse_wrk_without_p99_raises() -> None:
    with pytest.raises(bench.BenchError):
        bench.parse_wrk(WRK_OUTPUT.replace("     99%    3.76ms\n", ""))


def test_wrk_argv_passes_each_header_before_the_url() -> None:
    argv = bench.wrk_argv("http://h/movies", 3, 8, 2, ('If-None-Match: W/"x"',))
    assert argv[-3:] == ["-H", 'If-None-Match: W/"x"', "http://h/movies"]
    assert "-H" not in bench.wrk_argv("http://h/movies", 3, 8, 2)


@pytest.mark.parametrize(
    ("export_runs", "rounds", "expected"),
    [(3, 3, [1, 1, 1]), (3, 1, [3]), (3, 5, [1, 1, 1, 0, 0]), (4, 3, [2, 1, 1])],
)
def test_exports_in_round_spreads_the_downloads(
    export_runs: int, rounds: int, expected: list[int]
) -> None:
    spread = [bench.exports_in_round(r, export_runs, rounds) for r in range(rounds)]
    assert spread == expected


def test_render_table_shows_cached_and_uncached_with_their_verdicts() -> None:
    shapes = [bench.Shape("list", "/movies", 20), bench.Shape("deep", "", 0, skipped="few pages")]
    results = {
        bench.CEILING: [_wrk(4000, 5.0), _wrk(4000, 5.0)],
        bench.shape_key(bench.CACHED, "list"): [_wrk(3000, 10.0)],
        bench.shape_key(bench.UNCACHED, "list"): [_wrk(1000, 25.0)],
    }
    lines = bench.render_table(shapes, results)
    assert "| list | 20 | 3,000 | 10.0 | 75% | 1,000 | 25.0 | 25% |" in lines[3]
    assert lines[3].endswith("| yes / NO (< 50%, p99 > 20 ms) |")
    assert "not measured: few pages" in lines[4]


def test_render_discovery_checks_each_target_and_the_export() -> None:
    search = bench.Discovery("q=the", bench.UNCACHED, "/movies?q=the", "5 movies match", (), 30.0)
    not_modified = bench.Discovery("304", bench.CACHED, "/movies", "304", min_share=0.9)
    results = {
        bench.CEILING: [_wrk(4000, 5.0), _wrk(4000, 5.0)],
        search.key: [_wrk(800, 31.0)],
        not_modified.key: [_wrk(3800, 2.0)],
    }
    export = bench.ExportResult(16.0, 250 * 2**20, 700_000, 10 * 2**20, 4, 320)
    lines = bench.render_discovery([search, not_modified], results, [export])
    assert lines[2].endswith("| p99 <= 30 ms | NO (p99 > 30 ms) |")
    assert lines[3].endswith("| yes |")
    assert "700,000 lines" in lines[4]
    assert lines[4].endswith("| NO (> 15 s) |")


def test_rss_sampler_sees_the_children_of_a_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in bench.worker_pids(os.getpid())
        with bench.RssSampler(os.getpid(), interval_s=0.01) as rss:
            pass
        assert child.pid in rss.before
        assert rss.growth() >= 0
        assert rss.samples >= 2
    finally:
        child.kill()
        child.wait()


def test_render_cpu_shows_the_median_per_request_of_workers_and_postgres() -> None:
    def run(workers: float | None, database: float | None = None) -> object:
        return bench.WrkResult(1000, 5.0, 1000, 0, 0, 300_000, workers, database)

    shapes = [bench.Shape("list", "/movies", 20), bench.Shape("deep", "", 0, skipped="few pages")]
    results = {
        bench.CEILING: [run(500), run(600), run(700)],
        bench.shape_key(bench.CACHED, "list"): [run(550)],
        bench.shape_key(bench.UNCACHED, "list"): [run(1500, 200), run(1300, 300)],
    }
    lines = bench.render_cpu(shapes, results)
    assert lines[2] == f"| {bench.CEILING} | 600 | | |"
    assert lines[3] == "| list | 550 | 1,400 | 250 |"
    assert len(lines) == 4  # the skipped shape has no row
    results[bench.shape_key(bench.UNCACHED, "list")] = [run(1500)]
    assert bench.render_cpu(shapes, results)[3] == "| list | 550 | 1,500 | n/a |"


def test_cpu_meter_counts_the_children_of_a_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        meter = bench.CpuMeter([os.getpid(), None])
        meter.start()
        deadline = time.monotonic() + 10
        while bench.cpu_seconds([child.pid])[child.pid] < 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers, database = meter.per_request(100)
        assert workers is not None and workers > 0
        assert database is None
        assert meter.per_request(0) == [None, None]
    finally:
        child.kill()
        child.wait()


def test_comparison_verdict_names_each_missed_gate() -> None:
    assert bench.comparison_verdict(-0.095, 19.9, 0.95) == "yes"
    assert bench.comparison_verdict(-0.101, 19.9, 0.95) == "NO (lost > 10% req/s)"
    assert bench.comparison_verdict(0.2, 20.5, 0.89) == (
        "NO (p99 > 20 ms, cached < 90% of ceiling)"
    )


def test_paired_change_is_the_median_of_the_ratios_within_rounds() -> None:
    # A busy second round halves both sides: the ratio of medians would say -25 %, the pairs 0 %.
    new = [_wrk(800, 5.0), _wrk(400, 5.0), _wrk(790, 5.0)]
    old = [_wrk(800, 5.0), _wrk(400, 5.0), _wrk(1_000, 5.0)]
    assert bench.paired_change(new, old) == 0.0
    with pytest.raises(ValueError):
        bench.paired_change(new, old[:2])


def test_render_comparison_sets_baseline_beside_new_with_the_change() -> None:
    def run(rate: float, p99: float, database_us: float) -> object:
        return bench.WrkResult(rate, p99, 1000, 0, 0, 300_000, None, database_us)

    shape = bench.Shape("rare genre", "/movies?genre=Film-Noir", 20)
    results = {
        bench.CEILING: [_wrk(10_000, 2.0), _wrk(10_000, 2.0)],
        bench.shape_key(bench.CACHED, shape.label): [_wrk(9_500, 2.0)],
        bench.shape_key(bench.UNCACHED, shape.label): [run(800, 12.0, 450)],
        bench.shape_key(bench.BASELINE, shape.label): [run(1_000, 15.0, 300)],
    }
    skipped = bench.Shape("deep page", "", 0, skipped="fewer pages")
    table = bench.render_comparison([shape, skipped], results)
    assert len(table) == 3, "the skipped shape has no row"
    assert table[2] == (
        "| rare genre | 1,000 | 15.0 | 300 | 800 | 12.0 | 450 | -20% | 95% "
        "| NO (lost > 10% req/s) |"
    )


@pytest.mark.parametrize(
    ("changed", "differs"),
    [
        ([], False),
        (["solution/src/movies/query/compiled.py", "README.md"], False),
        (["sql-scripts/01-schema.sql"], True),
        (["solution/src/movies/loader/write.py"], True),
        (["solution/src/movies/schema.py"], True),
        (["solution/src/movies/schema_notes.md"], False),
    ],
)
def test_schema_differs_only_for_what_shapes_the_database(changed: list, differs: bool) -> None:
    assert bench.schema_differs(changed) is differs


def test_baseline_is_on_by_default_and_can_be_switched_off() -> None:
    assert bench.parse_args([]).baseline == bench.BASELINE_COMMIT
    assert bench.parse_args(["--baseline", "main"]).baseline == "main"
    assert bench.parse_args(["--no-baseline"]).baseline is None


def test_instructions_needs_the_bench_api_database(tmp_path) -> None:
    with pytest.raises(bench.BenchError, match="run make bench-api first"):
        instructions.side_env(tmp_path / "scale-9.9", None)
