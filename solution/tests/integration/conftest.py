"""API fixtures: a session-scoped database seeded with deliberately nasty movies, and apps on it.

The seed comes from a seeded RNG and is written with plain SQL (no loader): ties on every sort key,
NULL years/ratings/votes/runtimes, titles with bare quotes, `NA`/`null`/`None`/`\\N`, unicode and
500 characters, 7- and 8-digit tconsts, adult movies and a few user movies. `seed_movies` hands
out the same movies in the API's JSON shape, so tests compare responses with plain Python.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import cmp_to_key
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from movies.api.connection import db
from movies.app import create_app
from movies.config import Settings
from movies.db import create_engine
from movies.search import fold_titles

SECRET = "test-secret-key"
TOKENS = ("token-one", "token-two")
SEED = 20_261_126
# The session apps serve many tests within a minute; rate limits have their own tests.
NO_RATE_LIMITS = {"rate_limit_reads": "", "rate_limit_writes": ""}

TITLES = [
    "NA",
    "null",
    "None",
    "NaN",
    "\\N",
    '"',
    'The "Quoted" One',
    'Ends with a quote"',
    "Amélie",
    "Ämélie",
    "東京物語",
    "Zoë",
    "🎬 Reel",
    "a",
    "A",
    "A ",
    "The Matrix",
    "the matrix",
    "Heat",
    "Heat",
    "Alien",
    "Aliens",
    "x" * 500,
    "Tab\tInside",
    "Comma, Inside",
    "Semi; colon",
    "O'Brien",
    "100",
    "99",
    "-",
]
GENRES = ["Action", "Thriller", "Drama", "Comedy", "Sci-Fi", "Film-Noir", "Romance"]
RATINGS = [Decimal(r) for r in ("1.0", "5.5", "7.0", "8.5", "8.6", "8.7", "9.0", "10.0")]
VOTES = [0, 5, 100, 1000, 250_000]
RUNTIMES = [1, 90, 90, 120, 51_420]
MOVIE_KEYS = (
    "id",
    "title",
    "original_title",
    "year",
    "genres",
    "rating",
    "votes",
    "runtime_minutes",
    "is_adult",
    "imdb_url",
    "source",
    "score",
)


def _maybe(rng: random.Random, chance_of_null: float, value: Any) -> Any:
    return None if rng.random() < chance_of_null else value


def build_seed(count: int = 320, seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """(imdb rows, user rows) as movie column dicts; deterministic for a seed."""
    rng = random.Random(seed)
    numbers = rng.sample(range(1, 9_000_000), count)
    imdb: list[dict] = []
    for n, number in enumerate(numbers):
        tconst = f"tt{number:07d}" if n % 3 else f"tt{10_000_000 + number:08d}"
        rating = _maybe(rng, 0.2, rng.choice(RATINGS))
        genres = sorted(rng.sample(GENRES, rng.randint(0, 3)))
        is_adult = rng.random() < 0.06
        if is_adult and rng.random() < 0.5:
            genres = sorted({*genres[:2], "Adult"})
        title = rng.choice(TITLES)
        imdb.append(
            {
                "id": tconst,
                "source": "imdb",
                "title": title,
                "original_title": rng.choice([None, title, title + " (original)"]),
                "year": _maybe(rng, 0.15, rng.randint(1990, 1999)),
                "runtime_minutes": _maybe(rng, 0.2, rng.choice(RUNTIMES)),
                "rating": rating,
                "votes": None if rating is None else rng.choice(VOTES),
                "is_adult": is_adult,
                "genres": genres,
                "imdb_id": None,
            }
        )
    # A rated movie with no votes and an unrated one with votes: the two are independent columns.
    imdb[0]["votes"], imdb[1]["rating"] = None, Decimal("8.6")
    user = [
        {
            "title": "Heat",
            "original_title": None,
            "year": 1995,
            "runtime_minutes": 170,
            "rating": Decimal("8.3"),
            "votes": 10,
            "is_adult": False,
            "genres": ["Action", "Drama"],
            "imdb_id": "tt0113277",
        },
        {
            "title": "NA",
            "original_title": "NA",
            "year": None,
            "runtime_minutes": None,
            "rating": None,
            "votes": None,
            "is_adult": False,
            "genres": [],
            "imdb_id": None,
        },
        {
            "title": "Action night",
            "original_title": None,
            "year": 1999,
            "runtime_minutes": 90,
            "rating": Decimal("8.7"),
            "votes": 100,
            "is_adult": False,
            "genres": ["Action"],
            "imdb_id": None,
        },
    ]
    return imdb, user


def insert_seed(engine: sa.Engine, imdb: list[dict], user: list[dict]) -> list[dict]:
    """Write the seed with SQL (movie_imdb, movie_user, links with their movies' year, rating,
    genre bits, votes and runtime, the genre sizes in all and per year, one dataset_load row).

    Returns the user rows with their generated ids.
    """
    imdb = [{**row, **search_columns(row)} for row in imdb]
    user = [{**row, **search_columns(row)} for row in user]
    with engine.begin() as conn:
        genre_ids = {name: gid for name, gid in conn.execute(sa.text("SELECT name, id FROM genre"))}

        def bits(names: list[str]) -> int:
            return sum(1 << genre_ids[name] for name in set(names))

        columns = list(imdb[0])
        conn.execute(
            sa.text(
                f"INSERT INTO movie_imdb ({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)})"
            ),
            imdb,
        )
        links = [
            {
                "movie_id": row["id"],
                "genre_id": genre_ids[name],
                "year": row["year"],
                "rating": row["rating"],
                "genre_bits": bits(row["genres"]),
                "votes": row["votes"],
                "runtime_minutes": row["runtime_minutes"],
            }
            for row in imdb
            for name in row["genres"]
        ]
        conn.execute(
            sa.text(
                "INSERT INTO movie_genre_imdb (movie_id, source, genre_id, year, rating, "
                "genre_bits, votes, runtime_minutes) VALUES (:movie_id, 'imdb', :genre_id, "
                ":year, :rating, :genre_bits, :votes, :runtime_minutes)"
            ),
            links,
        )
        conn.execute(
            sa.text(
                "UPDATE genre SET imdb_movies = (SELECT count(*) FROM movie_genre_imdb "
                "WHERE genre_id = genre.id)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO genre_year (genre_id, year, imdb_movies) SELECT genre_id, year, "
                "count(*) FROM movie_genre_imdb WHERE year IS NOT NULL GROUP BY 1, 2"
            )
        )
        created = []
        for row in user:
            columns = list(row)
            new_id = conn.execute(
                sa.text(
                    f"INSERT INTO movie_user ({', '.join(columns)}) "
                    f"VALUES ({', '.join(':' + c for c in columns)}) RETURNING id"
                ),
                row,
            ).scalar_one()
            for name in row["genres"]:
                conn.execute(
                    sa.text(
                        "INSERT INTO movie_genre_user (movie_id, genre_id, year, rating, "
                        "genre_bits, votes, runtime_minutes) "
                        "VALUES (:m, :g, :year, :rating, :bits, :votes, :runtime)"
                    ),
                    {
                        "m": new_id,
                        "g": genre_ids[name],
                        "year": row["year"],
                        "rating": row["rating"],
                        "bits": bits(row["genres"]),
                        "votes": row["votes"],
                        "runtime": row["runtime_minutes"],
                    },
                )
            created.append({**row, "id": new_id, "source": "user"})
        # Written a minute before the tests run, as data usually are: the API sends
        # Last-Modified only once the second of the latest change is over (api.caching).
        conn.execute(sa.text("UPDATE movie_user SET created_at = now() - interval '1 minute'"))
        conn.execute(
            sa.text(
                "INSERT INTO dataset_load (loaded_at, source, basics_last_modified, "
                "ratings_last_modified, rows_read, movies, rated_movies, genre_links, "
                "skipped_rows, seconds) VALUES (now() - interval '1 minute', 'seed', "
                "'2026-11-01T00:00:00Z', NULL, :n, :n, :rated, :links, 0, 0.25)"
            ),
            {
                "n": len(imdb),
                "rated": sum(r["rating"] is not None for r in imdb),
                "links": len(links),
            },
        )
    return created


def search_columns(row: dict) -> dict[str, str]:
    """The stored search folds of a seeded row (what the loader and POST /movies store)."""
    title, original = fold_titles(row["title"], row["original_title"])
    return {"search_title": title, "search_original": original}


def api_movie(row: dict) -> dict:
    """A seeded row as GET /movies shows it."""
    tconst = row["id"] if row["source"] == "imdb" else row["imdb_id"]
    return {
        "id": row["id"],
        "title": row["title"],
        "original_title": row["original_title"],
        "year": row["year"],
        "genres": row["genres"],
        "rating": None if row["rating"] is None else float(row["rating"]),
        "votes": row["votes"],
        "runtime_minutes": row["runtime_minutes"],
        "is_adult": row["is_adult"],
        "imdb_url": f"https://www.imdb.com/title/{tconst}/" if tconst else None,
        "source": row["source"],
        "score": None if row.get("score") is None else float(row["score"]),
    }


SORT_FIELDS = {
    "title": "title",
    "year": "year",
    "rating": "rating",
    "votes": "votes",
    "runtime": "runtime_minutes",
    "score": "score",
}


def python_sort(movies: list[dict], sort: str) -> list[dict]:
    """An independent implementation of the API order: NULLs last both ways, id breaks ties
    in the first key's direction."""
    keys = [(part.lstrip("-"), part.startswith("-")) for part in sort.split(",")]

    def compare(a: dict, b: dict) -> int:
        for name, descending in keys:
            x, y = a[SORT_FIELDS[name]], b[SORT_FIELDS[name]]
            if x == y:
                continue
            if x is None:
                return 1
            if y is None:
                return -1
            result = -1 if x < y else 1
            return -result if descending else result
        result = (a["id"] > b["id"]) - (a["id"] < b["id"])
        return -result if keys[0][1] else result

    return sorted(movies, key=cmp_to_key(compare))


