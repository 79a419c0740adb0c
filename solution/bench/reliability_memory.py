"""What the response cache really holds: a worker's RSS growth over many distinct small URLs.

The cache's budget (`MOVIES_RESPONSE_CACHE_MB`) must bound what a worker holds, objects and
headers included, not only body bytes. One gunicorn worker with a budget of `cache_mb` MiB
serves `urls` distinct one-movie pages (GET /movies/<id>, each about 400 bytes), one request
at a time; its VmRSS is read from /proc before (after a warm-up) and after. The target: growth
<= 1.5 x the budget + FIXED_MIB.

Used by `make reliability` (scenario `cache`); on its own, against any loaded database:

    DATABASE_URL=postgresql://... .venv/bin/python solution/bench/reliability_memory.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_stack import Api  # noqa: E402

URLS = 30_000
CACHE_MB = 8
FIXED_MIB = 4  # interpreter arenas, the URL map's and the pool's first use
WARM_UP = 500


@dataclass(frozen=True)
class CacheGrowth:
    urls: int
    cache_mb: int
    rss_before: int
    rss_after: int

    @property
    def growth_mib(self) -> float:
        return (self.rss_after - self.rss_before) / 2**20

    @property
    def limit_mib(self) -> float:
        return 1.5 * self.cache_mb + FIXED_MIB

    @property
    def within_budget(self) -> bool:
        return self.growth_mib <= self.limit_mib


def movie_ids(engine: sa.Engine, count: int) -> list[str]:
    """`count` IMDb ids, in id order."""
    with engine.connect() as conn:
        statement = sa.text("SELECT id FROM movie_imdb ORDER BY id LIMIT :n")
        return list(conn.execute(statement, {"n": count}).scalars())


def vm_rss(pid: int) -> int:
    """VmRSS of `pid` in bytes, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def measure_cache_growth(
    env: dict[str, str], log_path: Path, ids: Sequence[str], cache_mb: int = CACHE_MB
) -> CacheGrowth:
    """Serve one GET /movies/<id> per id from a one-worker API with a `cache_mb` MiB cache.

    :raise RuntimeError: if a request fails or the worker is not found.
    """
    api = Api({**env, "MOVIES_RESPONSE_CACHE_MB": str(cache_mb)}, log_path, workers=1)
    api.start()
    try:
        [worker] = api.worker_processes()
        session = requests.Session()

        def get(path: str) -> None:
            response = session.get(api.base_url + path, timeout=30)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code}")

        # Every code path used once before the baseline.
        for movie_id in ids[:WARM_UP]:
            get(f"/movies/{movie_id}")
        rss_before = vm_rss(worker.pid)
        for movie_id in ids[WARM_UP:]:
            get(f"/movies/{movie_id}")
        return CacheGrowth(len(ids) - WARM_UP, cache_mb, rss_before, vm_rss(worker.pid))
    finally:
        api.stop()


def main() -> int:
    from harness import server_env

    from movies.db import create_engine

    url = os.environ["DATABASE_URL"]
    engine = create_engine(url)
    ids = movie_ids(engine, URLS + WARM_UP)
    engine.dispose()
    env = server_env(url, Path(tempfile.mkdtemp(prefix="cache-memory-")))
    env["MOVIES_RATE_LIMIT_READS"] = "off"
    result = measure_cache_growth(env, Path(env["MOVIES_DATA_DIR"]) / "gunicorn.log", ids)
    print(
        f"{result.urls:,} distinct one-movie pages, MOVIES_RESPONSE_CACHE_MB={result.cache_mb}: "
        f"worker RSS {result.rss_before / 2**20:.1f} -> {result.rss_after / 2**20:.1f} MiB "
        f"({result.growth_mib:+.1f} MiB; target <= {result.limit_mib:.0f} MiB)"
    )
    return 0 if result.within_budget else 1


if __name__ == "__main__":
    raise SystemExit(main())
