"""The embedded database's lifecycle through the CLI: started on demand, stopped on request."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from movies.cli import main
from movies.embedded import start_embedded


def test_stop_db_stops_the_embedded_server_and_says_so_when_none_runs(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"
    start_embedded(pgdata)
    env = {"MOVIES_DATA_DIR": str(tmp_path), "DATABASE_URL": ""}

    stopped = CliRunner().invoke(main, ["stop-db"], env=env)
    assert stopped.exit_code == 0, stopped.output
    assert "stopped the embedded PostgreSQL" in stopped.output
    assert not (pgdata / "postmaster.pid").exists()

    again = CliRunner().invoke(main, ["stop-db"], env=env)
    assert again.exit_code == 0, again.output
    assert "no embedded PostgreSQL running" in again.output
