"""The database extension and the per-request connection.

`db` is created unbound and bound in the app factory. A request takes at most one pooled
connection, lazily (so /healthz never touches the database), and returns it at teardown.
The engine runs in autocommit mode, so a read is one round trip per statement (no BEGIN, no
ROLLBACK). A write request switches its connection to a real transaction and commits it.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import g
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


def get_connection(*, write: bool = False) -> sa.Connection:
    """The request's connection (taken from the pool on first use)."""
    conn = g.get("db_connection")
    if conn is None:
        conn = db.engine.connect()
        if write:
            # A real transaction; the pool puts the connection back in autocommit afterwards.
            conn.execution_options(isolation_level="READ COMMITTED")
        g.db_connection = conn
    return conn


def close_connection(_exc: BaseException | None = None) -> None:
    """Return the request's connection to the pool (rolling back anything uncommitted)."""
    conn = g.pop("db_connection", None)
    if conn is not None:
        conn.close()
