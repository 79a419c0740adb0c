"""Identifiers that must last: genre ids across loads, user movie ids past 10,000,000, and the
migrations that fix both in older databases."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from flask import Flask
from flask.testing import FlaskClient

from movies import schema
from movies.api.docs import load_spec_text
from movies.api.params import MOVIE_ID
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


AUTH = {"Authorization": "Bearer token-two"}
CHECK_VIOLATION = "23514"


def spec_movie_id() -> re.Pattern[str]:
    movie = yaml.safe_load(load_spec_text())["components"]["schemas"]["Movie"]
    return re.compile(movie["properties"]["id"]["pattern"])


def create_user_movie(client: FlaskClient, title: str) -> str:
    response = client.post("/movies", json={"title": title}, headers=AUTH)
    assert response.status_code == 201, response.json
    fetched = client.get(response.headers["Location"])
    assert fetched.status_code == 200 and fetched.json["title"] == title
    return response.json["id"]


def set_next_user_number(app: Flask, number: int) -> None:
    engine = create_engine(app.config["MOVIES_SETTINGS"].database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT setval('movie_user_number', :n, false)"), {"n": number})
    finally:
        engine.dispose()


def test_user_ids_stay_unique_past_ten_million(write_app: Flask, write_client: FlaskClient) -> None:
    set_next_user_number(write_app, 1_000_000)
    ids = [create_user_movie(write_client, "One million")]
    set_next_user_number(write_app, 9_999_999)
    ids += [create_user_movie(write_client, f"Past ten million {n}") for n in range(3)]
    assert ids == ["um1000000", "um9999999", "um10000000", "um10000001"]
    for movie_id in ids:
        assert spec_movie_id().fullmatch(movie_id) and MOVIE_ID.fullmatch(movie_id)


def test_user_id_of_the_last_number_is_served(write_app: Flask, write_client: FlaskClient) -> None:
    set_next_user_number(write_app, 2**63 - 1)
    movie_id = create_user_movie(write_client, "The last one")
    assert movie_id == "um9223372036854775807"
    assert spec_movie_id().fullmatch(movie_id) and MOVIE_ID.fullmatch(movie_id)


@pytest.mark.parametrize("movie_id", ["um00000001", "um123456", "um0x00001", "tt123456"])
def test_malformed_ids_match_neither_the_spec_nor_the_route(movie_id: str) -> None:
    assert not spec_movie_id().fullmatch(movie_id) and not MOVIE_ID.fullmatch(movie_id)


def test_user_id_check_admits_one_id_per_number(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO movie_user (id, title) VALUES ('um10000000', 'ok')"))
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO movie_user (id, title) VALUES ('um00000001', 'no')"))
    assert caught.value.orig.pgcode == CHECK_VIOLATION


def test_upgrade_gives_user_ids_past_ten_million_all_their_digits(
    make_legacy_database: Callable[[], str],
) -> None:
    engine = create_engine(make_legacy_database())
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO movie_user (title) VALUES ('Before')"))
            conn.execute(sa.text("SELECT setval('movie_user_number', 9999999, false)"))
        assert schema.apply(engine) is True
        with engine.begin() as conn:
            for title in ("Seven digits", "Eight digits", "Eight again"):
                conn.execute(sa.text("INSERT INTO movie_user (title) VALUES (:t)"), {"t": title})
            ids = conn.execute(sa.text("SELECT id FROM movie_user ORDER BY 1")).scalars().all()
        assert ids == ["um0000001", "um10000000", "um10000001", "um9999999"]
    finally:
        engine.dispose()
