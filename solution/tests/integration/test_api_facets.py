"""facets=genre / decade: counts over every movie matching the filters, compared with Python."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient


def all_ids(client: FlaskClient, params: dict[str, str]) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        query = dict(params, limit="100", **({"cursor": cursor} if cursor else {}))
        body = client.get(f"/movies?{urlencode(query)}").json
        ids.update(m["id"] for m in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


def expected_facets(movies: list[dict]) -> dict[str, list[dict]]:
    genres = Counter(name for m in movies for name in m["genres"])
    decades = Counter(None if m["year"] is None else m["year"] // 10 * 10 for m in movies)
    return {
        "genre": [
            {"name": name, "count": count}
            for name, count in sorted(genres.items(), key=lambda item: (-item[1], item[0]))
        ],
        "decade": [
            {"decade": decade, "count": decades[decade]}
            for decade in sorted(decades, key=lambda d: (d is None, d or 0))
        ],
    }


FILTERS = [
    {},
    {"include_adult": "true"},
    {"genre": "Action"},
    {"genre_any": "Drama,Comedy", "genre_not": "Thriller", "rating_gte": "7"},
    {"q": "the"},
    {"year_gte": "1995", "sort": "-rating"},
    {"rating_gt": "10"},  # nothing matches: empty facets
]


@pytest.mark.parametrize("params", FILTERS)
def test_facets_count_every_matching_movie_like_python(
    client: FlaskClient, seed_movies: list[dict], params: dict[str, str]
) -> None:
    matching_ids = all_ids(client, params)
    matching = [m for m in seed_movies if m["id"] in matching_ids]
    response = client.get(f"/movies?{urlencode({**params, 'facets': 'genre,decade', 'limit': 1})}")
    assert response.status_code == 200
    assert response.json["facets"] == expected_facets(matching)
    if not matching:
        assert response.json["facets"] == {"genre": [], "decade": []}


def test_facets_ignore_cursor_and_limit(client: FlaskClient) -> None:
    first = client.get("/movies?facets=decade&limit=2&sort=-votes").json
    second = client.get(f"/movies?facets=decade&limit=5&sort=-votes&cursor={first['next_cursor']}")
    assert second.status_code == 200
    assert second.json["facets"] == first["facets"]
    assert sum(d["count"] for d in first["facets"]["decade"]) == len(all_ids(client, {}))


def test_null_year_is_decade_null_and_last(client: FlaskClient, seed_movies: list[dict]) -> None:
    decades = client.get("/movies?facets=decade").json["facets"]["decade"]
    assert decades[-1]["decade"] is None
    assert decades[-1]["count"] == sum(
        1 for m in seed_movies if m["year"] is None and not m["is_adult"]
    )


@pytest.mark.parametrize(("facets", "keys"), [("genre", {"genre"}), ("decade", {"decade"})])
def test_one_facet_only(client: FlaskClient, facets: str, keys: set[str]) -> None:
    assert set(client.get(f"/movies?facets={facets}").json["facets"]) == keys


def test_no_facets_without_the_parameter(client: FlaskClient) -> None:
    assert "facets" not in client.get("/movies").json


@pytest.mark.parametrize("value", ["year", "genre,", "", "Genre", "genre,decades"])
def test_unknown_facet_is_400(client: FlaskClient, value: str) -> None:
    response = client.get(f"/movies?{urlencode({'facets': value})}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["errors"][0]["param"] == "facets"


def test_unfiltered_facets_count_new_user_movies_and_new_loads(write_client: FlaskClient) -> None:
    from movies.api.connection import db

    def facets() -> dict:
        return write_client.get("/movies?facets=genre,decade").json["facets"]

    assert facets() == {"genre": [], "decade": []}
    body = {"title": "Zoë", "year": 1999, "genres": ["Drama", "War"]}
    headers = {"Authorization": "Bearer token-one"}
    assert write_client.post("/movies", json=body, headers=headers).status_code == 201
    assert facets() == {
        "genre": [{"name": "Drama", "count": 1}, {"name": "War", "count": 1}],
        "decade": [{"decade": 1990, "count": 1}],
    }
    with write_client.application.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO movie_imdb (id, source, title, year, genres) "
            "VALUES ('tt12345678', 'imdb', 'NA', NULL, '{Drama}')"
        )
        conn.exec_driver_sql(
            "INSERT INTO dataset_load (source, rows_read, movies, rated_movies, genre_links, "
            "skipped_rows, seconds) VALUES ('test', 1, 1, 0, 1, 0, 0.1)"
        )
    # What VERSION_TTL_S does for a real load: the worker reads the data version again.
    write_client.application.extensions["movies.caching"].versions.expire()
    assert facets() == {
        "genre": [{"name": "Drama", "count": 2}, {"name": "War", "count": 1}],
        "decade": [{"decade": 1990, "count": 1}, {"decade": None, "count": 1}],
    }
