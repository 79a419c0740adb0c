"""Which database errors send a read to the primary (api/routing.connection_lost)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

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
