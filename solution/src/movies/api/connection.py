"""The database extension and the per-request connection.

`db` is created unbound and bound in the app factory. A request takes at most one pooled
connection, lazily (so /healthz never touches the database), and returns it at teardown.
The engine runs in autocommit mode, so a read is one round trip per statement (no BEGIN, no
ROLLBACK). A write request switches its connection to a real transaction and commits it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import sqlalchemy as sa
from flask import g
from flask_sqlalchemy import SQLAlchemy

from movies.api.routing import REPLICA_BIND, read_again_on_primary, read_connection
from movies.config import Settings
from movies.db import engine_options, engine_url

db = SQLAlchemy()
P = ParamSpec("P")
R = TypeVar("R")


EXPORT_BIND = "export"
# Read connections are renewed this often: with a URL naming several replicas (libpq takes the
# first that accepts), connections that moved on while a replica was down go back to it.
REPLICA_RECYCLE_S = 30


def replica_binds(settings: Settings) -> dict[str, dict]:
    """SQLALCHEMY_BINDS: the engines of `settings.database_read_url` and `database_export_url`."""
    options = {**engine_options(settings), "pool_recycle": REPLICA_RECYCLE_S}
    urls = {REPLICA_BIND: settings.database_read_url, EXPORT_BIND: settings.database_export_url}
    return {bind: {"url": engine_url(url), **options} for bind, url in urls.items() if url}


def read_engine() -> sa.Engine:
    """The engine that serves reads: the replica's (api/routing.py), else the primary's."""
    return db.engines.get(REPLICA_BIND, db.engine)


def export_engine() -> sa.Engine:
    """The engine that serves exports: DATABASE_EXPORT_URL's, else the one of the other reads."""
    return db.engines.get(EXPORT_BIND) or read_engine()


def get_connection(*, write: bool = False) -> sa.Connection:
    """The request's connection (taken from the pool on first use).

    Writes use the primary; reads the replica when there is one (api/routing.py).
    """
    conn = g.get("db_connection")
    if conn is None:
        if write:
            conn = db.engine.connect()
            # A real transaction; the pool puts the connection back in autocommit afterwards.
            conn.execution_options(isolation_level="READ COMMITTED")
        else:
            replica = None if g.get("db_primary_only") else db.engines.get(REPLICA_BIND)
            g.db_replica_read = replica is not None
            conn = read_connection(db.engine, replica)
        g.db_connection = conn
    return conn


def reads_replica_or_primary(view: Callable[P, R]) -> Callable[P, R]:
    """Make `view` (a read: GET) run once more on the primary if its replica connection was lost.

    A replica's pooler may accept the connection and fail its first statement (its server has
    gone), where api/routing.read_connection cannot see it; the answer is then the primary's,
    in the same request, never a 503 (api/routing.py). `view` runs again from the start: it has
    changed nothing, and its answer is only returned once it is complete.
    """

    @functools.wraps(view)
    def view_with_fallback(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return view(*args, **kwargs)
        except sa.exc.DBAPIError as exc:
            on_replica = g.pop("db_replica_read", False)
            conn = g.pop("db_connection", None)
            replica = db.engines.get(REPLICA_BIND)
            if not (on_replica and replica and read_again_on_primary(replica, conn, exc)):
                g.db_connection = conn  # closed at teardown as usual
                raise
        g.db_primary_only = True
        return view(*args, **kwargs)

    return view_with_fallback


def close_connection(_exc: BaseException | None = None) -> None:
    """Return the request's connection to the pool (rolling back anything uncommitted)."""
    conn = g.pop("db_connection", None)
    if conn is not None:
        conn.close()
