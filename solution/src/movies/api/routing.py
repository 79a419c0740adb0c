"""Which PostgreSQL server a request talks to: reads to the replica, writes to the primary.

With `settings.database_read_url` set, the app has a second engine (the Flask-SQLAlchemy bind
`replica`) and every read request takes its connection from it; POST /movies, migrations and the
loader use the primary (`database_url`). Without it, reads use the primary too.

Read-your-writes: a streaming replica replays the primary's WAL a little later (milliseconds;
seconds during a full reload). So that a client that creates a movie can read it back at its
`Location` at once, the answer to a write carries the primary's WAL position after the commit
(the write's LSN) in a short-lived signed cookie. A read that brings the cookie asks the replica
whether it has replayed that far (`pg_last_wal_replay_lsn()`, one cheap statement) and, if not,
reads from the primary instead. Routing to the primary, rather than waiting for the replica,
adds no latency and cannot time out; the primary serves only the few reads of clients that have
just written, for at most the cookie's lifetime. Every other read pays nothing. A cookie that
does not verify (tampered, expired, another key) is ignored: the read goes to the replica.

A replica that cannot be reached (down, restarting, its pooler refusing logins) sends reads to
the primary, connection by connection, until it answers again. A replica whose connection is
lost after it was made (the server restarted under the pool, or a pooler that still accepts
clients while its server is down: the read fails at its first statement, not at connect) costs
the read one more try, on the primary, within the same request (`read_again_on_primary`, called
by connection.reads_replica_or_primary for the views and by caching for the data version). A
read changes nothing, so trying it again is safe; writes never are tried again. Only a lost
connection counts: a statement that fails on its own (a statement timeout, bad SQL) fails as it
would on the primary. The lost connection is invalidated (the pool opens a new one); no
liveness check on checkout (pool_pre_ping) is needed, which would cost every read a round trip
and would not even see this case (a ping through a pooler whose server has gone fails like the
read, and the new connection reaches the same pooler). The fallback is logged in one line, and
while a replica stays away at most once every FALLBACK_LOG_INTERVAL_S per worker.

Browsers and cookie-keeping clients (`curl -b/-c`, `requests.Session`) need nothing else; the
cookie is also `HttpOnly` and `SameSite=Lax`. An HTTP cache in front must not answer a request
that carries it (the scale profile's nginx bypasses its cache for it).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask, Response, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from movies.config import Settings

log = logging.getLogger(__name__)

REPLICA_BIND = "replica"
WRITE_LSN_COOKIE = "movies_write_lsn"
# Long enough for any replay lag seen under load (BENCHMARKS.md, "Scaling out"), short enough
# that a client that wrote once does not read from the primary for long.
WRITE_LSN_MAX_AGE_S = 30
_SERIALIZER_KEY = "movies.write_lsn"
FALLBACK_LOG_INTERVAL_S = 10.0
# admin_shutdown, crash_shutdown, cannot_connect_now: the server is going or not there yet.
_SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})
_REPLAYED = (
    # NULL on a server that is not in recovery: a primary has every commit of its own.
    "SELECT coalesce(pg_last_wal_replay_lsn() >= %(lsn)s::pg_lsn, NOT pg_is_in_recovery())"
)


def init_app(app: Flask, settings: Settings) -> None:
    """With a replica, keep the key that signs the write-LSN cookie."""
    if settings.database_read_url:
        app.extensions[_SERIALIZER_KEY] = URLSafeTimedSerializer(
            settings.secret_key, salt=_SERIALIZER_KEY
        )


def read_connection(primary: sa.Engine, replica: sa.Engine | None) -> sa.Connection:
    """A connection for a read: the replica, unless it has not replayed the client's last write."""
    if replica is None:
        return primary.connect()
    try:
        conn = replica.connect()
    except sa.exc.OperationalError as exc:
        # The primary has every row the replica would have served: reads carry on there (at
        # the cost of one failed connection attempt each) until the replica is back.
        _log_fallback(replica, exc)
        return primary.connect()
    lsn = _client_write_lsn()
    if lsn is None:
        return conn
    try:
        replayed = conn.exec_driver_sql(_REPLAYED, {"lsn": lsn}).scalar()
    except sa.exc.DBAPIError as exc:
        _discard(conn, exc)
        raise
    if replayed:
        return conn
    conn.close()
    return primary.connect()


