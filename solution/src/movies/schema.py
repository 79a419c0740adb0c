"""Apply the schema from sql-scripts/ (shipped inside the package as movies/sql).

The scripts are idempotent, but running them is not free: `ALTER TABLE ... ADD COLUMN IF NOT
EXISTS` and `CREATE INDEX IF NOT EXISTS` lock `movie` before they find there is nothing to do,
and would queue behind a long reader (an export) while every new reader queues behind them. So
the digest of the scripts last applied is kept in `schema_state` (01-schema.sql), and an
up-to-date database is left alone: the API's start and each load only read one row.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import sqlalchemy as sa

SCHEMA_LOCK = 7_365_001  # advisory lock id: one schema migration at a time


def schema_scripts() -> list[tuple[str, str]]:
    """The SQL init scripts as (name, text), in the order the compose database runs them."""
    folder = resources.files("movies") / "sql"
    scripts = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [(entry.name, entry.read_text(encoding="utf-8")) for entry in scripts]


def schema_digest(scripts: list[tuple[str, str]]) -> str:
    """A fingerprint of the scripts' names and texts."""
    sha = hashlib.sha256()
    for name, sql in scripts:
        sha.update(name.encode() + b"\0" + sql.encode() + b"\0")
    return sha.hexdigest()


def applied_digest(conn: sa.Connection) -> str | None:
    """The digest of the scripts this database was last brought up to, if any."""
    if conn.execute(sa.text("SELECT to_regclass('schema_state')")).scalar() is None:
        return None
    return conn.execute(sa.text("SELECT digest FROM schema_state")).scalar()


def apply_schema(engine: sa.Engine) -> bool:
    """Bring the database up to the scripts; return False when it already was (nothing locked)."""
    scripts = schema_scripts()
    digest = schema_digest(scripts)
    with engine.connect() as conn:
        if applied_digest(conn) == digest:
            return False
    # A real transaction even on an autocommit engine (the API's): the lock and the scripts must
    # commit together.
    with engine.connect() as conn:
        conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin():
            _apply(conn, scripts, digest)
    return True


def _apply(conn: sa.Connection, scripts: list[tuple[str, str]], digest: str) -> None:
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK})
    if applied_digest(conn) == digest:  # another process got there first
        return
    # A request's statement timeout (the API's engine) must not cut a migration short: it would
    # roll back and be tried again, and time out again, on every request.
    conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.cursor()
    try:
        for _name, sql in scripts:
            try:
                cursor.execute(sql)  # no parameters: a % in the SQL stays a %, not a placeholder
            except dbapi_error as exc:  # the same exception family as every other statement
                raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi_error) from exc
    finally:
        cursor.close()
    conn.execute(
        sa.text(
            "INSERT INTO schema_state (digest) VALUES (:digest) ON CONFLICT (singleton) "
            "DO UPDATE SET digest = excluded.digest, applied_at = now()"
        ),
        {"digest": digest},
    )
