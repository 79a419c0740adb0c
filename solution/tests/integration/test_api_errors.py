"""Every error path answers with the one problem+json shape, never a 500."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert set(body) <= {"type", "status", "title", "detail", "errors"}
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["title"] and isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    for error in body.get("errors", []):
        assert set(error) == {"param", "message"}
    return body


BAD_LIST_QUERIES = {
    "unknown param": ("colour=red", "colour"),
    "two unknown params": ("colour=red&size=2", "size"),
    "repeated param": ("limit=5&limit=6", "limit"),
    "limit zero": ("limit=0", "limit"),
    "limit over max": ("limit=101", "limit"),
    "limit not int": ("limit=ten", "limit"),
    "limit float": ("limit=5.0", "limit"),
    "limit empty": ("limit=", "limit"),
    "rating above 10": ("rating_gt=10.5", "rating_gt"),
    "rating negative": ("rating_lte=-1", "rating_lte"),
    "rating nan": ("rating_gte=NaN", "rating_gte"),
    "rating inf": ("rating_gte=Infinity", "rating_gte"),
    "rating text": ("rating_lt=high", "rating_lt"),
    "year not int": ("year=1999.5", "year"),
    "year huge": ("year=99999999999", "year"),
    "votes negative": ("votes_gte=-5", "votes_gte"),
    "runtime text": ("runtime_gte=long", "runtime_gte"),
    "include_adult bad": ("include_adult=maybe", "include_adult"),
    "count bad": ("count=all", "count"),
    "sort unknown": ("sort=popularity", "sort"),
    "sort duplicate": ("sort=rating,-rating", "sort"),
    "sort too many": ("sort=title,year,rating,votes", "sort"),
    "sort empty key": ("sort=title,", "sort"),
    "sort id": ("sort=id", "sort"),
    "unknown genre": ("genre=Action,Space-Opera", "genre"),
    "empty genre": ("genre=", "genre"),
    "cursor garbage": ("cursor=not-a-cursor", "cursor"),
    "cursor bad base64": ("cursor=%25%25%25.%25%25", "cursor"),
    "cursor unicode": ("cursor=%C3%A9.%C3%A9", "cursor"),
    "cursor huge": ("cursor=" + "A" * 5000, "cursor"),
}


@pytest.mark.parametrize("name", BAD_LIST_QUERIES)
def test_list_movies_rejects_bad_parameters(client: FlaskClient, name: str) -> None:
    query, param = BAD_LIST_QUERIES[name]
    body = assert_problem(client.get(f"/movies?{query}"), 400)
    assert param in {error["param"] for error in body["errors"]}
    assert param in body["detail"]


def test_unknown_genre_lists_the_valid_ones(client: FlaskClient) -> None:
    body = assert_problem(client.get("/movies?genre=Space-Opera"), 400)
    assert "Film-Noir" in body["errors"][0]["message"]


def _next_cursor(client: FlaskClient, query: str) -> str:
    cursor = client.get(f"/movies?{query}").json["next_cursor"]
    assert cursor
    return cursor


def test_tampered_cursor_is_rejected(client: FlaskClient) -> None:
    cursor = _next_cursor(client, "sort=-rating&limit=3")
    body, signature = cursor.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    assert_problem(client.get(f"/movies?sort=-rating&limit=3&cursor={flipped}.{signature}"), 400)
    assert_problem(client.get(f"/movies?sort=-rating&limit=3&cursor={body}.{signature[:-1]}"), 400)


@pytest.mark.parametrize(
    "other",
    [
        "sort=rating&limit=3",
        "sort=-rating&genre=Drama",
        "sort=-rating&include_adult=true",
        "sort=-rating&rating_gt=1",
        "sort=-rating,title",
    ],
)
def test_cursor_reused_with_other_filters_or_sort_is_rejected(
    client: FlaskClient, other: str
) -> None:
    cursor = _next_cursor(client, "sort=-rating&limit=3")
    body = assert_problem(client.get(f"/movies?{other}&cursor={cursor}"), 400)
    assert body["errors"][0]["param"] == "cursor"


def test_cursor_from_another_secret_is_rejected(client: FlaskClient) -> None:
    from movies.cursor import encode_cursor
    from movies.query import MovieQuery, parse_sort

    fingerprint = MovieQuery(sort=parse_sort("-rating")).fingerprint()
    forged = encode_cursor(["9.9"], "tt0000001", fingerprint, "guessed-secret")
    assert_problem(client.get(f"/movies?sort=-rating&cursor={forged}"), 400)


@pytest.mark.parametrize(
    "path",
    [
        "/movies/tt0000000",
        "/movies/nope",
        "/movies/tt",
        "/movies/" + "9" * 300,
        "/movies/tt12%0034567",
        "/movies/%F0%9F%8E%AC",
        "/movies/um9999999",
        "/nothing-here",
        "/movies/tt0000001/extra",
    ],
)
def test_missing_things_are_404(client: FlaskClient, path: str) -> None:
    assert_problem(client.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/movies"), ("PUT", "/movies/tt0000001"), ("POST", "/genres"), ("PATCH", "/")],
)
def test_wrong_methods_are_405_or_404(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method)
    assert_problem(response, 404 if path == "/" else 405)
    if response.status_code == 405:
        assert "GET" in response.headers["Allow"]


def test_post_with_writes_disabled_is_403(client: FlaskClient) -> None:
    body = assert_problem(
        client.post("/movies", json={"title": "x"}, headers={"Authorization": "Bearer x"}), 403
    )
    assert "MOVIES_API_TOKENS" in body["detail"]


def test_unreachable_database_is_a_fast_503() -> None:
    import time

    from movies.app import create_app
    from movies.config import Settings

    # Port 9 on localhost: nothing listens, the connection is refused at once.
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:9/none", secret_key="k")
    app = create_app(settings)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    for path in ["/movies", "/movies/tt0111161", "/readyz", "/genres", "/dataset"]:
        started = time.monotonic()
        body = assert_problem(client.get(path), 503)
        assert time.monotonic() - started < 2
        assert "nobody" not in body["detail"] and "127.0.0.1" not in body["detail"]


def test_statement_timeout_is_503(
    seeded_database: tuple[str, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    from movies import repository
    from movies.api.connection import db
    from movies.app import create_app
    from movies.config import Settings

    app = create_app(
        Settings(database_url=seeded_database[0], secret_key="k", statement_timeout_ms=50)
    )

    def slow_count(conn: sa.Connection, query: object) -> int:
        return conn.execute(sa.text("SELECT count(*) FROM pg_sleep(1)")).scalar_one()

    monkeypatch.setattr(repository, "count_movies", slow_count)
    body = assert_problem(app.test_client().get("/movies?count=exact"), 503)
    assert "too long" in body["detail"]
    # The hot path runs precompiled SQL on the driver's cursor: same mapping.
    from movies import query

    monkeypatch.setattr(query, "page_sql", lambda *_, **__: query.Sql("SELECT pg_sleep(1)", {}))
    body = assert_problem(app.test_client().get("/movies"), 503)
    assert "too long" in body["detail"]
    assert app.test_client().get("/movies/tt0000001").status_code == 404, "connection still usable"
    with app.app_context():
        db.engine.dispose()


def test_unexpected_exception_is_500_without_details(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from movies import repository

    def broken(conn: object, movie_id: str) -> None:
        raise RuntimeError("secret internals at /srv/app")

    monkeypatch.setattr(repository, "get_movie", broken)
    body = assert_problem(client.get("/movies/tt0000001"), 500)
    assert "secret" not in body["detail"] and "/srv" not in body["detail"]
