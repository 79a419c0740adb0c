"""The bundled demo data: IMDb's exact format, and what the loader makes of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from movies.db import create_engine
from movies.demo import DEMO_DATA

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


@pytest.fixture(scope="module")
def demo_database(make_database, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding the demo data, loaded by the real loader."""
    from movies.loader import run_load

    url = make_database()
    report = run_load(
        url, str(DEMO_DATA), downloads=tmp_path_factory.mktemp("downloads"), force=True
    )
    assert report.movies == 153
    return url


@pytest.fixture
def demo(demo_database: str):
    engine = create_engine(demo_database)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def test_demo_load_keeps_movies_only_with_their_ratings(demo: sa.Connection) -> None:
    _, basics = read_rows("title.basics.tsv")
    movie_ids = {row[0] for row in basics if row[1] == "movie"}
    loaded = dict(demo.execute(sa.text("SELECT id, rating FROM movie WHERE source = 'imdb'")).all())
    assert set(loaded) == movie_ids
    assert sum(rating is not None for rating in loaded.values()) == 151
    assert "tt0944947" not in loaded and "tt0000001" not in loaded  # tvSeries, short
    genre_links = sum(
        len(row[8].split(",")) for row in basics if row[0] in movie_ids and row[8] != "\\N"
    )
    last = demo.execute(
        sa.text("SELECT movies, rated_movies, genre_links FROM dataset_load ORDER BY id DESC")
    ).first()
    assert tuple(last) == (153, 151, genre_links)


def test_demo_canonical_query_finds_action_movies_above_8_5(demo: sa.Connection) -> None:
    rows = demo.execute(
        sa.text(
            "SELECT id, title FROM movie WHERE genres @> '{Action}' AND rating > 8.5 ORDER BY id"
        )
    ).all()
    assert dict(rows) == ACTION_ABOVE_8_5


def test_demo_load_keeps_quirky_values_exact(demo: sa.Connection) -> None:
    def movie(tconst: str) -> sa.Row:
        return demo.execute(
            sa.text(
                "SELECT title, original_title, year, runtime_minutes, rating, votes, is_adult,"
                " genres FROM movie WHERE id = :id"
            ),
            {"id": tconst},
        ).one()

    assert movie("tt9000001").title == "NA"
    assert movie("tt9000002").title == "null"
    assert movie("tt9000003")[:2] == ("None", "NaN")
    assert movie("tt0073045")[:2] == ('"Giliap"', '"Giliap"')
    assert movie("tt9000004").title == 'The "Other" Side'
    assert movie("tt0245429").original_title == "千と千尋の神隠し"
    assert movie("tt0211915").original_title == "Le fabuleux destin d'Amélie Poulain"
    assert tuple(movie("tt28642224"))[2:] == (1996, None, None, None, False, [])
    assert movie("tt33764258").rating is None and movie("tt33764258").year == 2026
    assert movie("tt9000005").is_adult is True
    assert str(movie("tt0111161").rating) == "9.3" and movie("tt0111161").votes == 3_000_000
    assert movie("tt15239678").genres == ["Action", "Adventure", "Drama"]
    assert movie("tt19000001").title == "Eight Digits"
