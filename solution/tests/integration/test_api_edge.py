"""The fast answers in front of Flask (movies.api.caching): a 304 for a current ETag and a kept
response, with the same status, body and headers as Flask's answer, counted by the rate limit,
logged, and given the request id like every other response."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import pytest
from flask import Flask

from movies.api.caching import CachedResponses
from movies.api.routing import WRITE_LSN_COOKIE
from movies.observability import ACCESS_LOGGER

PATH = "/movies?sort=-rating&limit=2&include_adult=true"
# Headers that differ between any two responses.
PER_RESPONSE = {"X-Request-ID", "Date"}


@pytest.fixture
def edge_app(make_seeded_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """`edge_app(**settings)`: an app of its own (its caches start empty), no rate limits."""
    return functools.partial(make_seeded_app, rate_limit_reads="")


def count_flask_answers(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests the fast answers passed on to Flask."""
    edge = app.wsgi_app
    while not isinstance(edge, CachedResponses):
        edge = edge.wsgi_app  # a layer around it (request log, door headers)
    passed: list[str] = []
    flask = edge.flask_app

    def counted(environ, start_response):
        passed.append(environ["PATH_INFO"])
        return flask(environ, start_response)

    monkeypatch.setattr(edge, "flask_app", counted)
    return passed


def comparable(response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in PER_RESPONSE}
    return response.status_code, response.data, headers


def test_a_kept_response_is_answered_before_flask_exactly_as_flask_answers_it(
    edge_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = edge_app()
    flask_answers = count_flask_answers(app, monkeypatch)
    client = app.test_client()
    by_flask = client.get(PATH)
    fast = client.get(PATH)
    assert flask_answers == ["/movies"]
    assert comparable(fast) == comparable(by_flask)
    assert fast.headers["Link"] and fast.headers["Last-Modified"] and fast.headers["ETag"]
    assert fast.headers["X-Request-ID"] != by_flask.headers["X-Request-ID"]
    head = client.head(PATH)
    assert head.data == b"" and head.headers["Content-Length"] == str(len(by_flask.data))
    assert flask_answers == ["/movies"]


def test_a_current_etag_gets_a_304_before_flask_with_the_headers_flask_gives(
    edge_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = edge_app(response_cache_mb=0)  # the 304 needs no kept response
    client = app.test_client()
    etag = client.get(PATH).headers["ETag"]
    by_flask = client.get(PATH, headers={"If-None-Match": f'"x", {etag}'})  # a list: Flask's
    flask_answers = count_flask_answers(app, monkeypatch)
    fast = client.get(PATH, headers={"If-None-Match": etag, "X-Request-ID": "rev-1"})
    assert flask_answers == []
    assert fast.status_code == by_flask.status_code == 304
    assert fast.data == b""
    assert fast.headers["X-Request-ID"] == "rev-1"
    for name in ("ETag", "Cache-Control", "X-Content-Type-Options", "Content-Security-Policy"):
        assert fast.headers[name] == by_flask.headers[name], name


def test_other_requests_go_on_to_flask(
    edge_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = edge_app()
    client = app.test_client()
    etag = client.get(PATH).headers["ETag"]
    flask_answers = count_flask_answers(app, monkeypatch)
    # A stale ETag gets the kept response; a version read again still needs no Flask.
    assert client.get(PATH, headers={"If-None-Match": 'W/"stale"'}).status_code == 200
    app.extensions["movies.caching"].versions.expire()
    assert client.get(PATH, headers={"If-None-Match": etag}).status_code == 304
    assert flask_answers == []
    assert client.get("/movies?limit=1").status_code == 200  # not kept yet
    assert client.get("/healthz").status_code == 200
    assert client.get("/docs/").status_code == 200
    assert flask_answers == ["/movies", "/healthz", "/docs/"]


def test_fast_answers_count_against_the_rate_limit_once(edge_app: Callable[..., Flask]) -> None:
    client = edge_app(rate_limit_reads="3/minute").test_client()
    etag = client.get(PATH).headers["ETag"]  # Flask's answer: 1
    assert client.get(PATH).status_code == 200  # kept: 2
    assert client.get(PATH, headers={"If-None-Match": etag}).status_code == 304  # 3
    refused = client.get(PATH, headers={"If-None-Match": etag})
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.headers["Retry-After"]


def test_fast_answers_carry_cors_headers_and_are_logged(
    edge_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    client = edge_app().test_client()
    client.get(PATH)
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    fast = client.get(PATH, headers={"Origin": "https://example.org", "X-Request-ID": "fast-1"})
    assert fast.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in fast.headers["Access-Control-Expose-Headers"]
    [record] = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert (record.method, record.path, record.status) == ("GET", PATH, 200)
    assert record.request_id == "fast-1" and record.duration_ms >= 0


def test_a_client_that_has_just_written_is_answered_by_flask(
    edge_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its write-LSN cookie may send its read to the primary (api/routing.py): a kept answer,
    made from the replica's data, could miss the write."""
    app = edge_app()
    client = app.test_client()
    etag = client.get(PATH).headers["ETag"]
    flask_answers = count_flask_answers(app, monkeypatch)
    client.set_cookie(WRITE_LSN_COOKIE, "signed-lsn")
    assert client.get(PATH).status_code == 200
    assert client.get(PATH, headers={"If-None-Match": etag}).status_code == 200
    assert flask_answers == ["/movies", "/movies"]
