"""Which database errors send a read to the primary (api/routing.connection_lost)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from movies.api import routing
from movies.api.routing import connection_lost


class DriverError(Exception):
    def __init__(self, pgcode: str | None) -> None:
        super().__init__("driver error")
        self.pgcode = pgcode


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (sa.exc.OperationalError("SELECT 1", {}, DriverError(None)), True),  # server went away
        (sa.exc.InterfaceError("SELECT 1", {}, DriverError(None)), True),  # connection closed
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("08006")), True),
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("08P01")), True),  # a pooler's own
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("57P01")), True),  # admin shutdown
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("57P03")), True),  # starting up
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("57014")), False),  # timeout
        (sa.exc.ProgrammingError("SELECT 1", {}, DriverError("42601")), False),  # bad SQL
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("55P03")), False),  # lock
        (sa.exc.DBAPIError("SELECT 1", {}, DriverError(None)), False),
        (sa.exc.DBAPIError("SELECT 1", {}, DriverError(None), connection_invalidated=True), True),
    ],
)
def test_only_a_lost_connection_sends_a_read_to_the_primary(
    error: sa.exc.DBAPIError, lost: bool
) -> None:
    assert connection_lost(error) is lost


def test_fallbacks_of_a_replica_that_stays_away_are_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    replica = sa.create_engine("postgresql+psycopg2://replica/movies")  # never connects
    lost = sa.exc.OperationalError("SELECT 1", {}, DriverError(None))
    now = [1000.0]
    monkeypatch.setattr(routing.time, "monotonic", lambda: now[0])
    for _ in range(5):
        assert routing.read_again_on_primary(replica, None, lost)
    now[0] += routing.FALLBACK_LOG_INTERVAL_S
    assert routing.read_again_on_primary(replica, None, lost)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0] == "read replica unreachable, reading from the primary: driver error"
    assert lines[1].endswith("(4 more reads did since the last such line)")
