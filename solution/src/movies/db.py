"""Database connections: resolve the URL (embedded or DATABASE_URL), and every engine's URL and
options (the API's, through Flask-SQLAlchemy, and the CLI's and loader's). No queries."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, cursor

from movies.config import Settings
from movies.embedded import start_embedded
from movies.prepared import PREPARED_OPTION


def database_url(settings: Settings) -> str:
    """The URL to use: DATABASE_URL when set, else the embedded server (started if needed)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.pgdata)


def create_engine(url: str, *, statement_timeout_ms: int | None = None, **kwargs) -> sa.Engine:
    """An engine on psycopg2 whose connections carry a statement timeout."""
    connect_args = dict(kwargs.pop("connect_args", {}))
    if statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={statement_timeout_ms}"
    return sa.create_engine(engine_url(url), connect_args=connect_args, **kwargs)


def engine_url(url: str) -> str:
    """The URL with the psycopg2 driver spelled out (SQLAlchemy 2.1 defaults to psycopg 3)."""
    url_obj = sa.make_url(url)
    if url_obj.drivername == "postgresql":
        url_obj = url_obj.set(drivername="postgresql+psycopg2")
    return url_obj.render_as_string(hide_password=False)


def engine_options(settings: Settings) -> dict:
    """Engine options: statement timeout, fast connect failure, no liveness check on checkout.

    A pre-ping would cost every request a second round trip. Without it, a request that meets a
    connection the server dropped (restart, failover) fails fast with 503: the driver error marks
    the connection invalid, the pool discards it, and the next request connects afresh.
    """
    options = (
        f"-c statement_timeout={settings.statement_timeout_ms} "
        # Parallel plans only add latency to small LIMITed queries on a shared host.
        "-c max_parallel_workers_per_gather=0 "
        # The data set lives in memory: a random page read costs about what a sequential one
        # does. At the default (4, a spinning disk) the planner walked the title index past
        # 14,000 rows for genre=Film-Noir (60-100 ms) rather than fetch its 759 rows by the
        # GIN index and sort them (2-4 ms).
        "-c random_page_cost=1.1"
    )
    return {
        # Reads are single statements: autocommit spares a BEGIN and a ROLLBACK round trip each.
        "isolation_level": "AUTOCOMMIT",
        "pool_size": settings.gunicorn_threads,
        "max_overflow": settings.gunicorn_threads,
        "connect_args": {
            "options": options,
            "connect_timeout": settings.db_connect_timeout_s,
            # Behind a transaction pooler (prepared statements off) `options` are dropped.
            **(
                {}
                if settings.prepared_statements
                else {"cursor_factory": timed_cursor(settings.statement_timeout_ms)}
            ),
        },
        "execution_options": {PREPARED_OPTION: settings.prepared_statements},
    }


@functools.cache
def timed_cursor(statement_timeout_ms: int) -> type[cursor]:
    """A psycopg2 cursor class that sends `SET LOCAL statement_timeout` with the first statement
    of each transaction, in the same round trip (one query string).

    Used with MOVIES_PREPARED_STATEMENTS=off, the setting for a pooler in transaction mode; a
    direct connection has the timeout from its `options` and pays nothing. The connection's
    `options` set the timeout for the session, but a pooler in transaction mode (pgbouncer)
    cannot pass them on: behind it a session setting would reach one server
    connection and leak to other clients. A `SET LOCAL` lasts until its transaction ends, and
    in autocommit mode (every read) each statement is one, so each read carries the API's
    timeout to whichever server connection runs it. PostgreSQL runs a string of several
    statements as one implicit transaction, so the setting holds for the statement after it.

    The cost is the parsing of a tiny statement, no round trip (pgbench through pgbouncer:
    0.11-0.13 ms per `SELECT 1`, with or without it). The other ways fall short: a role setting
    (`ALTER ROLE ... SET`) is the database's, not this variable's, and pgbouncer's
    `query_timeout` closes the client's connection instead of cancelling the statement, which
    the API would take for a lost connection, not a timeout.

    Only the first statement of a transaction carries it, so a transaction that sets its own
    timeout afterwards (a migration's `SET LOCAL statement_timeout = 0`) keeps it. Named
    (server-side) cursors run as they are: a DECLARE cannot follow another statement.
    """
    prefix = f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "

    class TimedCursor(cursor):
        def execute(self, query: Any, params: Any = None) -> None:
            if (
                self.name is None
                and self.connection.get_transaction_status() == TRANSACTION_STATUS_IDLE
            ):
                if isinstance(query, bytes):
                    query = prefix.encode() + query
                elif isinstance(query, str):
                    query = prefix + query
            return super().execute(query, params)

    return TimedCursor
