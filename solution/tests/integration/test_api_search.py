"""Title search (`q`): accents and case both ways, original titles, relevance order, filters,
pagination walks against an independent Python computation, and hostile input."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import cmp_to_key
from pathlib import Path
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient

from movies.db import create_engine
from movies.loader import run_load
from movies.search import fold_titles

NASTY = Path(__file__).resolve().parents[1] / "fixtures" / "nasty"
AUTH = {"Authorization": "Bearer token-one"}


def python_fold(text: str) -> str:
    """An independent fold: per character, by Unicode category."""
    out = []
    for char in unicodedata.normalize("NFKD", text):
        kind = unicodedata.category(char)
        if kind == "Mn":
            continue
        out.append(char.lower() if kind[0] in "LN" else " ")
    return " ".join("".join(out).replace("ς", "σ").split())


def matches(movie: dict, q: str) -> bool:
    words = python_fold(q).split()
    titles = [python_fold(movie["title"]), python_fold(movie["original_title"] or "")]
    held = {word for title in titles for word in title.split()}
    return all(w in held for w in words[:-1]) and any(h.startswith(words[-1]) for h in held)


def match_class(movie: dict, q: str) -> int:
    folded = python_fold(q)
    titles = [python_fold(movie["title"]), python_fold(movie["original_title"] or "")]
    if folded in titles:
        return 3
    return 2 if any(title.startswith(folded) for title in titles) else 1


def by_relevance(movies: list[dict], q: str) -> list[dict]:
    def compare(a: dict, b: dict) -> int:
        for x, y in ((match_class(b, q), match_class(a, q)), (b["votes"], a["votes"])):
            if x != y:
                if x is None or y is None:
                    return 1 if y is None else -1  # NULL votes last
                return -1 if x < y else 1
        return (a["id"] < b["id"]) - (a["id"] > b["id"])  # id descending

    return sorted(movies, key=cmp_to_key(compare))


def walk(client: FlaskClient, params: dict[str, str], limit: int = 4) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        query = dict(params, limit=str(limit), **({"cursor": cursor} if cursor else {}))
        response = client.get(f"/movies?{urlencode(query)}")
        assert response.status_code == 200, response.json
        items.extend(response.json["items"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            assert len({m["id"] for m in items}) == len(items)
            return items


def ids(movies: list[dict]) -> list[str]:
    return [m["id"] for m in movies]


@pytest.mark.parametrize(
    "q", ["amelie", "AMÉLIE", "ämelie", "the matrix", "THE MAT", "heat", "a", "original", "東京"]
)
def test_search_walks_every_page_in_relevance_order(
    client: FlaskClient, seed_movies: list[dict], q: str
) -> None:
    expected = by_relevance([m for m in seed_movies if not m["is_adult"] and matches(m, q)], q)
    assert expected, "the seed should match this search"
    assert ids(walk(client, {"q": q})) == ids(expected)


def test_search_is_accent_and_case_insensitive(client: FlaskClient) -> None:
    titles = {m["title"] for m in walk(client, {"q": "AMELIE"}, limit=100)}
    assert titles == {"Amélie", "Ämélie"}
    assert {m["title"] for m in walk(client, {"q": "zoe"}, limit=100)} == {"Zoë"}


def test_search_ranks_exact_then_prefix_then_other_then_votes(
    client: FlaskClient, seed_movies: list[dict]
) -> None:
    got = walk(client, {"q": "a"}, limit=100)
    classes = [match_class(m, "a") for m in got]
    assert classes == sorted(classes, reverse=True) and {3, 2, 1} <= set(classes)
    for cls in (3, 2, 1):
        votes = [m["votes"] for m in got if match_class(m, "a") == cls]
        rated = [v for v in votes if v is not None]
        assert rated == sorted(rated, reverse=True) and votes[: len(rated)] == rated


def test_search_matches_the_original_title(client: FlaskClient, seed_movies: list[dict]) -> None:
    got = walk(client, {"q": "(Original)"}, limit=100)
    assert got and all("(original)" in (m["original_title"] or "") for m in got)
    assert all("original" not in m["title"].lower() for m in got)
    assert len(got) == sum(
        1 for m in seed_movies if not m["is_adult"] and "(original)" in (m["original_title"] or "")
    )


@pytest.mark.parametrize(
    "params",
    [
        {"genre": "Action"},
        {"genre_any": "Drama,Comedy", "genre_not": "Thriller"},
        {"rating_gte": "8.5", "votes_gte": "5"},
        {"include_adult": "true", "year_lte": "1995"},
    ],
)
@pytest.mark.parametrize("sort", [None, "-rating", "title", "year,-votes"])
def test_search_combines_with_filters_and_sorts(
    client: FlaskClient,
    seed_movies: list[dict],
    sort_like_api: Callable,
    params: dict[str, str],
    sort: str | None,
) -> None:
    everyone = walk(client, params, limit=100)
    q = "the"
    expected = [m for m in everyone if matches(m, q)]
    assert expected
    if sort is None:
        assert ids(walk(client, {**params, "q": q}, limit=3)) == ids(by_relevance(expected, q))
    else:
        got = walk(client, {**params, "q": q, "sort": sort}, limit=3)
        assert ids(got) == ids(sort_like_api(expected, sort))


def test_search_with_count_exact_counts_the_matches(
    client: FlaskClient, seed_movies: list[dict]
) -> None:
    expected = sum(1 for m in seed_movies if not m["is_adult"] and matches(m, "matrix"))
    assert client.get("/movies?q=matrix&count=exact").json["total"] == expected


@pytest.mark.parametrize(
    "q",
    [
        "&",
        "|",
        "!",
        "()",
        ":*",
        "'",
        "\\",
        "a & b | !c",
        "matrix:*",
        "'matrix'",
        "matrix)) | ((heat",
        "heat\\",
        "o'brien",
        "<->",
        "a:A",
        "%",
        "_",
        "heat%",
        "\x00",
        "🎬",
        "x" * 200,
    ],
)
def test_hostile_search_text_is_a_400_or_a_page_never_500(client: FlaskClient, q: str) -> None:
    response = client.get(f"/movies?{urlencode({'q': q})}")
    assert response.status_code in (200, 400), response.data
    if response.status_code == 400:
        assert response.mimetype == "application/problem+json"
        assert response.json["errors"][0]["param"] == "q"
    else:
        assert response.json["items"] == [] or all(matches(m, q) for m in response.json["items"])


def test_operator_characters_are_plain_separators(client: FlaskClient) -> None:
    plain = ids(walk(client, {"q": "the matrix"}))
    assert plain and ids(walk(client, {"q": "the & !matrix:*"})) == plain
    assert ids(walk(client, {"q": "o'brien"})) == ids(walk(client, {"q": "O BRIEN"}))


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("", "at least one letter or digit"),
        ("   ", "at least one letter or digit"),
        ("&|!():*'\\", "at least one letter or digit"),
        ("x" * 201, "at most 200 characters"),
    ],
)
def test_search_without_words_or_too_long_is_400(client: FlaskClient, q: str, message: str) -> None:
    response = client.get(f"/movies?{urlencode({'q': q})}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["errors"][0]["param"] == "q"
    assert message in response.json["errors"][0]["message"]


def test_sort_relevance_needs_q(client: FlaskClient) -> None:
    response = client.get("/movies?sort=relevance")
    assert response.status_code == 400
    assert response.json["errors"][0]["param"] == "sort"
    assert client.get("/movies?q=heat&sort=relevance").status_code == 200
    assert client.get("/movies?q=heat&sort=-relevance").status_code == 400


@pytest.mark.parametrize(
    "other", [{"q": "heats"}, {"q": "heat", "sort": "title"}, {}, {"q": "heat", "genre": "Drama"}]
)
def test_search_cursor_is_bound_to_the_search(client: FlaskClient, other: dict[str, str]) -> None:
    cursor = client.get("/movies?q=heat&limit=1").json["next_cursor"]
    assert cursor
    assert client.get(f"/movies?q=HÉAT&limit=1&cursor={cursor}").status_code == 200
    response = client.get(f"/movies?{urlencode({**other, 'limit': '1', 'cursor': cursor})}")
    assert response.status_code == 400 and response.json["errors"][0]["param"] == "cursor"


def test_created_movies_are_found_both_ways(write_client: FlaskClient) -> None:
    for title, original in [("Amelie", None), ("Le Fabuleux Destin", "Amélie"), ("Other", None)]:
        body = {"title": title, "original_title": original}
        assert write_client.post("/movies", json=body, headers=AUTH).status_code == 201
    found = write_client.get("/movies?q=AMÉLIE").json["items"]
    assert [m["title"] for m in found] == ["Le Fabuleux Destin", "Amelie"]  # both exact: id desc
    assert [m["title"] for m in write_client.get("/movies?q=fabul").json["items"]] == [
        "Le Fabuleux Destin"
    ]


def test_loader_stores_the_reference_fold(database_url: str, tmp_path: Path) -> None:
    run_load(database_url, str(NASTY), downloads=tmp_path, force=True)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT title, original_title, search_title, search_original FROM movie_imdb"
        ).all()
    engine.dispose()
    assert rows
    for title, original, search_title, search_original in rows:
        assert (search_title, search_original) == fold_titles(title, original), title
