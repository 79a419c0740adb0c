"""Fidelity: an independent plain-Python reading of the files, compared row by row with the DB.

The reference reader below shares no code with the loader: it splits lines on "\\n" and fields on
"\\t" and applies the documented rules (keep titleType "movie", `\\N` is NULL and nothing else,
skip rows with the wrong field count or an unconvertible value, or whose stored fields are not
UTF-8 or hold a NUL (text PostgreSQL refuses), first tconst wins).
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


def _rows(folder: Path, name: str) -> list[list[bytes]]:
    gz = folder / (name + ".gz")
    data = gzip.decompress(gz.read_bytes()) if gz.exists() else (folder / name).read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.split(b"\t") for line in lines[1:]]


def _texts(fields: list[bytes]) -> list[str] | None:
    """The fields as text, or None if one is not UTF-8 or holds a NUL."""
    try:
        texts = [field.decode("utf-8") for field in fields]
    except UnicodeDecodeError:
        return None
    return None if any("\x00" in text for text in texts) else texts


def _number(value: str, digits: int) -> int | None | bool:
    """int, None for \\N, False if not a whole number of at most `digits` digits."""
    if value == NULL:
        return None
    if re.fullmatch(f"[0-9]{{1,{digits}}}", value):
        return int(value)
    return False


def reference_movies(folder: Path) -> dict[str, dict]:
    movies: dict[str, dict] = {}
    for fields in _rows(folder, "title.basics.tsv"):
        if len(fields) != 9 or fields[1] != b"movie":
            continue
        stored = _texts([fields[0], *fields[2:6], *fields[7:]])  # all but titleType and endYear
        if stored is None:
            continue
        tconst, title, original, adult, year, runtime, genres = stored
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
    for raw in _rows(folder, "title.ratings.tsv"):
        fields = _texts(raw)
        if len(raw) != 3 or fields is None:
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


def test_rows_with_bytes_text_cannot_hold_match_an_independent_reading(
    engine, database_url, tmp_path
):
    """The nasty fixture plus movie and ratings rows holding a NUL or bytes that are not UTF-8, in
    stored fields (skipped) and in fields the loader does not store (loaded)."""
    folder = tmp_path / "bad-bytes"
    folder.mkdir()
    basics = (NASTY / "title.basics.tsv").read_bytes() + (
        b"tt0000101\tmovie\tNUL \x00 title\t\\N\t0\t2000\t\\N\t90\tDrama\n"
        b"tt0000102\tmovie\tLatin-1 \xe9\t\\N\t0\t2000\t\\N\t90\tDrama\n"
        b"tt0000103\tmovie\tKept\tOriginal\t0\t2000\t\x00\xff\t90\tDrama,War\n"
        b"tt0000104\tshort\tNot a movie \x00\t\\N\t0\t2000\t\\N\t9\tShort\n"
        b"tt0000105\tmovie\tFirst, skipped\t\\N\t0\t2000\t\\N\t90\tWa\x00r\n"
        b"tt0000105\tmovie\tSecond, kept\t\\N\t0\t2001\t\\N\t91\tWar\n"
    )
    ratings = (NASTY / "title.ratings.tsv").read_bytes() + (
        b"tt0000103\t7.\xb7\t10\ntt0000103\t6.5\t12\ntt0000105\t7.0\t1\x00\n"
    )
    (folder / "title.basics.tsv").write_bytes(basics)
    (folder / "title.ratings.tsv").write_bytes(ratings)
    report = run_load(database_url, str(folder), downloads=tmp_path / "downloads")
    assert assert_same(engine, folder) == 17 + 2
    assert report.skipped["basics: NUL or invalid UTF-8"] == 3
    assert report.skipped["ratings: NUL or invalid UTF-8"] == 2


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
