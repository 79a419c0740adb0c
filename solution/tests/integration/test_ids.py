"""Identifiers that must last: genre ids across loads, and their migration for older databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from movies import schema
from movies.db import create_engine
from movies.loader import run_load

BASICS_HEADER = (
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\n"
)
RATINGS_HEADER = "tconst\taverageRating\tnumVotes\n"


def write_files(folder: Path, genres: list[str]) -> Path:
    """One movie per genre list, each rated."""
    folder.mkdir(parents=True, exist_ok=True)
    basics = [
        f"tt{n:07d}\tmovie\tTitle {n}\tTitle {n}\t0\t2000\t\\N\t90\t{names}\n"
        for n, names in enumerate(genres, start=1)
    ]
    ratings = [f"tt{n:07d}\t7.0\t10\n" for n in range(1, len(genres) + 1)]
    (folder / "title.basics.tsv").write_text(BASICS_HEADER + "".join(basics))
    (folder / "title.ratings.tsv").write_text(RATINGS_HEADER + "".join(ratings))
    return folder


def next_genre_id(engine: sa.Engine) -> int:
    """The id the next new genre would get (read without drawing it)."""
    with engine.connect() as conn:
        last, called = conn.execute(sa.text("SELECT last_value, is_called FROM genre_id_seq")).one()
    return last + 1 if called else last


def genre_ids(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT name, id FROM genre")).all())


def test_loads_that_add_no_genre_take_no_genre_id(
    engine: sa.Engine, database_url: str, tmp_path: Path
) -> None:
    files = write_files(tmp_path / "same", ["Drama,Comedy", "Action", "Film-Noir,Romance,War"])
    assert next_genre_id(engine) == 29  # after IMDb's 28 names
    for _ in range(3):
        run_load(database_url, str(files), downloads=tmp_path / "downloads", force=True)
        assert next_genre_id(engine) == 29

    with_new = write_files(tmp_path / "new", ["Drama,Noir-Fiction", "Action"])
    run_load(database_url, str(with_new), downloads=tmp_path / "downloads", force=True)
    assert genre_ids(engine)["Noir-Fiction"] == 29
    with engine.connect() as conn:
        bits = conn.execute(
            sa.text("SELECT genre_bits FROM movie_genre WHERE movie_id = 'tt0000001' LIMIT 1")
        ).scalar_one()
    assert bits == (1 << 29) | (1 << genre_ids(engine)["Drama"])


def test_upgrade_gives_new_genres_the_next_id_after_burnt_loads(
    make_legacy_database: Callable[[], str],
) -> None:
    """A database whose loads drew ids for genres they already had: the next genre takes
    max(id) + 1 after the upgrade."""
    engine = create_engine(make_legacy_database())
    try:
        with engine.begin() as conn:
            for _ in range(40):  # what 40 loads of the old loader did to the sequence
                conn.execute(
                    sa.text(
                        "INSERT INTO genre (name) SELECT name FROM genre ORDER BY 1 "
                        "ON CONFLICT (name) DO NOTHING"
                    )
                )
        assert next_genre_id(engine) > 1000
        assert schema.apply(engine) is True
        assert next_genre_id(engine) == 29
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO genre (name) VALUES ('Noir-Fiction')"))
        assert genre_ids(engine)["Noir-Fiction"] == 29
    finally:
        engine.dispose()
