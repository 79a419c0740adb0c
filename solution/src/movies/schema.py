"""Bring a database to the schema of sql-scripts/ (shipped inside the package as movies/sql).

One function, `apply`, on every path (the API's start, each load, `movies init-db`, the tests):

- A new database (no `movie` table) gets the init scripts, as the compose database runs them at
  its first start: 00-roles.sql, 01-schema.sql (the schema as it is) and 02-privileges.sql.
  01-schema.sql records the migrations it already contains, so the database is at the latest
  version.
- An existing database gets the migrations it lacks (migrations/NNNN-name.sql, not in its
  `schema_migration` table), in order, each in its own transaction with its record. The last one
  runs in 01-schema.sql's place among the init scripts, so the roles exist and what it created
  gets its owner and grants. A database made before migrations were numbered (`movie` but no
  `schema_migration`: it had the digest table `schema_state`) lacks them all, from 0001, the
  idempotent script it was made with.

Checking reads `schema_migration` only: an up-to-date database is left alone, so the API's start
and a load take no lock on `movie` (an ALTER would queue behind a long reader, an export, and
every new reader behind it). An advisory lock serialises concurrent appliers, each of which
looks again under it. The API's role (movies_api) may not migrate: it gets insufficient_privilege
and serves the database as it is until the loader, which owns the tables, applies them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import sqlalchemy as sa

log = logging.getLogger(__name__)

SCHEMA_LOCK = 7_365_001  # advisory lock id: one schema change at a time
DEFINITION = "01-schema.sql"
MIGRATION_FILE = re.compile(r"(?P<version>[0-9]{4})-(?P<name>[a-z0-9]+(?:-[a-z0-9]+)*)\.sql")


class MigrationFileError(ValueError):
    """A file of sql-scripts/migrations/ is misnamed, or two share a version."""


@dataclass(frozen=True)
class Script:
    name: str
    sql: str


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _sql_folder() -> Traversable:
    return resources.files("movies") / "sql"


def init_scripts() -> list[Script]:
    """The SQL init scripts, in the order the compose database runs them (name order)."""
    entries = sorted(
        (entry for entry in _sql_folder().iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [Script(entry.name, entry.read_text(encoding="utf-8")) for entry in entries]


def migrations() -> list[Migration]:
    """Every migration, by version.

    :raise MigrationFileError: if a file is not named NNNN-name.sql or repeats a version.
    """
    found: dict[int, Migration] = {}
    for entry in (_sql_folder() / "migrations").iterdir():
        match = MIGRATION_FILE.fullmatch(entry.name)
        if match is None:
            raise MigrationFileError(f"migrations/{entry.name}: expected NNNN-name.sql")
        version = int(match["version"])
        if version in found:
            raise MigrationFileError(f"migrations/{entry.name}: version {version} is taken")
        found[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


@dataclass(frozen=True)
class SchemaState:
    """What a database has: no schema yet, or the versions it records."""

    is_new: bool
    applied: frozenset[int]

    def pending(self) -> list[Migration]:
        """The migrations an existing database lacks, in order."""
        return [migration for migration in migrations() if migration.version not in self.applied]

    def up_to_date(self) -> bool:
        return not self.is_new and not self.pending()


def read_state(conn: sa.Connection) -> SchemaState:
    """The database's schema state, as of this statement (read again under the lock)."""
    # A catalog read under the statement's snapshot, not to_regclass(): its answer comes from
    # this session's catalog cache, which may predate a concurrent applier's commit.
    tables = set(
        conn.execute(
            sa.text(
                "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                "AND relname IN ('movie', 'schema_migration')"
            )
        ).scalars()
    )
    applied: set[int] = set()
    if "schema_migration" in tables:
        applied.update(conn.execute(sa.text("SELECT version FROM schema_migration")).scalars())
    return SchemaState(is_new="movie" not in tables, applied=frozenset(applied))


def apply(engine: sa.Engine) -> bool:
    """Bring the database up to date; return False when it already was (nothing run or locked).

    :raise sqlalchemy.exc.DBAPIError: if a script fails; its transaction is rolled back, and the
        migrations before it stay applied and recorded. insufficient_privilege (42501) when the
        role may not change the schema.
    """
    with engine.connect() as conn:
        if read_state(conn).up_to_date():
            return False
    applied = False
    while _apply_next_step(engine):
        applied = True
    return applied


def _apply_next_step(engine: sa.Engine) -> bool:
    """Create a new database, or apply the next pending migration; False when there is none."""
    # A real transaction even on an autocommit engine (the API's): the lock, the scripts and
    # their record must commit together.
    with engine.connect() as conn:
        conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK})
            # A request's statement timeout (the API's engine) must not cut a migration short:
            # it would roll back and be tried again, and time out again, on every request.
            conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
            state = read_state(conn)  # another process may have done it while this one waited
            if state.is_new:
                _run_scripts(conn, [script.sql for script in init_scripts()])
                log.info("schema created")
                return True
            pending = state.pending()
            if not pending:
                return False
            _run_migration(conn, pending[0], last=len(pending) == 1)
            return True


def _run_migration(conn: sa.Connection, migration: Migration, *, last: bool) -> None:
    scripts = [migration.sql]
    if last:
        init = init_scripts()
        before = [script.sql for script in init if script.name < DEFINITION]
        after = [script.sql for script in init if script.name > DEFINITION]
        scripts = before + scripts + after
    _run_scripts(conn, scripts)
    conn.execute(
        sa.text("INSERT INTO schema_migration (version, name) VALUES (:version, :name)"),
        {"version": migration.version, "name": migration.name},
    )
    log.info("schema migration %04d-%s applied", migration.version, migration.name)


def _run_scripts(conn: sa.Connection, scripts: list[str]) -> None:
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.cursor()
    try:
        for sql in scripts:
            try:
                cursor.execute(sql)  # no parameters: a % in the SQL stays a %, not a placeholder
            except dbapi_error as exc:  # the same exception family as every other statement
                raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi_error) from exc
    finally:
        cursor.close()
