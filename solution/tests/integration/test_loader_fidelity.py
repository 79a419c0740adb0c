"""Fidelity: an independent plain-Python reading of the files, compared row by row with the DB.

The reference reader below shares no code with the loader: it splits lines on "\\n" and fields on
"\\t" and applies the documented rules (keep titleType "movie", `\\N` is NULL and nothing else,
skip rows with the wrong field count or an unconvertible value, first tconst wins).
"""

from __future__ import annotations

import gzip
import re
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from movies.loader import run_load

NASTY = Path(__file__).resolve().parents[1] / "fixtures" / "nasty"
NULL = "\\N"


def _lines(folder: Path, name: str) -> list[str]:
    gz = folder / (name + ".gz")
    data = gzip.decompress(gz.read_bytes()) if gz.exists() else (folder / name).read_bytes()
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines[1:]


def _number(value: str, digits: int) -> int | None | bool:
    """int, None for \\N, False if not a whole number of at most `digits` digits."""
    if value == NULL:
        return None
    if re.fullmatch(f"[0-9]{{1,{digits}}}", value):
        return int(value)
    return False


def reference_movies(folder: Path) -> dict[str, dict]:
    movies: dict[str, dict] = {}
    for line in _lines(folder, "title.basics.tsv"):
        fields = line.split("\t")
        if len(fields) != 9 or fields[1] != "movie":
            continue
        tconst, _, title, original, adult, year, _, runtime, genres = fields
        year_value, runtime_value = _number(year, 4), _number(runtime, 9)
        if (
            not re.fullmatch(r"tt[0-9]{7,}", tconst)
            or title == NULL
            or adult not in ("0", "1", NULL)
            or year_value is False
            or runtime_value is False
            or (genres != NULL and "" in genres.split(","))
            or tconst in movies
        ):
            continue
        movies[tconst] = {
            "title": title,
            "original_title": None if original == NULL else original,
            "year": year_value,
            "runtime_minutes": runtime_value,
            "is_adult": adult == "1",
            "genres": [] if genres == NULL else genres.split(","),
            "rating": None,
            "votes": None,
        }
    seen: set[str] = set()
    for line in _lines(folder, "title.ratings.tsv"):
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        tconst, rating, votes = fields
        if (
            not re.fullmatch(r"tt[0-9]{7,}", tconst)
            or not re.fullmatch(r"[0-9]{1,2}(\.[0-9])?", rating)
            or Decimal(rating) > 10
            or not re.fullmatch(r"[0-9]{1,9}", votes)
            or tconst in seen
        ):
            continue
        seen.add(tconst)
        if tconst in movies:
            movies[tconst]["rating"] = Decimal(rating)
            movies[tconst]["votes"] = int(votes)
    return movies


def database_movies(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, title, original_title, year, runtime_minutes, is_adult, genres, "
                "rating, votes FROM movie WHERE source = 'imdb'"
            )
        ).mappings()
        movies = {row["id"]: {k: v for k, v in row.items() if k != "id"} for row in rows}
        links = conn.execute(
            sa.text(
                "SELECT l.movie_id, g.name FROM movie_genre AS l JOIN genre AS g "
                "ON g.id = l.genre_id WHERE l.source = 'imdb'"
            )
        ).all()
    linked: dict[str, set[str]] = {}
    for movie_id, name in links:
        linked.setdefault(movie_id, set()).add(name)
    for movie_id, movie in movies.items():
        assert linked.get(movie_id, set()) == set(movie["genres"]), movie_id
    return movies


def assert_same(engine: sa.Engine, folder: Path) -> int:
    expected = reference_movies(folder)
    actual = database_movies(engine)
    assert actual.keys() == expected.keys()
    for tconst, movie in expected.items():
        assert actual[tconst] == movie, tconst
    return len(expected)


def test_nasty_fixture_matches_an_independent_reading(engine, database_url, tmp_path):
    run_load(database_url, str(NASTY), downloads=tmp_path)
    assert assert_same(engine, NASTY) == 17


def test_real_sample_matches_an_independent_reading(engine, database_url, tmp_path, real_data_dir):
    report = run_load(database_url, str(real_data_dir), downloads=tmp_path)
    count = assert_same(engine, real_data_dir)
    assert count == report.movies == 17_614


def test_synthetic_data_matches_an_independent_reading(engine, database_url, tmp_path):
    synthetic = pytest.importorskip("movies.synthetic")
    folder = tmp_path / "synthetic"
    synthetic.generate(folder, scale=0.002, seed=7)
    report = run_load(database_url, str(folder), downloads=tmp_path / "downloads")
    count = assert_same(engine, folder)
    manifest = synthetic.read_manifest(folder)
    assert count == report.movies == manifest["loadable_movies"]
    assert report.rated_movies == manifest["loadable_rated_movies"]
    assert report.rows_read == manifest["basics_rows"]
    assert report.ratings_rows_read == manifest["ratings_rows"]