def close_app(app: Flask) -> None:
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def seeded_database(make_database: Callable[[], str]) -> tuple[str, list[dict]]:
    """(URL, movies in API shape) of a session-wide database holding the nasty seed. Read only."""
    url = make_database()
    imdb, user = build_seed()
    engine = create_engine(url)
    created = insert_seed(engine, imdb, user)
    engine.dispose()
    return url, [api_movie(row) for row in imdb + created]


@pytest.fixture(scope="session")
def seed_movies(seeded_database: tuple[str, list[dict]]) -> list[dict]:
    """Every seeded movie (IMDb and user, adult included) in the API's JSON shape."""
    return seeded_database[1]


@pytest.fixture(scope="session")
def app(seeded_database: tuple[str, list[dict]]) -> Iterator[Flask]:
    """The API on the seeded database; writes disabled (no tokens)."""
    application = create_app(
        Settings(database_url=seeded_database[0], secret_key=SECRET, **NO_RATE_LIMITS)
    )
    yield application
    close_app(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_seeded_app(seeded_database: tuple[str, list[dict]]) -> Iterator[Callable[..., Flask]]:
    """`make_seeded_app(**settings)`: a new app of its own (empty caches, its own pool) on the
    seeded database, the other settings at their defaults; closed at the end of the test."""
    apps: list[Flask] = []

    def make(**settings: Any) -> Flask:
        apps.append(create_app(Settings(database_url=seeded_database[0], **settings)))
        return apps[-1]

    yield make
    for application in apps:
        close_app(application)


@pytest.fixture(scope="session")
def write_app(make_database: Callable[[], str]) -> Iterator[Flask]:
    """The API on its own database (not the seeded one), with two write tokens."""
    application = create_app(
        Settings(
            database_url=make_database(), secret_key=SECRET, api_tokens=TOKENS, **NO_RATE_LIMITS
        )
    )
    yield application
    close_app(application)


@pytest.fixture
def write_client(write_app: Flask) -> FlaskClient:
    """A client on the write app, whose database is emptied first: every test starts fresh."""
    with write_app.app_context():
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "TRUNCATE movie_user, movie_genre_user, movie_imdb, movie_genre_imdb, dataset_load"
            )
            conn.exec_driver_sql("ALTER SEQUENCE movie_user_number RESTART")
    # The data changed behind the API's back: its cached data version (and responses) are stale.
    write_app.extensions["movies.caching"].versions.expire()
    return write_app.test_client()


@pytest.fixture(scope="session")
def sort_like_api() -> Callable[[list[dict], str], list[dict]]:
    """`sort_like_api(movies, "-rating,title")`: the independent Python order."""
    return python_sort