def connection_lost(exc: sa.exc.DBAPIError) -> bool:
    """Whether `exc` says that the connection or its server has gone, not that the statement
    failed: SQLSTATE class 08, a server shutting down or refusing connections, or a driver error
    without SQLSTATE (libpq's "server closed the connection unexpectedly", which is also how
    pgbouncer's own refusals arrive). A statement timeout (57014) is not one: psycopg2 raises it
    as an OperationalError too, but running the statement again would only take as long."""
    code = getattr(exc.orig, "pgcode", None)
    if code:
        return code.startswith("08") or code in _SERVER_GONE
    return exc.connection_invalidated or isinstance(
        exc, (sa.exc.OperationalError, sa.exc.InterfaceError)
    )


def read_again_on_primary(
    replica: sa.Engine, conn: sa.Connection | None, exc: sa.exc.DBAPIError
) -> bool:
    """Whether a read that failed with `exc` on a connection of `replica` (`conn`, None if it
    failed before one was handed out) is to run again on the primary: yes if the connection was
    lost. Then `conn` is dropped from its pool and the fallback logged (one line, no traceback).
    """
    if not connection_lost(exc):
        return False
    if conn is not None:
        _discard(conn, exc)
    _log_fallback(replica, exc)
    return True


@dataclass
class _FallbackLog:
    logged_at: float = float("-inf")
    unlogged: int = 0


_fallback_logs: weakref.WeakKeyDictionary[sa.Engine, _FallbackLog] = weakref.WeakKeyDictionary()
_fallback_lock = threading.Lock()


def _log_fallback(replica: sa.Engine, exc: sa.exc.DBAPIError) -> None:
    """Log a read's fallback from `replica` to the primary: the first at once, then at most one
    line every FALLBACK_LOG_INTERVAL_S with the number since, for a replica that stays away
    would otherwise add a line to every read."""
    now = time.monotonic()
    with _fallback_lock:
        state = _fallback_logs.setdefault(replica, _FallbackLog())
        if now - state.logged_at < FALLBACK_LOG_INTERVAL_S:
            state.unlogged += 1
            return
        unlogged, state.unlogged, state.logged_at = state.unlogged, 0, now
    since = f" ({unlogged} more reads did since the last such line)" if unlogged else ""
    log.warning(
        "read replica unreachable, reading from the primary: %s%s", str(exc.orig).strip(), since
    )


def _discard(conn: sa.Connection, exc: sa.exc.DBAPIError) -> None:
    """Close `conn`; if it was lost, so that the pool opens a new one rather than reuse it."""
    if connection_lost(exc) and not conn.invalidated:
        conn.invalidate(exc)
    conn.close()


def remember_write(response: Response, conn: sa.Connection) -> None:
    """Give the client the WAL position of the write just committed on `conn` (with a replica)."""
    serializer = current_app.extensions.get(_SERIALIZER_KEY)
    if serializer is None:
        return
    lsn = conn.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar()
    response.set_cookie(
        WRITE_LSN_COOKIE,
        serializer.dumps(lsn),
        max_age=WRITE_LSN_MAX_AGE_S,
        httponly=True,
        samesite="Lax",
    )


def _client_write_lsn() -> str | None:
    token = request.cookies.get(WRITE_LSN_COOKIE)
    serializer = current_app.extensions.get(_SERIALIZER_KEY)
    if not token or serializer is None:
        return None
    try:
        lsn = serializer.loads(token, max_age=WRITE_LSN_MAX_AGE_S)
    except BadSignature:  # an expired signature is one too
        return None
    return lsn if isinstance(lsn, str) else None
