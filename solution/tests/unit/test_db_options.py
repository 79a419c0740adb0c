"""Engine options of the API: the statement timeout reaches the server on every path."""

from __future__ import annotations

from movies.config import Settings
from movies.db import engine_options, timed_cursor


def test_a_direct_connection_sets_the_timeout_once_per_session() -> None:
    connect_args = engine_options(Settings(statement_timeout_ms=1234))["connect_args"]
    assert "-c statement_timeout=1234" in connect_args["options"]
    assert "cursor_factory" not in connect_args, "no per-statement prefix to pay for"


def test_behind_a_transaction_pooler_each_transaction_carries_the_timeout() -> None:
    settings = Settings(statement_timeout_ms=1234, prepared_statements=False)
    connect_args = engine_options(settings)["connect_args"]
    # Its behaviour through pgbouncer: tests/integration/test_pooler.py.
    assert connect_args["cursor_factory"] is timed_cursor(1234)
