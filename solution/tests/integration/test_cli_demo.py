"""`movies demo`: its own embedded database, and never a real dataset replaced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from harness import free_port

from movies.cli import main
from movies.db import create_engine
from movies.demo import DEMO_DATA, DemoRefusedError, check_demo_may_load, is_demo_source
from movies.embedded import stop_embedded
from movies.loader import run_load

NASTY = Path(__file__).resolve().parents[1] / "fixtures" / "nasty"


def movie_ids(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM movie_imdb ORDER BY id")).scalars().all()
    engine.dispose()
    return ids


def test_demo_source_is_recognised_in_any_installation() -> None:
    assert is_demo_source(str(DEMO_DATA))
    assert is_demo_source("/opt/venv/lib/python3.11/site-packages/movies/demo_data")
    assert not is_demo_source("https://datasets.imdbws.com/")
    assert not is_demo_source("/srv/imdb")
    assert not is_demo_source("/srv/demo_data")


def test_demo_refuses_a_database_holding_a_real_load(database_url: str, tmp_path: Path) -> None:
    run_load(database_url, str(NASTY), downloads=tmp_path, force=True)
    before = movie_ids(database_url)

    result = CliRunner().invoke(main, ["demo"], env={"DATABASE_URL": database_url})

    assert result.exit_code == 1
    message = result.output.strip()
    assert message.startswith("Error: refusing to load the demo")
    assert str(NASTY) in message and "unset DATABASE_URL" in message
    assert "Traceback" not in result.output
    assert movie_ids(database_url) == before


def test_demo_may_reload_an_empty_database_or_its_own_data(
    database_url: str, tmp_path: Path
) -> None:
    check_demo_may_load(database_url)
    run_load(database_url, str(DEMO_DATA), downloads=tmp_path, force=True)
    check_demo_may_load(database_url)


def test_demo_refusal_names_the_dataset(database_url: str, tmp_path: Path) -> None:
    report = run_load(database_url, str(NASTY), downloads=tmp_path, force=True)
    with pytest.raises(DemoRefusedError, match=f"holds {report.movies:,} movies loaded from"):
        check_demo_may_load(database_url)


def wait_for_movies(port: int, demo: subprocess.Popen, log: Path, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert demo.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/movies?limit=1") as response:
                return json.load(response)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the demo did not serve on port {port} within {seconds} s")


def test_demo_serves_from_its_own_embedded_database(tmp_path: Path) -> None:
    """The demo's data lives in <data dir>/demo/pgdata; the loaded data's folder is not used."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(MOVIES_DATA_DIR=str(tmp_path), GUNICORN_WORKERS="1")
    movies = Path(sys.executable).with_name("movies")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [str(movies), "demo", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        page = wait_for_movies(port, demo, log)
        assert page["items"], page
        assert (tmp_path / "demo" / "pgdata" / "PG_VERSION").exists()
        assert not (tmp_path / "pgdata").exists()
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(timeout=30)
        stop_embedded(tmp_path / "demo" / "pgdata")
