"""genre_any (at least one of) and genre_not (none of), beside genre (all of), compared with a
Python filter of the nasty seed, alone, combined and under every sort, walking every page."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient


def walk(client: FlaskClient, params: dict[str, str], limit: int = 7) -> list[str]:
    """The ids of every page, following next_cursor to the end (no id may repeat)."""
    ids: list[str] = []
    cursor = None
    while True:
        query = dict(params, limit=str(limit), **({"cursor": cursor} if cursor else {}))
        response = client.get(f"/movies?{urlencode(query)}")
        assert response.status_code == 200, response.json
        ids.extend(movie["id"] for movie in response.json["items"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            assert len(ids) == len(set(ids))
            return ids


CASES: dict[str, tuple[dict[str, str], Callable[[set[str]], bool]]] = {
    "any_one": ({"genre_any": "Film-Noir"}, lambda g: "Film-Noir" in g),
    "any_two_case_insensitive": (
        {"genre_any": "film-noir,ROMANCE"},
        lambda g: bool(g & {"Film-Noir", "Romance"}),
    ),
    "not_one": ({"genre_not": "Drama"}, lambda g: "Drama" not in g),
    "not_two_keeps_genreless": (
        {"genre_not": "drama,action"},
        lambda g: not g & {"Drama", "Action"},
    ),
    "any_and_not": (
        {"genre_any": "Action,Comedy", "genre_not": "Thriller"},
        lambda g: bool(g & {"Action", "Comedy"}) and "Thriller" not in g,
    ),
    "all_any_not": (
        {"genre": "Drama", "genre_any": "Action,Sci-Fi", "genre_not": "Romance,Comedy"},
        lambda g: "Drama" in g and bool(g & {"Action", "Sci-Fi"}) and not g & {"Romance", "Comedy"},
    ),
    "any_and_not_same_genre_is_empty": (
        {"genre_any": "Action", "genre_not": "Action"},
        lambda g: False,
    ),
    "any_repeated_name": ({"genre_any": "Action,action"}, lambda g: "Action" in g),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("sort", ["title", "-rating", "votes,-year"])
def test_genre_logic_walks_every_page_like_python(
    client: FlaskClient,
    seed_movies: list[dict],
    sort_like_api: Callable,
    case: str,
    sort: str,
) -> None:
    params, keep = CASES[case]
    expected = [m for m in seed_movies if not m["is_adult"] and keep(set(m["genres"]))]
    if case != "any_and_not_same_genre_is_empty":
        assert expected, "the seed should exercise this case"
    got = walk(client, {**params, "sort": sort})
    assert got == [m["id"] for m in sort_like_api(expected, sort)]


def test_genre_not_adult_with_include_adult_drops_adult_genre_only(
    client: FlaskClient, seed_movies: list[dict]
) -> None:
    expected = {m["id"] for m in seed_movies if "Adult" not in m["genres"]}
    got = set(walk(client, {"genre_not": "Adult", "include_adult": "true"}, limit=100))
    assert got == expected
    assert any(m["is_adult"] for m in seed_movies if m["id"] in got)


@pytest.mark.parametrize("param", ["genre_any", "genre_not"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Action,Nope", "unknown genre(s) Nope; valid: Action, Adult, Adventure"),
        ("Action,", "empty genre name"),
        ("", "empty genre name"),
    ],
)
def test_bad_genre_names_are_400_naming_the_parameter(
    client: FlaskClient, param: str, value: str, message: str
) -> None:
    response = client.get(f"/movies?{urlencode({param: value})}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    errors = response.json["errors"]
    assert [e["param"] for e in errors] == [param]
    assert message in errors[0]["message"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"genre_any": "Action"}, {"genre_any": "Drama"}),
        ({"genre_any": "Action"}, {"genre": "Action"}),
        ({"genre_not": "Action"}, {"genre_any": "Action"}),
        ({"genre_not": "Action"}, {}),
    ],
)
def test_cursor_is_bound_to_the_genre_logic(
    client: FlaskClient, first: dict[str, str], second: dict[str, str]
) -> None:
    cursor = client.get(f"/movies?{urlencode({**first, 'limit': '2'})}").json["next_cursor"]
    assert cursor
    response = client.get(f"/movies?{urlencode({**second, 'limit': '2', 'cursor': cursor})}")
    assert response.status_code == 400
    assert response.json["errors"][0]["param"] == "cursor"


def test_genre_any_order_of_names_does_not_change_the_cursor(client: FlaskClient) -> None:
    cursor = client.get("/movies?genre_any=Action,Drama&limit=2").json["next_cursor"]
    response = client.get(f"/movies?genre_any=drama,action&limit=2&cursor={cursor}")
    assert response.status_code == 200
