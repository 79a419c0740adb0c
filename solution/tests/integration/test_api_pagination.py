"""Walk every page of every sort and compare with an independent Python sort."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient

from movies import query as q
from movies import repository
from movies.db import create_engine
from movies.query.genres import LINKS_GENRE

SORTS = [
    "title",
    "-title",
    "year",
    "-year",
    "rating",
    "-rating",
    "votes",
    "-votes",
    "runtime",
    "-runtime",
    "-rating,title",
    "year,-votes,title",
    "-runtime,rating,-year",
]


def walk(client: FlaskClient, params: dict[str, str]) -> list[dict]:
    """Follow next_cursor to the end; return every item in order."""
    items: list[dict] = []
    cursor = None
    for _ in range(1000):
        page_params = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get(f"/movies?{urlencode(page_params)}")
        assert response.status_code == 200, response.json
        body = response.json
        assert len(body["items"]) <= int(params.get("limit", 20))
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            assert body["links"]["next"] is None and "Link" not in response.headers
            return items
        assert len(body["items"]) == int(params.get("limit", 20))
    raise AssertionError("pagination did not end")


def visible(movies: list[dict]) -> list[dict]:
    return [m for m in movies if not m["is_adult"]]


@pytest.mark.parametrize("sort", SORTS)
def test_list_movies_walks_all_pages_in_python_order(
    client: FlaskClient, seed_movies: list[dict], sort_like_api: Callable, sort: str
) -> None:
    items = walk(client, {"sort": sort, "limit": "7"})
    ids = [m["id"] for m in items]
    assert len(ids) == len(set(ids)), "a movie was repeated"
    assert items == sort_like_api(visible(seed_movies), sort)


@pytest.mark.parametrize("sort", ["-rating", "year", "title", "-votes,runtime"])
def test_list_movies_walk_with_filters_matches_python(
    client: FlaskClient, seed_movies: list[dict], sort_like_api: Callable, sort: str
) -> None:
    params = {"sort": sort, "limit": "4", "genre": "drama", "rating_gte": "5.5", "year_lte": "1997"}
    expected = [
        m
        for m in visible(seed_movies)
        if "Drama" in m["genres"]
        and m["rating"] is not None
        and m["rating"] >= 5.5
        and m["year"] is not None
        and m["year"] <= 1997
    ]
    assert len(expected) > 8
    assert walk(client, params) == sort_like_api(expected, sort)


GENRE_YEAR_QUERIES = [
    {"genre": "drama", "year_gte": "1992", "year_lte": "1997"},
    {"genre": "action,drama", "rating_gte": "5.5", "year_lte": "1998"},
]


@pytest.mark.parametrize("sort", [*SORTS, "-score", "score,-votes"])
@pytest.mark.parametrize("filters", GENRE_YEAR_QUERIES, ids=["one-genre", "two-genres-rated"])
def test_genre_and_years_walk_the_links_in_python_order(
    client: FlaskClient,
    seeded_database: tuple[str, list[dict]],
    sort_like_api: Callable,
    sort: str,
    filters: dict[str, str],
) -> None:
    """Genres and years take the links' way (the candidates sorted by the links' copy of the
    keys, or their movies sorted for title and score): ties, NULLs, user movies, every page."""
    url, seed_movies = seeded_database
    genre_names = [name.capitalize() for name in filters["genre"].split(",")]
    query = q.MovieQuery(
        genres=tuple(genre_names),
        ranges=tuple(
            (name, Decimal(value) if name.startswith("rating") else int(value))
            for name, value in sorted(filters.items())
            if name != "genre"
        ),
        sort=q.parse_sort(sort),
    )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sql = repository.page_sql(conn, query, None, repository.GenreVocabulary())
    finally:
        engine.dispose()
    assert sql.params[LINKS_GENRE] in genre_names, "the links' way"

    low = int(filters.get("year_gte", 0))
    high = int(filters.get("year_lte", 9999))
    expected = [
        m
        for m in visible(seed_movies)
        if set(genre_names) <= set(m["genres"])
        and m["year"] is not None
        and low <= m["year"] <= high
        and ("rating_gte" not in filters or (m["rating"] or 0) >= float(filters["rating_gte"]))
    ]
    assert len(expected) > 6 and any(m["source"] == "user" for m in expected)
    assert walk(client, {**filters, "sort": sort, "limit": "3"}) == sort_like_api(expected, sort)


def test_list_movies_walk_including_adult(
    client: FlaskClient, seed_movies: list[dict], sort_like_api: Callable
) -> None:
    items = walk(client, {"sort": "-year", "limit": "50", "include_adult": "true"})
    assert any(m["is_adult"] for m in items)
    assert items == sort_like_api(seed_movies, "-year")


def test_list_movies_default_sort_is_title_then_id(
    client: FlaskClient, seed_movies: list[dict], sort_like_api: Callable
) -> None:
    body = client.get("/movies?limit=100").json
    assert body["items"] == sort_like_api(visible(seed_movies), "title")[:100]


def test_list_movies_link_header_walks_to_the_end(
    client: FlaskClient, seed_movies: list[dict], sort_like_api: Callable
) -> None:
    url = "/movies?sort=-rating&limit=9"
    items: list[dict] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        items.extend(response.json["items"])
        link = response.headers.get("Link")
        assert (link is None) == (response.json["links"]["next"] is None)
        if link is None:
            break
        target, rel = link.split(";")
        assert rel.strip() == 'rel="next"'
        url = target.strip()[1:-1]
        assert url == response.json["links"]["next"]
    assert items == sort_like_api(visible(seed_movies), "-rating")


def test_list_movies_exactly_full_last_page_has_no_cursor(
    client: FlaskClient, seed_movies: list[dict]
) -> None:
    matching = [m for m in visible(seed_movies) if m["rating"] == 10.0 and "Drama" in m["genres"]]
    n = len(matching)
    assert 2 < n <= 100
    full = client.get(f"/movies?rating_gte=10&genre=Drama&limit={n}").json
    assert len(full["items"]) == n and full["next_cursor"] is None
    short = client.get(f"/movies?rating_gte=10&genre=Drama&limit={n - 1}").json
    assert short["next_cursor"] is not None
    rest = client.get(
        f"/movies?rating_gte=10&genre=Drama&limit={n - 1}&cursor={short['next_cursor']}"
    ).json
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None


def test_list_movies_cursor_survives_limit_change(client: FlaskClient) -> None:
    first = client.get("/movies?sort=-votes&limit=5").json
    cursor = first["next_cursor"]
    ten = client.get(f"/movies?sort=-votes&limit=10&cursor={cursor}").json
    five = client.get(f"/movies?sort=-votes&limit=5&cursor={cursor}").json
    assert ten["items"][:5] == five["items"]
