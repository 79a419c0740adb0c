"""POST /movies on a fresh database: auth, validation, 201 + GET, conflicts, and the rows."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from movies import repository
from movies.db import create_engine

AUTH = {"Authorization": "Bearer token-two"}
GOOD = {
    "title": 'The "Quoted" NA',
    "original_title": "東京物語",
    "year": 1999,
    "genres": ["drama", "Sci-Fi"],
    "rating": 8.7,
    "votes": 0,
    "runtime_minutes": 136,
    "is_adult": False,
    "imdb_id": "tt0133093",
}


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/problem+json"
    return response.json


def test_post_creates_movie_then_get_returns_it(
    write_app: Flask, write_client: FlaskClient
) -> None:
    response = write_client.post("/movies", json=GOOD, headers=AUTH)
    assert response.status_code == 201, response.json
    created = response.json
    assert created["id"] == "um0000001"
    assert response.headers["Location"] == "/movies/um0000001"
    assert created == {
        "id": "um0000001",
        "title": 'The "Quoted" NA',
        "original_title": "東京物語",
        "year": 1999,
        "genres": ["Drama", "Sci-Fi"],
        "rating": 8.7,
        "votes": 0,
        "runtime_minutes": 136,
        "is_adult": False,
        "imdb_url": "https://www.imdb.com/title/tt0133093/",
        "source": "user",
        "score": None,  # no load yet: the mean rating C is unknown
    }
    assert write_client.get(response.headers["Location"]).json == created
    listed = write_client.get("/movies?genre=sci-fi,DRAMA&rating_gt=8.5&sort=-rating").json
    assert listed["items"] == [created]
    by_years = write_client.get("/movies?genre=sci-fi&year_gte=1990&year_lte=1999&rating_gte=8")
    assert by_years.json["items"] == [created]

    engine = create_engine(write_app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as conn:
        links = conn.execute(
            sa.text(
                "SELECT g.name, l.year, l.rating, l.genre_bits = (SELECT bit_or(1::bigint << id) "
                "FROM genre WHERE name IN ('Drama', 'Sci-Fi')), l.votes, l.runtime_minutes "
                "FROM movie_genre_user l "
                "JOIN genre g ON g.id = l.genre_id WHERE l.movie_id = 'um0000001' ORDER BY 1"
            )
        ).all()
        source = conn.execute(sa.text("SELECT source FROM movie WHERE id = 'um0000001'")).scalar()
    engine.dispose()
    # Each link repeats the movie's year, rating, genre bits, votes and runtime (the genre-year
    # way reads them).
    assert [tuple(link) for link in links] == [
        ("Drama", 1999, Decimal("8.7"), True, 0, 136),
        ("Sci-Fi", 1999, Decimal("8.7"), True, 0, 136),
    ]
    assert source == "user"


def test_post_minimal_movie_has_nulls(write_client: FlaskClient) -> None:
    response = write_client.post("/movies", json={"title": "null"}, headers=AUTH)
    assert response.status_code == 201
    body = response.json
    assert body["title"] == "null" and body["imdb_url"] is None and body["genres"] == []
    assert body["rating"] is None and body["year"] is None and body["is_adult"] is False
    second = write_client.post("/movies", json={"title": "null"}, headers=AUTH).json
    assert second["id"] == "um0000002"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "token-one"},
        {"Authorization": "Basic dG9rZW4tb25lOg=="},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer token-one-and-more"},
    ],
)
def test_post_without_valid_token_is_401(write_client: FlaskClient, headers: dict) -> None:
    response = write_client.post("/movies", json=GOOD, headers=headers)
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_post_accepts_every_configured_token(write_client: FlaskClient) -> None:
    for token in ("token-one", "token-two"):
        body = {"title": f"by {token}"}
        response = write_client.post(
            "/movies", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 201


BAD_FIELDS = {
    "title missing": ({"year": 2000}, "title"),
    "title null": ({"title": None}, "title"),
    "title blank": ({"title": "   "}, "title"),
    "title empty": ({"title": ""}, "title"),
    "title too long": ({"title": "x" * 501}, "title"),
    "title not string": ({"title": 7}, "title"),
    "title NUL": ({"title": "a\u0000b"}, "title"),
    "original_title list": ({"title": "t", "original_title": ["a"]}, "original_title"),
    "year string": ({"title": "t", "year": "1999"}, "year"),
    "year bool": ({"title": "t", "year": True}, "year"),
    "year float": ({"title": "t", "year": 1999.0}, "year"),
    "year too old": ({"title": "t", "year": 1869}, "year"),
    "year too new": ({"title": "t", "year": 2101}, "year"),
    "genres string": ({"title": "t", "genres": "Drama"}, "genres"),
    "genres unknown": ({"title": "t", "genres": ["Drama", "Space-Opera"]}, "genres"),
    "genres four": ({"title": "t", "genres": ["Drama", "Action", "War", "Crime"]}, "genres"),
    "genres duplicate": ({"title": "t", "genres": ["Drama", "drama"]}, "genres"),
    "genres not strings": ({"title": "t", "genres": [1]}, "genres"),
    "rating string": ({"title": "t", "rating": "7.5"}, "rating"),
    "rating bool": ({"title": "t", "rating": True}, "rating"),
    "rating two decimals": ({"title": "t", "rating": 7.55}, "rating"),
    "rating too low": ({"title": "t", "rating": 0.9}, "rating"),
    "rating too high": ({"title": "t", "rating": 10.1}, "rating"),
    "votes negative": ({"title": "t", "votes": -1}, "votes"),
    "votes string": ({"title": "t", "votes": "7"}, "votes"),
    "votes huge": ({"title": "t", "votes": 2**40}, "votes"),
    "runtime zero": ({"title": "t", "runtime_minutes": 0}, "runtime_minutes"),
    "is_adult int": ({"title": "t", "is_adult": 1}, "is_adult"),
    "imdb_id bad": ({"title": "t", "imdb_id": "nm0000001"}, "imdb_id"),
    "imdb_id short": ({"title": "t", "imdb_id": "tt123"}, "imdb_id"),
    "unknown field": ({"title": "t", "director": "Me"}, "director"),
    "id given": ({"title": "t", "id": "um0000009"}, "id"),
}


@pytest.mark.parametrize("name", BAD_FIELDS)
def test_post_rejects_invalid_field(write_client: FlaskClient, name: str) -> None:
    body, field = BAD_FIELDS[name]
    errors = problem(write_client.post("/movies", json=body, headers=AUTH), 400)["errors"]
    assert field in {e["param"] for e in errors}
    assert write_client.get("/movies").json["items"] == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"",
        b"[1, 2]",
        b'"title"',
        b"null",
        b'{"title": NaN}',
        b"\xff\xfe",
        b"[" * 60_000,
        b'{"title": "\\ud800"}',
    ],
)
def test_post_rejects_malformed_json(write_client: FlaskClient, raw: bytes) -> None:
    response = write_client.post(
        "/movies", data=raw, headers=dict(AUTH, **{"Content-Type": "application/json"})
    )
    problem(response, 400)


def test_post_lone_surrogate_title_is_400_not_500(write_client: FlaskClient) -> None:
    raw = json.dumps({"title": "\ud800"}).encode()
    response = write_client.post(
        "/movies", data=raw, headers=dict(AUTH, **{"Content-Type": "application/json"})
    )
    assert problem(response, 400)["errors"][0]["param"] == "title"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_post_non_json_is_415(write_client: FlaskClient, content_type: str | None) -> None:
    headers = dict(AUTH, **({"Content-Type": content_type} if content_type else {}))
    problem(write_client.post("/movies", data=json.dumps(GOOD), headers=headers), 415)


def test_post_oversize_body_is_413(write_client: FlaskClient) -> None:
    raw = json.dumps({"title": "t", "original_title": "x" * 70_000})
    problem(
        write_client.post(
            "/movies", data=raw, headers=dict(AUTH, **{"Content-Type": "application/json"})
        ),
        413,
    )


def test_post_duplicate_imdb_id_is_409(write_client: FlaskClient) -> None:
    assert write_client.post("/movies", json=GOOD, headers=AUTH).status_code == 201
    again = dict(GOOD, title="Another")
    assert (
        "tt0133093"
        in problem(write_client.post("/movies", json=again, headers=AUTH), 409)["detail"]
    )
    assert len(write_client.get("/movies").json["items"]) == 1


def test_post_imdb_id_of_an_imdb_movie_is_409(write_app: Flask, write_client: FlaskClient) -> None:
    engine = create_engine(write_app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO movie_imdb (id, source, title) VALUES ('tt12345678', 'imdb', 'x')")
        )
    engine.dispose()
    body = dict(GOOD, imdb_id="tt12345678")
    problem(write_client.post("/movies", json=body, headers=AUTH), 409)


def test_post_unique_violation_maps_to_409(
    write_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A race the pre-check cannot see (insert between check and insert) still answers 409."""
    assert write_client.post("/movies", json=GOOD, headers=AUTH).status_code == 201
    monkeypatch.setattr(repository, "imdb_id_taken", lambda conn, imdb_id: False)
    response = write_client.post("/movies", json=dict(GOOD, title="racer"), headers=AUTH)
    problem(response, 409)


def test_readyz_is_503_and_dataset_404_before_any_load(write_client: FlaskClient) -> None:
    problem(write_client.get("/readyz"), 503)
    problem(write_client.get("/dataset"), 404)
    assert write_client.get("/healthz").status_code == 200
