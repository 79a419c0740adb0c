"""Hostile requests through the Flask test client: never a 5xx, every rejection problem+json,
and the data unchanged afterwards.

The list is shared with the live-server reliability run (`bench/reliability_hostile.py`):
SQL-injection-shaped, unicode, invalid UTF-8 and NUL values in every query parameter of
GET /movies as openapi.yaml lists them (a new parameter is covered as soon as it is documented),
tampered and oversized cursors, hostile paths and headers, hostile POST bodies with a valid
token. This file adds absurd numbers in every parameter and body field, 100 KB cursors and a
few more content types. Requests that gunicorn refuses before the application (oversized
request lines and headers) reach the application here, which must still answer below 500.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
import reliability_hostile as hostile
import sqlalchemy as sa
import yaml
from flask import Flask
from flask.testing import FlaskClient

from movies.api.connection import db
from movies.api.docs import load_spec_text
from movies.app import create_app
from movies.config import Settings

TOKEN = "hostile-test-token"
PROBLEM_JSON = "application/problem+json"


HostileRequest = hostile.HostileRequest

ABSURD_NUMBERS = (
    "1e309",
    "-1e309",
    "1e-309",
    "-0",
    "NaN",
    "nan",
    "inf",
    "99999999999999999999",
    "-99999999999999999999",
    "0x1F",
    "1_000",
    "²",
)


def list_parameter_schemas() -> dict[str, dict]:
    """name -> schema of every query parameter of GET /movies in openapi.yaml ($refs resolved)."""
    spec = yaml.safe_load(load_spec_text())

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            target: dict = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    out = {}
    for param in spec["paths"]["/movies"]["get"]["parameters"]:
        param = resolve(param)
        if param["in"] == "query":
            out[param["name"]] = resolve(param.get("schema", {}))
    return out


def _constrained(schema: dict) -> bool:
    """Whether a documented parameter has a shape that a nonsense value cannot match."""
    return schema.get("type") in ("integer", "number", "boolean") or bool(
        {"enum", "pattern", "format"} & schema.keys()
    )


def _cursor_of(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def extra_requests() -> list:
    """Hostile requests beyond the shared list."""
    out = []
    add = out.append
    for name, schema in list_parameter_schemas().items():
        for i, value in enumerate(ABSURD_NUMBERS):
            # "-0" and "1e-309" are fine rating bounds; free text may match anything.
            plausible = value in ("-0", "1e-309") or not _constrained(schema)
            add(
                HostileRequest(
                    f"{name}=absurd{i}",
                    query=urlencode({name: value}),
                    expect="no-5xx" if plausible else "problem",
                )
            )
        add(HostileRequest(f"{name} 100 KB", query=urlencode({name: "9" * 100_000})))
        add(
            HostileRequest(
                f"{name} surrogate escape and NUL", query=f"{name}=%ED%A0%80%00", expect="no-5xx"
            )
        )
    for value in ("' OR 1=1 --", "1e309", "NaN", "-0", "tt" + "1" * 40, "%ED%A0%80", "%00", "🎬"):
        add(HostileRequest(f"id {value!r}", path="/movies/" + quote(value, safe="%")))
    add(HostileRequest("cursor 100 KB", query="cursor=" + "A" * 100_000))
    add(HostileRequest("cursor 100 KB JSON", query="cursor=" + _cursor_of({"v": ["x" * 75_000]})))
    add(HostileRequest("cursor NUL", query="cursor=%00"))
    add(HostileRequest("cursor dots only", query="cursor=....."))
    add(HostileRequest("every parameter twice", query="limit=1&limit=1&sort=title&sort=title"))

    def post(name: str, body: bytes, content_type: str = "application/json") -> None:
        headers = (("Content-Type", content_type), ("Authorization", f"Bearer {TOKEN}"))
        add(HostileRequest(name, "POST", "/movies", headers=headers, body=body))

    for field in ("year", "rating", "votes", "runtime_minutes"):
        for raw in ("1e309", "-1e309", "-0.0", "99999999999999999999", "1.5e3", "true", '"9"'):
            post(f"{field}={raw}", f'{{"title": "t", "{field}": {raw}}}'.encode())
    post("NUL in a key", b'{"ti\\u0000tle": "x"}')
    post("NUL byte raw in the body", b'{"title": "a\x00b"}')
    post("body UTF-16", '{"title": "x"}'.encode("utf-16"), "application/json; charset=utf-16")
    post("body with BOM", b'\xef\xbb\xbf{"title": 5}')
    post("JSON object 20 000 deep", b'{"a":' * 20_000 + b"1" + b"}" * 20_000)
    post("multipart body", b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x")
    post("empty body", b"")
    add(
        HostileRequest(
            "request id 10 KB", headers=(("X-Request-ID", "a" * 10_000),), expect="no-5xx"
        )
    )
    add(HostileRequest("origin null", headers=(("Origin", "null"),), expect="no-5xx"))
    return out


def all_requests(cursor: str = "") -> list:
    shared = hostile.build_hostile_requests(
        hostile.list_parameters_from_spec(), token=TOKEN, cursor=cursor
    )
    # A NUL in free text (a title search) may be read as a separator, like any punctuation.
    free_text = {n for n, schema in list_parameter_schemas().items() if not _constrained(schema)}
    return [
        dataclasses.replace(r, expect="no-5xx")
        if r.name.partition("=")[2] in ("NUL", "NUL-only") and r.name.partition("=")[0] in free_text
        else r
        for r in shared
    ] + extra_requests()


HOSTILE = all_requests()


@pytest.fixture(scope="module")
def hostile_app(seeded_database: tuple[str, list[dict]]) -> Iterator[Flask]:
    """The API on the seeded database with writes enabled and no rate limits."""
    settings = Settings(
        database_url=seeded_database[0],
        secret_key="hostile-secret",
        api_tokens=(TOKEN,),
        rate_limit_reads="",
        rate_limit_writes="",
    )
    application = create_app(settings)
    yield application
    with application.app_context():
        db.engine.dispose()


def data_checksum(app: Flask) -> tuple:
    """Row counts and an md5 over every row of the tables the API reads or writes."""
    with app.app_context(), db.engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "SELECT count(*), "
                    "md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                    f"FROM {table} t"
                )
            ).one()
            for table in ("movie", "movie_genre", "genre", "dataset_load")
        )


@pytest.fixture(scope="module")
def checksum_before(hostile_app: Flask) -> tuple:
    return data_checksum(hostile_app)


def send(client: FlaskClient, request) -> object:
    path, _, query = request.target.partition("?")
    return client.open(
        path,
        method=request.method,
        query_string=query,
        headers=list(request.headers),
        data=request.body,
    )


def assert_answered_well(request, response) -> None:
    status, mimetype = response.status_code, response.mimetype
    assert status < 500, (request.name, status, response.data[:300])
    if request.expect == "problem":
        assert 400 <= status < 500, (request.name, status)
    if status >= 400:
        assert mimetype == PROBLEM_JSON, (request.name, status, mimetype)
        body = response.json
        assert body["status"] == status and body["detail"], request.name
        assert "Traceback" not in response.get_data(as_text=True)
    else:
        assert mimetype == "application/json", (request.name, status, mimetype)


def test_the_shared_list_covers_every_documented_parameter() -> None:
    documented = set(list_parameter_schemas())
    assert set(hostile.list_parameters_from_spec()) == documented
    covered = {r.query.partition("=")[0] for r in HOSTILE if r.query}
    assert documented <= covered
    assert len(HOSTILE) > 500


@pytest.mark.parametrize("request_", HOSTILE, ids=[r.name for r in HOSTILE])
def test_hostile_request_is_a_clean_4xx_and_changes_nothing(
    hostile_app: Flask, checksum_before: tuple, request_
) -> None:
    response = send(hostile_app.test_client(), request_)
    assert_answered_well(request_, response)
    if request_.method != "GET":
        assert data_checksum(hostile_app) == checksum_before


def test_tampered_real_cursors_are_clean_4xx(hostile_app: Flask, checksum_before: tuple) -> None:
    client = hostile_app.test_client()
    cursor = client.get("/movies?limit=2&sort=-rating").json["next_cursor"]
    assert cursor
    known = {r.name for r in HOSTILE}
    tampered = [r for r in all_requests(cursor) if r.name not in known]
    assert len(tampered) >= 4
    for request_ in tampered:
        assert_answered_well(request_, send(client, request_))
    assert data_checksum(hostile_app) == checksum_before


def test_data_is_unchanged_after_all_hostile_requests(
    hostile_app: Flask, checksum_before: tuple
) -> None:
    """Runs last in this module: the reads above left no trace either."""
    assert data_checksum(hostile_app) == checksum_before
    assert checksum_before[0][0] > 300
