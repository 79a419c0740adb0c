"""A connection the server drops costs one fast 503; the next request reconnects and is served."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from movies.api.connection import db
from movies.app import create_app
from movies.config import Settings
from movies.db import create_engine

PATHS = ["/movies", "/movies?genre=Drama&sort=-rating", "/movies/tt0000001", "/dataset"]


def terminate_api_backends(database_url: str) -> int:
    """Kill every other session on the API's database, as a server restart would."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return killed


@pytest.mark.parametrize("path", PATHS)
def test_dropped_connection_is_one_fast_503_then_served_again(database_url: str, path: str) -> None:
    # Its own database: terminating the sessions of the shared seeded one would hand the next
    # test's session-wide app a dead pooled connection (a 503 that test did not provoke).
    # No response cache: every request must reach the database.
    app = create_app(Settings(database_url=database_url, secret_key="k", response_cache_mb=0))
    client = app.test_client()
    try:
        for _ in range(3):  # the read path's statements are prepared on this connection
            assert client.get(path).status_code in (200, 404)
        assert terminate_api_backends(database_url) >= 1
        started = time.monotonic()
        response = client.get(path)
        assert time.monotonic() - started < 2
        assert response.status_code == 503, response.data[:300]
        assert response.mimetype == "application/problem+json"
        assert "unavailable" in response.json["detail"]
        for _ in range(3):  # a new connection: statements are prepared anew on it
            assert client.get(path).status_code in (200, 404)
    finally:
        with app.app_context():
            db.engine.dispose()
