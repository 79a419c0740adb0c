"""Conditional GET: validators on every data GET, 304 without running the query, and ETags that
change when a load or a POST changes the data; the response cache that shares those ETags."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import psycopg2
import pytest
from flask import Flask
from flask.testing import FlaskClient

from movies import repository
from movies.api.caching import SETTLE_S, VERSION_TTL_S, DataVersion
from movies.api.connection import db
from movies.api.response_cache import ResponseCache, entry_cost
from movies.loader import write

DATA_PATHS = [
    "/movies",
    "/movies?sort=-rating&limit=5",
    "/movies?genre=Drama&include_adult=true",
    "/genres",
    "/dataset",
]
AUTH = {"Authorization": "Bearer token-one"}
HTTP_DATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$"
)


def first_movie_path(client: FlaskClient) -> str:
    return f"/movies/{client.get('/movies?limit=1').json['items'][0]['id']}"


@pytest.mark.parametrize("path", [*DATA_PATHS, "movie"])
def test_data_gets_carry_validators_and_cache_control(client: FlaskClient, path: str) -> None:
    path = first_movie_path(client) if path == "movie" else path
    response = client.get(path)
    assert response.status_code == 200
    assert re.fullmatch(r'W/"[A-Za-z0-9_-]{16}"', response.headers["ETag"])
    assert HTTP_DATE.match(response.headers["Last-Modified"])
    assert response.headers["Cache-Control"] == "public, max-age=60"


def test_last_modified_is_the_latest_change_to_the_data(app: Flask, client: FlaskClient) -> None:
    with app.app_context(), db.engine.connect() as conn:
        _, loaded_at, _, created_at, _ = repository.data_version(conn)
    latest = max(loaded_at, created_at).replace(microsecond=0)
    last_modified = parsedate_to_datetime(client.get("/movies").headers["Last-Modified"])
    assert last_modified == latest


@pytest.mark.parametrize("path", [*DATA_PATHS, "movie"])
def test_if_none_match_answers_304_without_a_body(client: FlaskClient, path: str) -> None:
    path = first_movie_path(client) if path == "movie" else path
    etag = client.get(path).headers["ETag"]
    response = client.get(path, headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "public, max-age=60"
    head = client.head(path, headers={"If-None-Match": etag})
    assert head.status_code == 304


def test_304_does_not_run_the_query(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    etag = client.get("/movies?sort=-votes").headers["ETag"]

    def fail(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the list query ran for a 304")

    monkeypatch.setattr(repository, "list_movies", fail)
    assert client.get("/movies?sort=-votes", headers={"If-None-Match": etag}).status_code == 304


def test_if_none_match_uses_weak_comparison_lists_and_star(client: FlaskClient) -> None:
    etag = client.get("/movies").headers["ETag"]
    strong = etag.removeprefix("W/")
    assert client.get("/movies", headers={"If-None-Match": strong}).status_code == 304
    listed = f'"other", {etag}'
    assert client.get("/movies", headers={"If-None-Match": listed}).status_code == 304
    assert client.get("/movies", headers={"If-None-Match": "*"}).status_code == 304
    other = client.get("/movies", headers={"If-None-Match": 'W/"something-else"'})
    assert other.status_code == 200 and other.json["items"]


def test_etags_differ_per_url(client: FlaskClient) -> None:
    urls = ["/movies", "/movies?limit=5", "/movies?sort=-rating", "/genres", "/dataset"]
    etags = {client.get(url).headers["ETag"] for url in urls}
    assert len(etags) == len(urls)
    assert (
        client.get("/movies?limit=5").headers["ETag"]
        == client.get("/movies?limit=5").headers["ETag"]
    )


def test_if_modified_since(client: FlaskClient) -> None:
    last_modified = parsedate_to_datetime(client.get("/movies").headers["Last-Modified"])
    later = format_datetime(last_modified + timedelta(seconds=5), usegmt=True)
    earlier = format_datetime(last_modified - timedelta(seconds=1), usegmt=True)
    same = format_datetime(last_modified, usegmt=True)
    assert client.get("/movies", headers={"If-Modified-Since": same}).status_code == 304
    assert client.get("/movies", headers={"If-Modified-Since": later}).status_code == 304
    assert client.get("/movies", headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get("/movies", headers={"If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match wins: a different ETag means modified, whatever the date says.
    both = {"If-Modified-Since": later, "If-None-Match": 'W/"old"'}
    assert client.get("/movies", headers=both).status_code == 200


@pytest.mark.parametrize("path", ["/movies?limit=0", "/movies?sort=nope", "/movies/tt0000000"])
def test_errors_carry_no_validators(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404)
    assert "ETag" not in response.headers and "Last-Modified" not in response.headers
    assert response.headers.get("Cache-Control") != "public, max-age=60"


def test_post_changes_the_etags_at_once(write_client: FlaskClient) -> None:
    before = {path: write_client.get(path).headers["ETag"] for path in ("/movies", "/genres")}
    created = write_client.post("/movies", json={"title": "NA", "genres": ["Drama"]}, headers=AUTH)
    assert created.status_code == 201
    for path, etag in before.items():
        response = write_client.get(path, headers={"If-None-Match": etag})
        assert response.status_code == 200, path
        assert response.headers["ETag"] != etag
    listed = write_client.get("/movies", headers={"If-None-Match": before["/movies"]})
    assert [m["id"] for m in listed.json["items"]] == [created.json["id"]]


def test_a_load_changes_the_etags_within_the_version_ttl(
    write_app: Flask, write_client: FlaskClient
) -> None:
    first = write_client.get("/movies")
    with write_app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO movie_imdb (id, source, title, genres) "
            "VALUES ('tt12345678', 'imdb', '\"', '{}')"
        )
        conn.exec_driver_sql(
            "INSERT INTO dataset_load (source, rows_read, movies, rated_movies, genre_links, "
            "skipped_rows, seconds) VALUES ('reload', 1, 1, 0, 0, 0, 0.1)"
        )
    time.sleep(max(VERSION_TTL_S, SETTLE_S) + 0.1)  # read again, and Last-Modified settled
    second = write_client.get("/movies", headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200
    assert second.headers["ETag"] != first.headers["ETag"]
    assert [m["id"] for m in second.json["items"]] == ["tt12345678"]
    loaded = parsedate_to_datetime(second.headers["Last-Modified"])
    assert abs(loaded - datetime.now(UTC)) < timedelta(minutes=1)


def test_max_age_comes_from_the_settings(make_seeded_app: Callable[..., Flask]) -> None:
    response = make_seeded_app(cache_max_age_s=0).test_client().get("/genres")
    assert response.headers["Cache-Control"] == "public, max-age=0"


def count_list_queries(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """A list that grows by one each time the list query runs."""
    calls: list[None] = []
    real = repository.list_movies

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(None)
        return real(*args, **kwargs)

    monkeypatch.setattr(repository, "list_movies", counted)
    return calls


def test_a_repeated_url_is_answered_from_the_cache_with_the_same_body_and_headers(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = count_list_queries(monkeypatch)
    path = "/movies?sort=-year&limit=2&include_adult=true"
    first = client.get(path)
    assert first.status_code == 200 and first.json["next_cursor"]
    second = client.get(path)
    assert len(queries) == 1
    assert second.status_code == 200
    assert second.data == first.data
    for header in ("Content-Type", "Link", "ETag", "Last-Modified", "Cache-Control"):
        assert second.headers[header] == first.headers[header], header
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert client.head(path).headers["Content-Length"] == str(len(first.data))


def test_errors_and_other_urls_are_not_served_from_the_cache(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = count_list_queries(monkeypatch)
    for _ in range(2):
        assert client.get("/movies?limit=0").status_code == 400
    client.get("/movies?limit=3")
    client.get("/movies?limit=4")
    assert len(queries) == 2


def test_the_export_is_streamed_and_never_kept(app: Flask, client: FlaskClient) -> None:
    cache = app.extensions["movies.caching"].responses
    before = cache.get_stats()
    with client.get("/movies/export?format=csv&include_adult=true") as response:
        assert response.is_streamed and response.status_code == 200
    assert cache.get_stats() == before


def test_a_post_empties_the_cache_of_its_worker(write_client: FlaskClient) -> None:
    assert write_client.get("/movies").json["items"] == []
    created = write_client.post("/movies", json={"title": "Amélie", "genres": []}, headers=AUTH)
    assert created.status_code == 201
    assert [m["id"] for m in write_client.get("/movies").json["items"]] == [created.json["id"]]


def test_no_cache_when_its_size_is_zero(
    make_seeded_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_seeded_app(response_cache_mb=0).test_client()
    queries = count_list_queries(monkeypatch)
    for _ in range(2):
        assert client.get("/movies?limit=2").status_code == 200
    assert len(queries) == 2


def version(tag: bytes) -> DataVersion:
    return DataVersion(tag, None)


BODY = b"x" * 100
COST = entry_cost("00", BODY, [])  # what one of these entries holds in memory


def test_an_entry_costs_its_key_headers_and_objects_not_only_its_body() -> None:
    headers = [("Content-Type", "application/json"), ("Content-Length", "100")]
    assert entry_cost("00", BODY, headers) > COST > len(BODY) + len("00")


def test_the_cache_keeps_the_recently_used_within_its_budget() -> None:
    cache = ResponseCache(max_bytes=16 * COST)  # sixteen entries
    for number in range(17):
        cache.put(version(b"v1"), f"{number:02}", BODY, [])
    assert cache.get(version(b"v1"), "00") is None  # the oldest made room for the 17th
    assert cache.get(version(b"v1"), "01").body == BODY
    cache.put(version(b"v1"), "17", BODY, [])
    assert cache.get(version(b"v1"), "02") is None  # used less recently than "01"
    assert cache.get(version(b"v1"), "01") is not None
    assert cache.get_stats() == (16, 16 * COST)


def test_the_cache_serves_one_data_version_only() -> None:
    cache = ResponseCache(max_bytes=1_000_000)
    cache.put(version(b"v1"), "a", b"old", [])
    assert cache.get(version(b"v2"), "a") is None
    cache.put(version(b"v2"), "b", b"new", [])
    assert cache.get(version(b"v1"), "a") is None
    assert cache.get_stats() == (1, entry_cost("b", b"new", []))


def test_one_response_may_not_take_more_than_a_sixteenth_of_the_budget() -> None:
    cache = ResponseCache(max_bytes=16 * COST)
    cache.put(version(b"v1"), "big", BODY + b"x", [])
    cache.put(version(b"v1"), "00", BODY, [])
    assert cache.get(version(b"v1"), "big") is None
    assert cache.get(version(b"v1"), "00") is not None


# --- every answer reflects the version its ETag names ------------------------------------------


def genre_count(response, name: str) -> int:
    return next(item["movies"] for item in response.json["items"] if item["name"] == name)


def test_genres_show_a_new_movie_under_the_new_etag(write_client: FlaskClient) -> None:
    before = write_client.get("/genres")
    body = {"title": "The Long Night", "genres": ["Film-Noir"]}
    assert write_client.post("/movies", json=body, headers=AUTH).status_code == 201
    after = write_client.get("/genres")
    assert after.headers["ETag"] != before.headers["ETag"]
    assert genre_count(after, "Film-Noir") == genre_count(before, "Film-Noir") + 1
    # Neither kept nor revalidated with the old count.
    assert genre_count(write_client.get("/genres"), "Film-Noir") == genre_count(after, "Film-Noir")
    revalidated = write_client.get("/genres", headers={"If-None-Match": before.headers["ETag"]})
    assert revalidated.status_code == 200
    assert genre_count(revalidated, "Film-Noir") == genre_count(after, "Film-Noir")


def test_facets_show_a_new_movie_under_the_new_etag(write_client: FlaskClient) -> None:
    path = "/movies?facets=genre"
    before = write_client.get(path)
    body = {"title": "The Long Night", "genres": ["Film-Noir"]}
    assert write_client.post("/movies", json=body, headers=AUTH).status_code == 201
    after = write_client.get(path, headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    assert {"name": "Film-Noir", "count": 1} in after.json["facets"]["genre"]
    assert write_client.get(path).json == after.json


# --- a conditional answer only ever replaces a 200 ---------------------------------------------

FUTURE = "Fri, 01 Jan 2100 00:00:00 GMT"
CONDITIONS = [{"If-Modified-Since": FUTURE}, {"If-None-Match": "*"}]


@pytest.mark.parametrize("conditions", CONDITIONS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_missing_movie_is_404_whatever_the_conditions(
    client: FlaskClient, conditions: dict[str, str], method: str
) -> None:
    response = client.open("/movies/tt9999999", method=method, headers=conditions)
    assert response.status_code == 404
    assert "ETag" not in response.headers


@pytest.mark.parametrize("conditions", CONDITIONS)
@pytest.mark.parametrize("path", ["/movies?limit=0", "/movies?sort=nope", "/movies?cursor=x"])
def test_an_invalid_query_is_400_whatever_the_conditions(
    client: FlaskClient, conditions: dict[str, str], path: str
) -> None:
    assert client.get(path, headers=conditions).status_code == 400


@pytest.mark.parametrize("conditions", CONDITIONS)
def test_conditions_turn_a_200_into_a_304_kept_or_not(
    client: FlaskClient, conditions: dict[str, str]
) -> None:
    path = first_movie_path(client)
    assert client.get(path, headers=conditions).status_code == 304  # answered by Flask
    assert client.get(path).status_code == 200
    assert client.get(path, headers=conditions).status_code == 304  # kept


# --- the dataset version of every page ---------------------------------------------------------


def test_every_page_names_its_dataset_and_a_load_changes_it(
    write_app: Flask, write_client: FlaskClient
) -> None:
    def load(movie_id: str) -> None:
        with write_app.app_context(), db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO movie_imdb (id, source, title, genres) "
                f"VALUES ('{movie_id}', 'imdb', 'NA', '{{}}')"
            )
            conn.exec_driver_sql(
                "INSERT INTO dataset_load (source, rows_read, movies, rated_movies, genre_links, "
                "skipped_rows, seconds) VALUES ('reload', 1, 1, 0, 0, 0, 0.1)"
            )
        write_app.extensions["movies.caching"].versions.expire()

    assert write_client.get("/movies").json["version"] is None
    load("tt0000001")
    load("tt0000002")
    first = write_client.get("/movies?limit=1")
    second = write_client.get(first.json["links"]["next"])
    assert first.json["version"] == second.json["version"] is not None
    assert write_client.post("/movies", json={"title": "NA"}, headers=AUTH).status_code == 201
    assert write_client.get(first.json["links"]["next"]).json["version"] == first.json["version"]
    load("tt0000003")
    assert write_client.get(first.json["links"]["next"]).json["version"] != first.json["version"]


# --- Last-Modified: when a change became visible -----------------------------------------------


def last_modified_after_settling(app: Flask, client: FlaskClient) -> str:
    time.sleep(SETTLE_S + 0.1)
    app.extensions["movies.caching"].versions.expire()
    return client.get("/movies").headers["Last-Modified"]


def test_a_load_is_dated_by_its_commit_so_if_modified_since_never_hides_it(
    write_app: Flask, write_client: FlaskClient
) -> None:
    with write_app.app_context():
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    load = psycopg2.connect(url)  # a transaction of its own, like the loader's
    try:
        cursor = load.cursor()
        cursor.execute("SELECT now()")  # the load's transaction starts
        created = write_client.post("/movies", json={"title": "NA"}, headers=AUTH)
        assert created.status_code == 201
        seen = last_modified_after_settling(write_app, write_client)
        write.record_load(
            cursor, source="reload", basics_last_modified=None, ratings_last_modified=None,
            rows_read=0, movies=0, rated_movies=0, genre_links=0, skipped_rows=0, seconds=1.0,
        )  # fmt: skip
        load.commit()
    finally:
        load.close()
    write_app.extensions["movies.caching"].versions.expire()
    response = write_client.get("/movies", headers={"If-Modified-Since": seen})
    assert response.status_code == 200
    assert parsedate_to_datetime(
        last_modified_after_settling(write_app, write_client)
    ) > parsedate_to_datetime(seen)


def test_last_modified_is_sent_once_its_second_is_over(
    write_app: Flask, write_client: FlaskClient
) -> None:
    """A second change within the same whole second would look unmodified to a client holding
    the first one's Last-Modified: none is given until that second cannot change any more."""
    assert write_client.post("/movies", json={"title": "NA"}, headers=AUTH).status_code == 201
    fresh = write_client.get("/movies")
    assert "Last-Modified" not in fresh.headers and fresh.headers["ETag"]
    since = last_modified_after_settling(write_app, write_client)
    assert write_client.post("/movies", json={"title": "NA"}, headers=AUTH).status_code == 201
    later = write_client.get("/movies", headers={"If-Modified-Since": since})
    assert later.status_code == 200 and len(later.json["items"]) == 2
