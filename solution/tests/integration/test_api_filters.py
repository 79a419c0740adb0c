"""Each filter alone and combined, compared with a Python filter of the seed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient

from movies import query as q
from movies.query import genres as genre_paths


def everything(client: FlaskClient, params: dict[str, str]) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        query = {"limit": "100", **params, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/movies?{urlencode(query)}").json
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def _ge(field: str, bound: float) -> Callable[[dict], bool]:
    return lambda m: m[field] is not None and m[field] >= bound


def _le(field: str, bound: float) -> Callable[[dict], bool]:
    return lambda m: m[field] is not None and m[field] <= bound


FILTERS: dict[str, tuple[dict[str, str], Callable[[dict], bool]]] = {
    "genre": ({"genre": "Action"}, lambda m: "Action" in m["genres"]),
    "genre_all_of_two": (
        {"genre": "thriller,ACTION"},
        lambda m: {"Action", "Thriller"} <= set(m["genres"]),
    ),
    "genre_with_dash": ({"genre": "sci-fi"}, lambda m: "Sci-Fi" in m["genres"]),
    "rating_gt": ({"rating_gt": "8.6"}, lambda m: m["rating"] is not None and m["rating"] > 8.6),
    "rating_gte": ({"rating_gte": "8.6"}, _ge("rating", 8.6)),
    "rating_lt": ({"rating_lt": "7"}, lambda m: m["rating"] is not None and m["rating"] < 7),
    "rating_lte": ({"rating_lte": "7.0"}, _le("rating", 7.0)),
    "year": ({"year": "1995"}, lambda m: m["year"] == 1995),
    "year_gte": ({"year_gte": "1998"}, _ge("year", 1998)),
    "year_lte": ({"year_lte": "1991"}, _le("year", 1991)),
    "runtime_gte": ({"runtime_gte": "100"}, _ge("runtime_minutes", 100)),
    "runtime_lte": ({"runtime_lte": "90"}, _le("runtime_minutes", 90)),
    "votes_gte": ({"votes_gte": "1000"}, _ge("votes", 1000)),
    "votes_gte_zero_excludes_null": ({"votes_gte": "0"}, _ge("votes", 0)),
}


@pytest.mark.parametrize("name", FILTERS)
def test_list_movies_filter_alone_matches_python(
    client: FlaskClient, seed_movies: list[dict], sort_like_api: Callable, name: str
) -> None:
    params, keep = FILTERS[name]
    expected = [m for m in seed_movies if not m["is_adult"] and keep(m)]
    assert expected, "the seed should exercise this filter"
    assert everything(client, params) == sort_like_api(expected, "title")


def test_list_movies_filters_combined_are_anded(
    client: FlaskClient, seed_movies: list[dict], sort_like_api: Callable
) -> None:
    names = ["genre", "rating_gte", "year_gte", "runtime_lte", "votes_gte"]
    params: dict[str, str] = {}
    for name in names:
        params.update(FILTERS[name][0])
    params["year_gte"] = "1992"
    params["rating_gte"] = "5.5"
    params["votes_gte"] = "5"
    expected = [
        m
        for m in seed_movies
        if not m["is_adult"]
        and "Action" in m["genres"]
        and _ge("rating", 5.5)(m)
        and _ge("year", 1992)(m)
        and _le("runtime_minutes", 90)(m)
        and _ge("votes", 5)(m)
    ]
    assert expected
    assert everything(client, dict(params, sort="-year")) == sort_like_api(expected, "-year")


def test_list_movies_action_rated_over_8_5_row_by_row(
    client: FlaskClient, seed_movies: list[dict], sort_like_api: Callable
) -> None:
    items = everything(client, {"genre": "Action", "rating_gt": "8.5"})
    expected = [
        m
        for m in seed_movies
        if not m["is_adult"]
        and "Action" in m["genres"]
        and m["rating"] is not None
        and m["rating"] > 8.5
    ]
    assert len(items) == len(expected) > 3
    for got, want in zip(items, sort_like_api(expected, "title"), strict=True):
        assert got == want
        assert got["rating"] > 8.5 and "Action" in got["genres"]
    assert any(m["source"] == "user" for m in items), "user movies list with IMDb ones"


def test_list_movies_hides_adult_unless_asked(client: FlaskClient, seed_movies: list[dict]) -> None:
    adult = {m["id"] for m in seed_movies if m["is_adult"]}
    assert adult
    assert not adult & {m["id"] for m in everything(client, {})}
    assert adult <= {m["id"] for m in everything(client, {"include_adult": "true"})}
    only_adult_genre = everything(client, {"genre": "Adult", "include_adult": "true"})
    assert only_adult_genre and all("Adult" in m["genres"] for m in only_adult_genre)


def test_list_movies_bound_equal_to_rating_is_exact(client: FlaskClient) -> None:
    gt = {m["id"] for m in everything(client, {"rating_gt": "8.5"})}
    gte = {m["id"] for m in everything(client, {"rating_gte": "8.5"})}
    at = {m["id"] for m in everything(client, {"rating_gte": "8.5", "rating_lte": "8.5"})}
    assert at and gte - gt == at


@pytest.mark.parametrize("mode", ["exact", "estimate"])
def test_list_movies_count_adds_total(
    client: FlaskClient, seed_movies: list[dict], mode: str
) -> None:
    body = client.get(f"/movies?genre=Drama&count={mode}&limit=3").json
    expected = sum(1 for m in seed_movies if not m["is_adult"] and "Drama" in m["genres"])
    if mode == "exact":
        assert body["total"] == expected
    else:
        assert isinstance(body["total"], int) and body["total"] >= 0
    assert "total" not in client.get("/movies?genre=Drama&limit=3").json


def test_movie_has_every_field(client: FlaskClient, seed_movies: list[dict]) -> None:
    for movie in seed_movies[:40] + seed_movies[-3:]:
        response = client.get(f"/movies/{movie['id']}")
        assert response.status_code == 200
        assert response.json == movie
        assert list(response.json) == [
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
        ]


def test_nasty_titles_come_back_byte_for_byte(client: FlaskClient, seed_movies: list[dict]) -> None:
    titles = {m["title"] for m in everything(client, {"include_adult": "true"})}
    for nasty in ["NA", "null", "None", "\\N", '"', 'The "Quoted" One', "東京物語", "x" * 500]:
        assert nasty in titles
    eight_digit = [m for m in seed_movies if len(m["id"]) == 10]
    assert eight_digit and client.get(f"/movies/{eight_digit[0]['id']}").status_code == 200


def test_genres_lists_vocabulary_with_counts(client: FlaskClient, seed_movies: list[dict]) -> None:
    items = client.get("/genres").json["items"]
    counts = {item["name"]: item["movies"] for item in items}
    assert len(counts) == 28 and list(counts) == sorted(counts)
    assert counts["Action"] == sum("Action" in m["genres"] for m in seed_movies)
    assert counts["Western"] == 0


def test_dataset_and_probes(client: FlaskClient, seed_movies: list[dict]) -> None:
    dataset = client.get("/dataset").json
    assert dataset["source"] == "seed"
    assert dataset["movies"] == sum(m["source"] == "imdb" for m in seed_movies)
    assert dataset["basics_last_modified"].startswith("2026-11-01T00:00:00")
    assert dataset["ratings_last_modified"] is None
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}


GENRE_QUERIES: dict[str, tuple[dict[str, str], Callable[[dict], bool]]] = {
    "genre, years, rating, -rating": (
        {"genre": "Action", "year_gte": "1992", "rating_gte": "5.5", "sort": "-rating"},
        lambda m: "Action" in m["genres"] and _ge("year", 1992)(m) and _ge("rating", 5.5)(m),
    ),
    "two genres, a span of years, -votes": (
        {"genre": "thriller,ACTION", "year_gte": "1990", "year_lte": "2005", "sort": "-votes"},
        lambda m: (
            {"Action", "Thriller"} <= set(m["genres"])
            and _ge("year", 1990)(m)
            and _le("year", 2005)(m)
        ),
    ),
    "two genres, years, a rating ceiling, title": (
        {
            "genre": "Action,Thriller",
            "year_gte": "1985",
            "year_lte": "2010",
            "rating_lte": "7",
            "sort": "title",
        },
        lambda m: (
            {"Action", "Thriller"} <= set(m["genres"])
            and _ge("year", 1985)(m)
            and _le("year", 2010)(m)
            and _le("rating", 7)(m)
        ),
    ),
    "genre, years up to, rating below": (
        {"genre": "Drama", "year_lte": "1996", "rating_lt": "8", "sort": "year"},
        lambda m: "Drama" in m["genres"] and _le("year", 1996)(m) and _le("rating", 7.9)(m),
    ),
    "a genre alone": (
        {"genre": "film-noir", "sort": "-rating"},
        lambda m: "Film-Noir" in m["genres"],
    ),
    "a genre alone, two keys": (
        {"genre": "film-noir", "sort": "-year,votes"},
        lambda m: "Film-Noir" in m["genres"],
    ),
    "genre, one year": (
        {"genre": "film-noir", "year": "1993", "sort": "title"},
        lambda m: "Film-Noir" in m["genres"] and m["year"] == 1993,
    ),
}


@pytest.fixture(params=["few candidates first", "usual plan"])
def genre_way_app(
    request: pytest.FixtureRequest, make_seeded_app: Callable[..., Flask]
) -> Iterator[Flask]:
    """An app (no response cache) whose genre pages take the way for few candidates, or (no
    bound admits any) the usual plan."""
    if request.param == "usual plan":
        patch = pytest.MonkeyPatch()
        patch.setattr(genre_paths, "GENRE_LINKS_CANDIDATES", 0)
        patch.setattr(genre_paths, "SMALL_GENRE", -1)
        request.addfinalizer(patch.undo)
    q.statement_text.cache_clear()  # shapes compiled with the other bound
    request.addfinalizer(q.statement_text.cache_clear)
    yield make_seeded_app(response_cache_mb=0)


@pytest.mark.parametrize("name", GENRE_QUERIES)
def test_genre_pages_match_python_on_either_path(
    genre_way_app: Flask, seed_movies: list[dict], sort_like_api: Callable, name: str
) -> None:
    params, keep = GENRE_QUERIES[name]
    expected = [m for m in seed_movies if not m["is_adult"] and keep(m)]
    assert len(expected) > 3, "the seed should exercise this query"
    got = everything(genre_way_app.test_client(), dict(params, limit="3"))
    assert got == sort_like_api(expected, params["sort"])
