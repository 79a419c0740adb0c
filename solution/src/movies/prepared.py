"""The read path's SQL, run on the driver's cursor as server-side prepared statements.

PostgreSQL plans every statement it receives as text, and on the partitioned `movie` table (two
partitions, a dozen indexes each) planning a page query costs more than running it. A statement
prepared on a connection is parsed once and, once PostgreSQL's plan cache judges a reusable
plan as good as a fresh one (`plan_cache_mode` auto), planned once.

Which values stay parameters is the query package's decision (`movies.query.compiled`, the
`bound` names of an `Sql`): those stay parameters of the prepared statement, every other value is
written into its text as a literal, quoted by the driver.

A statement text is prepared the second time a connection runs it, so a one-off query costs one
plain round trip and no PREPARE. Each connection keeps at most `MAX_PREPARED` statements and
drops the least recently used one (its DEALLOCATE travels with the next PREPARE, in the same
round trip). The registry lives in the pool's per-connection `info`, which SQLAlchemy clears
when it replaces a dead connection, so a new connection starts with an empty registry.

An engine created with the execution option `movies_prepared=False` (behind a pooler in
transaction mode: settings.prepared_statements) sends every statement as plain SQL.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from psycopg2.extensions import AsIs

from movies.query import Sql

MAX_PREPARED = 256
MAX_SEEN = 4096
_REGISTRY_KEY = "movies.prepared"
PREPARED_OPTION = "movies_prepared"
# invalid_sql_statement_name: the server no longer knows a statement (DISCARD/DEALLOCATE ALL).
_UNKNOWN_STATEMENT = "26000"


class _Registry:
    """One connection's prepared statements (text -> name) and the texts it has run once."""

    __slots__ = ("counter", "names", "seen")

    def __init__(self) -> None:
        self.names: OrderedDict[bytes, str] = OrderedDict()
        self.seen: set[bytes] = set()
        self.counter = 0


def fetch_sql(conn: sa.Connection, sql: Sql) -> list[tuple]:
    """Run a statement of the query package, prepared as its `bound` names say."""
    return fetch_all(conn, sql.text, sql.params, sql.bound)


def fetch_all(
    conn: sa.Connection, sql: str, params: dict[str, Any], bound: Sequence[str] = ()
) -> list[tuple]:
    """Run `sql` (driver paramstyle, `%(name)s`) and return plain tuples.

    `bound` names the parameters that stay parameters of the prepared statement; the others
    become literals of its text. Driver errors are raised as SQLAlchemy DBAPIErrors (the API maps
    them by SQLSTATE), and a connection the server dropped is invalidated so the pool replaces it.
    """
    fairy = conn.connection
    registry = fairy.info.get(_REGISTRY_KEY)
    if registry is None:
        registry = fairy.info[_REGISTRY_KEY] = _Registry()
    dbapi = conn.dialect.loaded_dbapi
    cursor = fairy.cursor()
    statement: Any = sql
    try:
        text, args = prepared_text(cursor, sql, params, bound)
        if conn.get_execution_options().get(PREPARED_OPTION, True):
            statement, args = _statement_for(registry, text, args, sql, params)
        else:
            statement, args = sql, params
        try:
            cursor.execute(statement, args)
        except dbapi.Error as exc:
            if getattr(exc, "pgcode", None) != _UNKNOWN_STATEMENT:
                raise
            # Someone dropped the connection's statements: forget them all and prepare anew.
            registry.names.clear()
            statement, args = _statement_for(registry, text, args, sql, params)
            cursor.execute(statement, args)
        return cursor.fetchall()
    except dbapi.Error as exc:
        invalidated = conn.dialect.is_disconnect(exc, fairy.dbapi_connection, cursor)
        if invalidated:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            statement, params, exc, dbapi.Error, connection_invalidated=invalidated
        ) from exc
    finally:
        if not cursor.closed:
            cursor.close()


def prepared_text(
    cursor: Any, sql: str, params: dict[str, Any], bound: Sequence[str]
) -> tuple[bytes, list[Any]]:
    """The text a statement is prepared as (`$1`, `$2`... for the `bound` parameters, the other
    values as literals quoted by `cursor`) and the values of its parameters, in order."""
    # A parameter the text does not use (a NULL keyset value is spelled IS NULL) is no parameter
    # of the statement.
    bound = [name for name in bound if f"%({name})s" in sql]
    placeholders = {name: AsIs(f"${number}") for number, name in enumerate(bound, 1)}
    return cursor.mogrify(sql, {**params, **placeholders}), [params[name] for name in bound]


def _statement_for(
    registry: _Registry, text: bytes, args: list[Any], sql: str, params: dict[str, Any]
) -> tuple[Any, Any]:
    """What to send for `text`: EXECUTE, PREPARE + EXECUTE, or (first run) the plain SQL."""
    name = registry.names.get(text)
    if name is not None:
        registry.names.move_to_end(text)
        return _execute(name, len(args)), args
    if text not in registry.seen:
        if len(registry.seen) >= MAX_SEEN:
            registry.seen.clear()
        registry.seen.add(text)
        return sql, params
    registry.seen.discard(text)
    registry.counter += 1
    name = f"movies_{registry.counter}"
    drop = b""
    if len(registry.names) >= MAX_PREPARED:
        _, oldest = registry.names.popitem(last=False)
        drop = f"DEALLOCATE {oldest}; ".encode()
    # Registered before it runs: a failing EXECUTE (a timeout) leaves the statement prepared.
    registry.names[text] = name
    prepare = drop + f"PREPARE {name} AS ".encode() + text + b"; "
    # The text is already quoted SQL: % signs in it must reach the server as they are.
    return prepare.replace(b"%", b"%%") + _execute(name, len(args)).encode(), args


# An EXECUTE takes its snapshot before it locks its tables. One that waits for a load's partition
# swap would then see the new partition but none of its rows (committed after that snapshot): an
# empty page, a 404. A LOCK first, in the same implicit transaction, does the waiting; the EXECUTE
# after it takes a fresh snapshot that includes the swap. Plain statements lock before their
# snapshot already.
_WAIT_FOR_SWAP = "LOCK TABLE movie IN ACCESS SHARE MODE; "


def _execute(name: str, count: int) -> str:
    if not count:
        return f"{_WAIT_FOR_SWAP}EXECUTE {name}"
    return f"{_WAIT_FOR_SWAP}EXECUTE {name}({', '.join(['%s'] * count)})"


def explain(conn: sa.Connection, sql: Sql, options: str = "ANALYZE") -> tuple[str, list[Any], list]:
    """EXPLAIN (`options`) of `sql` run as the read path runs it: prepared with the text it is
    prepared with, executed with its parameters. Returns (that text, the parameters, the plan
    rows). `options` is trusted text (ANALYZE, BUFFERS, FORMAT JSON...)."""
    cursor = conn.connection.cursor()
    try:
        text, args = prepared_text(cursor, sql.text, sql.params, sql.bound)
        cursor.execute(b"PREPARE movies_explain AS " + text)
        try:
            placeholders = f"({', '.join(['%s'] * len(args))})" if args else ""
            cursor.execute(f"EXPLAIN ({options}) EXECUTE movies_explain{placeholders}", args)
            plan = [row[0] for row in cursor.fetchall()]
        finally:
            cursor.execute("DEALLOCATE movies_explain")
        return text.decode(), args, plan
    finally:
        cursor.close()
