"""The embedded PostgreSQL: a private server started by the project itself (no Docker, no service).

pgserver ships PostgreSQL 16 binaries in a wheel. The server listens on a Unix socket only and
keeps running after this process exits, so the demo, the CLI and a second terminal share it.
"""

from __future__ import annotations

import getpass
import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedDatabaseError(RuntimeError):
    """The embedded PostgreSQL could not be started."""


def start_embedded(pgdata: Path) -> str:
    """Start (or reuse) the embedded server whose files live in `pgdata`; return its URL.

    :raise EmbeddedDatabaseError: if pgserver is missing or the server does not start.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:  # pragma: no cover - depends on the platform's wheels
        raise EmbeddedDatabaseError(
            "the embedded PostgreSQL needs the 'pgserver' package (Python 3.9-3.12); "
            "install it or set DATABASE_URL"
        ) from exc
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The server outlives this process: the next command reuses it; `movies stop-db`
            # (or the test session's teardown) stops it.
            server = pgserver.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
        ) from exc
    url = server.get_uri()
    _tune_for_bulk_loads(url, server)
    log.info("embedded PostgreSQL running in %s", pgdata)
    return url


# A private single-node server has no replicas, so WAL beyond crash recovery is wasted work. With
# wal_level=minimal, the loader's COPY into and index builds on tables created in its own
# transaction skip WAL entirely (the files are synced at commit instead).
BULK_LOAD_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0"}


def _tune_for_bulk_loads(url: str, server) -> None:
    """Apply BULK_LOAD_SETTINGS once (they need a restart), then leave the server alone."""
    import psycopg2
    from pgserver._commands import pg_ctl

    conn = psycopg2.connect(url)
    conn.autocommit = True  # ALTER SYSTEM cannot run in a transaction block
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW wal_level")
            if cur.fetchone()[0] == BULK_LOAD_SETTINGS["wal_level"]:
                return
            for name, value in BULK_LOAD_SETTINGS.items():
                cur.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    finally:
        conn.close()
    try:
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)
    except Exception as exc:
        raise EmbeddedDatabaseError(
            f"could not restart the embedded PostgreSQL in {server.pgdata}: {exc}"
        ) from exc


def stop_embedded(pgdata: Path) -> bool:
    """Stop the embedded server whose files live in `pgdata`; return False if none was running.

    :raise EmbeddedDatabaseError: if the server does not stop.
    """
    if not (pgdata / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # see start_embedded
        from pgserver._commands import pg_ctl

    owner = pgdata.owner()  # pgserver runs the server as its own user when started by root
    user = owner if owner != getpass.getuser() else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except Exception as exc:
        raise EmbeddedDatabaseError(
            f"could not stop the embedded PostgreSQL in {pgdata}: {exc}"
        ) from exc
    return True
