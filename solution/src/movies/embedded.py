"""The embedded PostgreSQL: a private server started by the project itself (no Docker, no service).

pgserver ships PostgreSQL 16 binaries in a wheel. The server listens on a Unix socket only and
keeps running after this process exits, so the demo, the CLI and a second terminal share it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedDatabaseError(RuntimeError):
    """The embedded PostgreSQL could not be started."""


def start_embedded(pgdata: Path, *, stop_on_exit: bool = False) -> str:
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
            server = pgserver.get_server(pgdata, cleanup_mode="stop" if stop_on_exit else None)
    except Exception as exc:
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
        ) from exc
    log.info("embedded PostgreSQL running in %s", pgdata)
    return server.get_uri()
