"""An export being read while a load swaps the movie tables: the load commits, the export ends
complete, with the data it started with."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from movies import repository
from movies.api.connection import db
from movies.app import create_app
from movies.config import Settings
from movies.loader import run_load, write

SECRET = "export-test-secret"
BASICS_HEADER = (
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\n"
)


def write_movies(folder: Path, count: int, title: str) -> Path:
    """A source folder of `count` movies titled `title` N."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"tt{n:07d}\tmovie\t{title} {n}\t{title} {n}\t0\t{1950 + n % 70}\t\\N\t90\tDrama\n"
        for n in range(1, count + 1)
    ]
    (folder / "title.basics.tsv").write_text(BASICS_HEADER + "".join(lines))
    (folder / "title.ratings.tsv").write_text("tconst\taverageRating\tnumVotes\n")
    return folder


@pytest.fixture
def loaded_app(
    make_database: Callable[[], str], tmp_path: Path
) -> Iterator[tuple[Flask, str, Path]]:
    """(app, database URL, downloads folder) on a fresh database loaded with 300 "Old" movies."""
    url = make_database()
    run_load(url, str(write_movies(tmp_path / "old", 300, "Old")), downloads=tmp_path)
    app = create_app(Settings(database_url=url, secret_key=SECRET, rate_limit_reads=""))
    yield app, url, tmp_path
    with app.app_context():
        db.engine.dispose()


def test_load_commits_while_an_export_is_half_read(
    loaded_app: tuple[Flask, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, url, tmp_path = loaded_app
    monkeypatch.setattr(repository, "EXPORT_BATCH_ROWS", 10)
    # Today's swap waits 5 x 2 s for the tables; 2 x 100 ms is enough to tell "never" apart.
    monkeypatch.setattr(write, "SWAP_LOCK_TIMEOUT", "100ms")
    monkeypatch.setattr(write, "SWAP_ATTEMPTS", 2)
    response = app.test_client().get("/movies/export?format=csv&sort=title", buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    head = [next(chunks) for _ in range(3)]  # a slow client: 20 of 300 rows read so far

    report = run_load(url, str(write_movies(tmp_path / "new", 250, "New")), downloads=tmp_path)

    body = b"".join(head) + b"".join(chunks)
    response.close()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert report.movies == 250
    assert len(rows) == 1 + 300
    assert [row[1] for row in rows[1:]] == sorted(f"Old {n}" for n in range(1, 301))
    after = app.test_client().get("/movies/export?format=csv&sort=title").data
    assert after.count(b"\r\n") == 1 + 250 and b"New 1," in after and b"Old" not in after
