"""GET /movies/export: the whole filtered list, streamed; equal to walking every page of the same
query, in NDJSON and in CSV parsed back."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from movies import query as q
from movies import repository
from movies.api import export
from movies.api.docs import load_spec_text
from movies.api.export import CSV_FIELDS
from movies.api.params import EXPORT_PARAMS

QUERIES = [
    {},
    {"sort": "-rating"},
    {"genre": "Drama", "sort": "-votes,title"},
    {"include_adult": "true", "sort": "year,-runtime"},
    {"rating_gte": "8.5", "year_lte": "1997", "sort": "-title"},
    {"genre_not": "Action", "sort": "-score"},
    {"q": "heat"},
]


def pages(client: FlaskClient, params: dict[str, str]) -> list[dict]:
    """Every item of GET /movies with these params, following next_cursor to the end."""
    items: list[dict] = []
    cursor = None
    for _ in range(1000):
        query = dict(params, limit="100", **({"cursor": cursor} if cursor else {}))
        body = client.get(f"/movies?{urlencode(query)}").json
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def parse_csv(data: bytes) -> list[dict]:
    """CSV rows back into Movie objects (empty field → null)."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_FIELDS
    movies = []
    for row in rows[1:]:
        raw = dict(zip(CSV_FIELDS, row, strict=True))
        movie: dict = {name: (value if value != "" else None) for name, value in raw.items()}
        movie["genres"] = raw["genres"].split(",") if raw["genres"] else []
        movie["is_adult"] = {"true": True, "false": False}[raw["is_adult"]]
        for name in ("year", "votes", "runtime_minutes"):
            movie[name] = None if movie[name] is None else int(movie[name])
        for name in ("rating", "score"):
            movie[name] = None if movie[name] is None else float(movie[name])
        movies.append(movie)
    return movies


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: urlencode(p) or "default")
def test_ndjson_export_equals_every_page(client: FlaskClient, params: dict[str, str]) -> None:
    response = client.get(f"/movies/export?{urlencode(params)}")
    assert response.status_code == 200, response.data[:300]
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["Content-Disposition"] == "attachment; filename=movies.ndjson"
    assert response.data == b"" or response.data.endswith(b"\n")
    exported = [json.loads(line) for line in response.data.decode("utf-8").splitlines()]
    expected = pages(client, params)
    assert exported == expected
    assert exported, "every query here matches some seeded movies"


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: urlencode(p) or "default")
def test_csv_export_parses_back_to_every_page(client: FlaskClient, params: dict[str, str]) -> None:
    response = client.get(f"/movies/export?{urlencode(dict(params, format='csv'))}")
    assert response.status_code == 200, response.data[:300]
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == "attachment; filename=movies.csv"
    assert parse_csv(response.data) == pages(client, params)


def test_export_keeps_nasty_titles_and_covers_every_movie(
    client: FlaskClient, seed_movies: list[dict], sort_like_api
) -> None:
    response = client.get("/movies/export?include_adult=true&format=csv&sort=title")
    exported = parse_csv(response.data)
    assert exported == sort_like_api(seed_movies, "title")
    titles = {m["title"] for m in exported}
    assert {'"', 'The "Quoted" One', "Comma, Inside", "Tab\tInside", "NA", "null", "\\N"} <= titles
    ndjson = client.get("/movies/export?include_adult=true&sort=title").data.decode("utf-8")
    assert [json.loads(line) for line in ndjson.splitlines()] == exported


def test_export_in_small_batches_is_the_same(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = {
        fmt: client.get(f"/movies/export?format={fmt}&sort=-year").data for fmt in ("ndjson", "csv")
    }
    monkeypatch.setattr(repository, "EXPORT_BATCH_ROWS", 7)
    for fmt, data in whole.items():
        assert client.get(f"/movies/export?format={fmt}&sort=-year").data == data
    assert whole["csv"].count(b"id,title,original_title") == 1


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_export_beats_the_worker_heartbeat_after_each_chunk_sent(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """A sync gunicorn worker streaming to a slow client must not look hung to its master."""
    beats: list[int] = []
    monkeypatch.setattr(repository, "EXPORT_BATCH_ROWS", 7)
    monkeypatch.setattr(export, "_heartbeat", None)
    export.set_heartbeat(lambda: beats.append(1))
    response = client.get(f"/movies/export?format={fmt}", buffered=False)
    chunks = [chunk for chunk in response.response if chunk]
    response.close()
    assert len(chunks) > 2
    assert len(beats) == len(chunks)


def test_empty_export_is_empty_ndjson_or_a_header(client: FlaskClient) -> None:
    assert client.get("/movies/export?year=1870").data == b""
    data = client.get("/movies/export?year=1870&format=csv").data
    assert data == (",".join(CSV_FIELDS) + "\r\n").encode()


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("format=xml", "format"),
        ("format=NDJSON", "format"),
        ("format=csv&format=ndjson", "format"),
        ("limit=10", "limit"),
        ("cursor=abc", "cursor"),
        ("count=exact", "count"),
        ("facets=genre", "facets"),
        ("colour=red", "colour"),
        ("rating_gt=high", "rating_gt"),
        ("sort=popularity", "sort"),
        ("genre=Nope", "genre"),
    ],
)
def test_bad_export_parameters_are_400_problems(
    client: FlaskClient, query: str, param: str
) -> None:
    response = client.get(f"/movies/export?{query}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert param in [e["param"] for e in response.json["errors"]]
    assert "ETag" not in response.headers


def test_export_route_is_not_a_movie_id(client: FlaskClient, seed_movies: list[dict]) -> None:
    # Test responses are read to the end (.data), as a server does: that closes the stream.
    export = client.get("/movies/export")
    assert export.headers["Content-Type"] == "application/x-ndjson" and export.data
    movie = seed_movies[5]
    assert client.get(f"/movies/{movie['id']}").json == movie
    assert client.get("/movies/export/").status_code == 404


def test_export_is_conditional(client: FlaskClient) -> None:
    first = client.get("/movies/export?format=csv")
    assert first.data.startswith(b"id,title,")
    assert first.headers["Cache-Control"].startswith("public, max-age=")
    again = client.get(
        "/movies/export?format=csv", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304 and again.data == b""
    other = client.get("/movies/export", headers={"If-None-Match": first.headers["ETag"]})
    assert other.status_code == 200 and other.data


def test_export_over_its_time_limit_is_cancelled(
    make_seeded_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The held cursor's query runs at commit, where statement_timeout no longer counts.
    monkeypatch.setattr(q, "export_sql", lambda query: q.Sql("SELECT pg_sleep(10)", {}))
    client = make_seeded_app(export_statement_timeout_ms=300).test_client()
    started = time.monotonic()
    response = client.get("/movies/export")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert "took too long" in response.json["detail"]
    assert client.get("/movies?limit=1").status_code == 200


def test_closing_an_export_early_returns_its_connection(client: FlaskClient) -> None:
    for _ in range(4):  # more than the pool holds (one per thread, plus as many overflow)
        response = client.get("/movies/export?include_adult=true")
        response.close()  # what the server does when the client goes away
    assert client.get("/movies?limit=1").status_code == 200


def test_spec_documents_the_list_filters_for_the_export() -> None:
    document = yaml.safe_load(load_spec_text())
    listed = {p["name"] for p in document["paths"]["/movies"]["get"]["parameters"]}
    exported = {p["name"] for p in document["paths"]["/movies/export"]["get"]["parameters"]}
    assert exported == (listed - {"limit", "cursor", "count", "facets"}) | {"format"}
    assert exported == EXPORT_PARAMS
