"""Database connections: resolve the URL (embedded or DATABASE_URL), build engines. No queries."""

from __future__ import annotations

import sqlalchemy as sa

from movies.config import Settings
from movies.embedded import start_embedded


def database_url(settings: Settings) -> str:
    """The URL to use: DATABASE_URL when set, else the embedded server (started if needed)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.pgdata)


def create_engine(url: str, *, statement_timeout_ms: int | None = None, **kwargs) -> sa.Engine:
    """An engine on psycopg2 whose connections carry a statement timeout."""
    url_obj = sa.make_url(url)
    if url_obj.drivername == "postgresql":
        url_obj = url_obj.set(drivername="postgresql+psycopg2")
    connect_args = dict(kwargs.pop("connect_args", {}))
    if statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={statement_timeout_ms}"
    return sa.create_engine(url_obj, connect_args=connect_args, **kwargs)
