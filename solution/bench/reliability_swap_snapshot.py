"""Does a reader that waits for a partition swap see the swapped-in rows? Plain vs prepared.

The loader swaps `movie_imdb` in one transaction (DETACH the old partition, ATTACH the new one,
COMMIT); a reader's query waits for that lock. A plain SELECT takes its snapshot after the wait
and sees the new rows. An `EXECUTE` of a server-side prepared statement runs with the snapshot
taken before the wait, so it sees the new partition but none of its rows (written by a
transaction that had not committed yet): a GET answers 404, a page comes back empty.

This reproduces that on a scratch database of the reliability server (never the served one):

    .venv/bin/python solution/bench/reliability_swap_snapshot.py
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import psycopg2
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_stack import Database  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRATCH = "swap_snapshot_check"


def _connect(host: str, dbname: str, *, autocommit: bool = True):
    conn = psycopg2.connect(host=host, user="postgres", dbname=dbname)
    conn.autocommit = autocommit
    return conn


def rows_seen_by_waiting_reader(host: str, prepared: bool) -> int:
    """Rows a reader counts when its query waits for a swap that keeps the row (1 is right)."""
    reader = _connect(host, SCRATCH)
    cur = reader.cursor()
    if prepared:
        cur.execute("PREPARE q(int) AS SELECT count(*) FROM p WHERE id = $1")
        for _ in range(6):  # past the plan cache's custom plans
            cur.execute("EXECUTE q(1)")
            cur.fetchone()
    loader = _connect(host, SCRATCH, autocommit=False)
    loader.cursor().execute(
        "CREATE TABLE p_next (LIKE p_a); INSERT INTO p_next VALUES (1, 'a'); "
        "ALTER TABLE p DETACH PARTITION p_a; DROP TABLE p_a; "
        "ALTER TABLE p_next RENAME TO p_a; ALTER TABLE p ATTACH PARTITION p_a FOR VALUES IN ('a')"
    )
    seen: list[int] = []

    def read() -> None:
        cur.execute("EXECUTE q(1)" if prepared else "SELECT count(*) FROM p WHERE id = 1")
        seen.append(cur.fetchone()[0])

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.5)  # the reader is now waiting for the swap's lock
    loader.commit()
    thread.join(timeout=30)
    loader.close()
    reader.close()
    return seen[0] if seen else -1


def main() -> int:
    pgdata = REPO / ".data" / "reliability" / "pgdata"
    was_running = (pgdata / "PG_VERSION").exists() and Database(pgdata, "").is_running()
    db = Database.start(pgdata)
    host = sa.make_url(db.url).query["host"]
    admin = _connect(host, "postgres")
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
    admin.cursor().execute(f"CREATE DATABASE {SCRATCH}")
    try:
        setup = _connect(host, SCRATCH)
        setup.cursor().execute(
            "CREATE TABLE p (id int, src text) PARTITION BY LIST (src); "
            "CREATE TABLE p_a PARTITION OF p FOR VALUES IN ('a'); INSERT INTO p_a VALUES (1, 'a')"
        )
        setup.close()
        results = {
            kind: rows_seen_by_waiting_reader(host, kind == "prepared")
            for kind in ("plain", "prepared")
        }
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        admin.close()
        if not was_running:
            db.stop()
    for kind, rows in results.items():
        print(f"{kind:>8} statement waiting for the swap counted {rows} row(s); 1 is right")
    return 0 if all(rows == 1 for rows in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
