"""Instructions per request of one URL in the API process, this code beside a baseline commit.

Requests/s on a shared machine drift by tens of percent from run to run; the instructions a
request costs do not. valgrind's callgrind counts the instructions of a Python process that
serves the URL through the whole WSGI stack (Flask's test client, response cache off) N and
N + 200 times, each after 20 warm-up requests; the difference divided by 200 is the cost of one
request, start-up and imports cancelled out. PostgreSQL's share is not counted (another
process): compare the statements with `movies explain`.

It reads the databases `make bench-api` leaves in .data/bench-api/ (this code's and, when the
schema differs, the baseline's own) and starts them if they are stopped.

Example:
    .venv/bin/python solution/bench/instructions.py '/movies?sort=-year&limit=50'
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_api import BASELINE_COMMIT, CACHE_ENV, DATA_ROOT, prepare_baseline
from harness import BenchError, EmbeddedDatabase, server_env

WARM_UP = 20
MEASURED = 200
_SERVE = """
import sys
from movies.app import create_app
client = create_app().test_client()
for _ in range(int(sys.argv[2])):
    response = client.get(sys.argv[1])
    assert response.status_code == 200, (response.status_code, response.data[:300])
"""


def instructions(python: str, env: dict[str, str], url: str, requests: int) -> int:
    """Instructions callgrind counts for a process that serves `url` `requests` times."""
    with tempfile.TemporaryDirectory(prefix="instructions-") as scratch:
        result = subprocess.run(
            [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out",
                python, "-c", _SERVE, url, str(requests),
            ],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or not found:
        raise BenchError(f"{url}: the measured process failed:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def per_request(python: str, env: dict[str, str], url: str) -> float:
    low = instructions(python, env, url, WARM_UP)
    high = instructions(python, env, url, WARM_UP + MEASURED)
    return (high - low) / MEASURED


def side_env(
    data_dir: Path, pythonpath: str | None, databases: list[EmbeddedDatabase] | None = None
) -> dict[str, str]:
    """The environment of one side: its database (started if needed, and then appended to
    `databases` to be stopped at the end), no response cache."""
    if not (data_dir / "pgdata").exists():
        raise BenchError(f"no database in {data_dir}: run make bench-api first")
    database = EmbeddedDatabase(data_dir)
    url = database.start()
    if databases is not None:
        databases.append(database)
    env = {**os.environ, **server_env(url, data_dir), CACHE_ENV: "0"}
    env["MOVIES_RATE_LIMIT_READS"] = "1000000/minute"
    env["MOVIES_LOG_LEVEL"] = "warning"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("urls", nargs="+", metavar="URL", help="path with its query string")
    parser.add_argument("--baseline", default=BASELINE_COMMIT, metavar="COMMIT")
    parser.add_argument("--scale", default="1.0", help="the bench-api data set [default: 1.0]")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is missing: sudo apt-get install -y valgrind", file=sys.stderr)
        return 1
    databases: list[EmbeddedDatabase] = []
    try:
        data_dir = DATA_ROOT / "bench-api" / f"scale-{args.scale}"
        baseline = prepare_baseline(args.baseline)
        baseline_dir = data_dir
        if baseline.own_database:
            baseline_dir = data_dir.with_name(f"{data_dir.name}-baseline-{baseline.commit[:12]}")
        sides = {
            "new": side_env(data_dir, None, databases),
            f"baseline {baseline.commit[:12]}": side_env(
                baseline_dir, str(baseline.src), databases
            ),
        }
        for url in args.urls:
            new, old = (per_request(sys.executable, env, url) for env in sides.values())
            print(f"{url}: {new:,.0f} instructions per request, baseline {old:,.0f} "
                  f"({new / old - 1:+.1%})")  # fmt: skip
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for database in databases:
            database.stop()  # only a server this run started
    return 0


if __name__ == "__main__":
    sys.exit(main())
