"""The demo: the bundled sample of IMDb's files, and the rule that it never replaces real data.

`movies demo` loads 163 movies with --force. Run against a database that holds a real load, it
would swap 700,000 movies for those 163, so it keeps to its own embedded database and, wherever
it runs, refuses a database whose latest load came from anywhere but the demo files.
"""

from __future__ import annotations

from pathlib import Path, PurePath

import sqlalchemy as sa

from movies import repository
from movies.db import create_engine

DEMO_DATA = Path(__file__).parent / "demo_data"


class DemoRefusedError(RuntimeError):
    """The database holds a dataset the demo would replace."""


def is_demo_source(source: str) -> bool:
    """Whether a load's recorded source is the bundled demo folder (of any installation)."""
    return PurePath(source).parts[-2:] == DEMO_DATA.parts[-2:]


def check_demo_may_load(url: str) -> None:
    """Refuse unless the database at `url` is empty or holds the demo's own data.

    :raise DemoRefusedError: if its latest load came from another source.
    """
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            latest = _latest_load(conn)
    finally:
        engine.dispose()
    if latest is not None and not is_demo_source(latest.source):
        raise DemoRefusedError(
            f"refusing to load the demo: the database holds {latest.movies:,} movies loaded from "
            f"{latest.source}, which the demo data would replace; run the demo on its own "
            "embedded database (unset DATABASE_URL), or serve the data there with `movies serve`"
        )


def _latest_load(conn: sa.Connection) -> sa.Row | None:
    """The latest load, or None for a database without the schema or without a load."""
    if conn.execute(sa.text("SELECT to_regclass('dataset_load')")).scalar() is None:
        return None
    return repository.latest_load(conn)
