"""The bundled demo data: IMDb's exact format, and what the loader makes of it."""

from __future__ import annotations

import re
from pathlib import Path

from movies.cli import DEMO_DATA

TCONST = re.compile(r"tt[0-9]{7,}")
INT_OR_NULL = re.compile(r"[0-9]+|\\N")
ACTION_ABOVE_8_5 = {
    "tt0047478": "Seven Samurai",
    "tt0076759": "Star Wars: Episode IV - A New Hope",
    "tt0080684": "Star Wars: Episode V - The Empire Strikes Back",
    "tt0103064": "Terminator 2: Judgment Day",
    "tt0120737": "The Lord of the Rings: The Fellowship of the Ring",
    "tt0133093": "The Matrix",
    "tt0167260": "The Lord of the Rings: The Return of the King",
    "tt0167261": "The Lord of the Rings: The Two Towers",
    "tt0468569": "The Dark Knight",
    "tt1375666": "Inception",
    "tt9000004": 'The "Other" Side',
}


def read_rows(name: str) -> tuple[str, list[list[str]]]:
    raw = (DEMO_DATA / name).read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    header, *lines = raw.decode("utf-8").split("\n")[:-1]
    return header, [line.split("\t") for line in lines]


def test_demo_basics_has_imdb_format() -> None:
    header, rows = read_rows("title.basics.tsv")
    assert header.split("\t") == [
        "tconst", "titleType", "primaryTitle", "originalTitle", "isAdult", "startYear",
        "endYear", "runtimeMinutes", "genres",
    ]  # fmt: skip
    assert 100 <= len(rows) <= 300
    for row in rows:
        assert len(row) == 9, row
        assert TCONST.fullmatch(row[0]) and row[2] and row[3] and row[4] in ("0", "1")
        assert all(INT_OR_NULL.fullmatch(v) for v in (row[5], row[6], row[7]))
    numbers = [int(row[0][2:]) for row in rows]
    assert numbers == sorted(set(numbers))


def test_demo_ratings_has_imdb_format_and_known_titles() -> None:
    header, rows = read_rows("title.ratings.tsv")
    assert header == "tconst\taverageRating\tnumVotes"
    _, basics = read_rows("title.basics.tsv")
    known = [row[0] for row in basics]
    ids = [row[0] for row in rows]
    assert set(ids) <= set(known) and ids == [t for t in known if t in set(ids)]
    for row in rows:
        assert len(row) == 3 and re.fullmatch(r"(10|[1-9])\.[0-9]", row[1]) and row[2].isdigit()


def test_demo_files_carry_the_quirks() -> None:
    _, basics = read_rows("title.basics.tsv")
    _, ratings = read_rows("title.ratings.tsv")
    rated = {row[0] for row in ratings}
    movies = [row for row in basics if row[1] == "movie"]
    titles = {row[2] for row in movies}
    assert {"NA", "null", "None"} <= titles
    assert any(t.startswith('"') for t in titles)
    assert any(row[7] == "\\N" for row in movies) and any(row[8] == "\\N" for row in movies)
    assert any(row[0] not in rated for row in movies)
    assert any(len(row[0]) > 9 for row in movies)
    assert any(row[4] == "1" for row in movies)
    assert {"short", "tvSeries", "tvEpisode"} <= {row[1] for row in basics}
    assert any(row[1] != "movie" and row[0] in rated for row in basics)
    originals = {row[2]: row[3] for row in movies}
    assert originals["Amélie"] == "Le fabuleux destin d'Amélie Poulain"
    assert originals["Spirited Away"] == "千と千尋の神隠し"


def test_demo_data_ships_in_the_package() -> None:
    assert DEMO_DATA == Path(__file__).resolve().parents[2] / "src" / "movies" / "demo_data"
    assert {p.name for p in DEMO_DATA.iterdir()} >= {"title.basics.tsv", "title.ratings.tsv"}
