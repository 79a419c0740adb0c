"""Apply the schema from sql-scripts/ (shipped inside the package as movies/sql)."""

from __future__ import annotations

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


def apply_schema(engine: sa.Engine) -> None:
    """Create whatever part of the schema is missing. Safe to run on every start."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK})
        for _name, sql in schema_scripts():
            conn.exec_driver_sql(sql)
