"""The doors of the API: bearer tokens compared in constant time, per-client rate limits (429
problem+json with Retry-After), the CORS policy and preflights, security headers on every
response, and the request body cap (with and without Content-Length)."""

from __future__ import annotations

import functools
import hmac
import io
import time
import types
from collections.abc import Callable

import limits.storage.memory
import pytest
import sqlalchemy as sa
import yaml
from flask import Flask
from flask.testing import FlaskClient

from movies.api import auth, security
from movies.api.docs import load_spec_text
from movies.app import MAX_BODY_BYTES, create_app
from movies.config import ConfigError, Settings
from movies.errors import UnauthorizedError

TOKENS = ("token-one", "token-two")  # those of the write_app fixture
PROBLEM_JSON = "application/problem+json"
AUTH = {"Authorization": f"Bearer {TOKENS[0]}"}
ADMIN = "https://admin.example.org"


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == PROBLEM_JSON
    body = response.json
    assert body["status"] == status and body["type"] == "about:blank" and body["detail"]
    return body


@pytest.fixture
def make_app(make_seeded_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """`make_app(**settings)`: an app on the seeded database (writes enabled, so POSTs reach
    validation; the tests send only invalid bodies and never change the data)."""
    return functools.partial(make_seeded_app, secret_key="security-test-key", api_tokens=TOKENS)


def client_at(app: Flask, address: str) -> FlaskClient:
    """A test client whose requests come from `address` (the TCP peer)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


# --- Bearer tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("given", [TOKENS[0], TOKENS[1], "nope", TOKENS[0][:-1], TOKENS[1] + "x"])
def test_token_is_compared_with_every_configured_token(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """No early exit: the number of comparisons does not depend on which token matched, if any."""
    calls: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def counting_compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting_compare)
    tokens = (*TOKENS, "token-three")
    if given in tokens:
        auth.require_token(f"Bearer {given}", tokens)
    else:
        with pytest.raises(UnauthorizedError):
            auth.require_token(f"Bearer {given}", tokens)
    assert [b for _, b in calls] == [t.encode() for t in tokens]


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {TOKENS[0][:-1]}",  # a prefix of a valid token
        f"Bearer {TOKENS[0]}x",
        f"Bearer {TOKENS[0].upper()}",
        f"Bearer {TOKENS[0]},{TOKENS[1]}",
        f"Basic {TOKENS[0]}",
        TOKENS[0],
        "Bearer ",
        "Bearer token-one\u00e9",
    ],
)
def test_near_miss_tokens_are_401(write_client: FlaskClient, authorization: str) -> None:
    response = write_client.post(
        "/movies", json={"title": "x"}, headers={"Authorization": authorization}
    )
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- Rate limits ----------------------------------------------------------------------------


def test_reads_over_the_limit_are_429_with_retry_after(make_app: Callable[..., Flask]) -> None:
    client = client_at(make_app(rate_limit_reads="4/minute"), "203.0.113.7")
    # Every read route draws from the one bucket of this client.
    for path in ("/movies?limit=1", "/movies/tt0000000", "/genres", "/dataset"):
        assert client.get(path).status_code in (200, 404)
    response = client.get("/movies?limit=1", headers={"X-Request-ID": "limited-1"})
    body = problem(response, 429)
    assert "4 per 1 minute" in body["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Request-ID"] == "limited-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.head("/movies").status_code == 429


def test_rate_limits_count_per_client_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit_reads="2/minute")
    first, second = client_at(app, "198.51.100.1"), client_at(app, "198.51.100.2")
    assert [first.get("/genres").status_code for _ in range(3)] == [200, 200, 429]
    assert [second.get("/genres").status_code for _ in range(3)] == [200, 200, 429]


def test_health_probes_are_never_limited(make_app: Callable[..., Flask]) -> None:
    client = client_at(make_app(rate_limit_reads="1/minute"), "198.51.100.3")
    assert client.get("/genres").status_code == 200
    assert client.get("/genres").status_code == 429
    assert {client.get(path).status_code for path in ["/healthz", "/readyz"] * 10} == {200}


def test_writes_have_their_own_limit(make_app: Callable[..., Flask]) -> None:
    client = client_at(
        make_app(rate_limit_reads="3/minute", rate_limit_writes="2/minute"), "198.51.100.4"
    )
    # Invalid bodies: counted by the limiter, rejected by validation, nothing written.
    assert client.post("/movies", json={}, headers=AUTH).status_code == 400
    assert client.post("/movies", json={}, headers=AUTH).status_code == 400
    response = client.post("/movies", json={"title": "x"}, headers=AUTH)
    assert "2 per 1 minute" in problem(response, 429)["detail"]
    assert int(response.headers["Retry-After"]) >= 1
    # Writes used up; reads still have their own budget.
    assert [client.get("/genres").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_forwarded_for_is_ignored_without_trusted_proxies(make_app: Callable[..., Flask]) -> None:
    client = client_at(make_app(rate_limit_reads="2/minute"), "198.51.100.5")
    statuses = [
        client.get("/genres", headers={"X-Forwarded-For": f"192.0.2.{n}"}).status_code
        for n in range(4)
    ]
    assert statuses == [200, 200, 429, 429]


def test_forwarded_for_names_the_client_behind_a_trusted_proxy(
    make_app: Callable[..., Flask],
) -> None:
    proxy = client_at(make_app(rate_limit_reads="2/minute", trusted_proxies=1), "10.0.0.2")
    for client in ("192.0.2.10", "192.0.2.11"):
        # The client forged an address of its own in front; the proxy appended the real one.
        forwarded = {"X-Forwarded-For": f"1.1.1.1, {client}"}
        statuses = [proxy.get("/genres", headers=forwarded).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


def test_limits_set_to_empty_are_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit_reads="", rate_limit_writes="")
    assert "movies.rate_limits" not in app.extensions
    client = client_at(app, "198.51.100.6")
    assert {client.get("/healthz").status_code for _ in range(50)} == {200}
    assert {client.post("/movies", json={}, headers=AUTH).status_code for _ in range(40)} == {400}


def test_rate_limit_settings_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.rate_limit_reads, defaults.rate_limit_writes) == ("6000/minute", "30/minute")
    assert defaults.rate_limit_storage_uri == "memory://" and defaults.trusted_proxies == 0
    assert defaults.cors_origins == ("*",)
    custom = Settings.from_env(
        {
            "MOVIES_RATE_LIMIT_READS": "OFF",
            "MOVIES_RATE_LIMIT_WRITES": "10/second;100/hour",
            "MOVIES_RATE_LIMIT_STORAGE_URI": "redis://cache:6379",
            "MOVIES_TRUSTED_PROXIES": "2",
            "MOVIES_CORS_ORIGINS": f"*, {ADMIN}/ ,http://localhost:8080",
        }
    )
    assert custom.rate_limit_reads == "" and custom.rate_limit_writes == "10/second;100/hour"
    assert custom.rate_limit_storage_uri == "redis://cache:6379" and custom.trusted_proxies == 2
    assert custom.cors_origins == ("*", ADMIN, "http://localhost:8080")
    assert Settings.from_env({"MOVIES_CORS_ORIGINS": "off"}).cors_origins == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MOVIES_RATE_LIMIT_READS", "lots"),
        ("MOVIES_RATE_LIMIT_WRITES", "30 per fortnight"),
        ("MOVIES_TRUSTED_PROXIES", "-1"),
        ("MOVIES_CORS_ORIGINS", "admin.example.org"),
        ("MOVIES_CORS_ORIGINS", "https://admin.example.org/path"),
    ],
)
def test_bad_security_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_unusable_rate_limit_storage_stops_the_app(seeded_database: tuple[str, list[dict]]) -> None:
    settings = Settings(database_url=seeded_database[0], rate_limit_storage_uri="carrier-pigeon://")
    with pytest.raises(ConfigError, match="MOVIES_RATE_LIMIT_STORAGE_URI"):
        create_app(settings)


# --- CORS -----------------------------------------------------------------------------------


def test_any_site_may_read_without_credentials(client: FlaskClient) -> None:
    response = client.get("/movies?limit=1", headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Link" in response.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Access-Control-Allow-Origin" not in client.get("/movies?limit=1").headers


def test_preflight_for_reads_is_answered_without_writes(client: FlaskClient) -> None:
    response = client.options(
        "/movies",
        headers={
            "Origin": "https://elsewhere.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204 and response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert "Authorization" not in response.headers["Access-Control-Allow-Headers"]
    assert int(response.headers["Access-Control-Max-Age"]) > 0


def test_listed_origin_may_write(make_app: Callable[..., Flask]) -> None:
    client = make_app(cors_origins=("*", ADMIN)).test_client()
    preflight = client.options(
        "/movies", headers={"Origin": ADMIN, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ADMIN
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS, POST"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Origin" in preflight.headers["Vary"]
    response = client.post("/movies", json={}, headers={**AUTH, "Origin": ADMIN})
    problem(response, 400)
    assert response.headers["Access-Control-Allow-Origin"] == ADMIN
    # Another site still reads, and every answer says it depends on Origin.
    other = client.get("/genres", headers={"Origin": "https://elsewhere.example"})
    assert other.headers["Access-Control-Allow-Origin"] == "*"
    assert "Origin" in other.headers["Vary"]
    # The single-movie route offers only reads, even to a writer.
    preflight = client.options(
        "/movies/tt0000001", headers={"Origin": ADMIN, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"


def test_only_listed_origins_without_star(make_app: Callable[..., Flask]) -> None:
    client = make_app(cors_origins=(ADMIN,)).test_client()
    stranger = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"}
    preflight = client.options("/movies", headers=stranger)
    assert preflight.status_code == 204
    assert not [h for h in preflight.headers.keys() if h.startswith("Access-Control-")]
    assert "Access-Control-Allow-Origin" not in client.get("/genres", headers=stranger).headers
    listed = client.get("/genres", headers={"Origin": ADMIN})
    assert listed.headers["Access-Control-Allow-Origin"] == ADMIN


def test_cors_off_sends_no_cors_headers(make_app: Callable[..., Flask]) -> None:
    client = make_app(cors_origins=()).test_client()
    headers = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"}
    preflight = client.options("/movies", headers=headers)
    assert preflight.status_code == 200  # Flask's own OPTIONS answer, no CORS
    for response in (preflight, client.get("/genres", headers=headers)):
        assert not [h for h in response.headers.keys() if h.startswith("Access-Control-")]


@pytest.mark.parametrize(
    ("origins", "varies"), [(("*",), True), ((ADMIN,), True), (("*", ADMIN), True), ((), False)]
)
def test_cached_answers_vary_on_origin_whenever_cors_is_on(
    make_app: Callable[..., Flask], origins: tuple[str, ...], varies: bool
) -> None:
    """A shared cache keeps one copy per Origin, so it never hands a page without
    Access-Control-Allow-Origin (fetched without Origin) to a browser that needs it."""
    client = make_app(cors_origins=origins).test_client()
    path = "/movies?limit=1"
    plain = client.get(path)
    etag = plain.headers["ETag"]
    kept = client.get(path, headers={"Origin": ADMIN})
    revalidated = client.get(path, headers={"Origin": ADMIN, "If-None-Match": etag})
    assert revalidated.status_code == 304
    for response in (plain, kept, revalidated, client.get("/genres")):
        assert response.headers["Cache-Control"].startswith("public")
        assert ("Origin" in response.headers.get("Vary", "")) is varies


def test_preflight_is_not_rate_limited_and_unknown_routes_stay_404(
    make_app: Callable[..., Flask],
) -> None:
    client = client_at(make_app(rate_limit_reads="1/minute"), "198.51.100.8")
    headers = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"}
    assert {client.options("/movies", headers=headers).status_code for _ in range(5)} == {204}
    problem(client.options("/nowhere", headers=headers), 404)
    assert client.get("/genres").status_code == 200


# --- Security headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/movies?limit=1", 200),
        ("GET", "/movies/tt0000000", 404),
        ("GET", "/movies?limit=0", 400),
        ("GET", "/nowhere", 404),
        ("DELETE", "/movies", 405),
        ("POST", "/movies", 403),
        ("GET", "/openapi.json", 200),
        ("GET", "/healthz", 200),
    ],
)
def test_security_headers_on_every_response(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert (
        response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    if status >= 400:
        assert response.headers["Cache-Control"] == "no-store"
    else:
        assert "no-store" not in response.headers.get("Cache-Control", "")


@pytest.mark.parametrize("path", ["/docs", "/docs/", "/docs/swagger-ui-bundle.js"])
def test_docs_keep_their_inline_script(client: FlaskClient, path: str) -> None:
    with client.get(path) as response:
        assert response.status_code == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in response.headers


# --- Body cap -------------------------------------------------------------------------------


def _user_movies(app: Flask) -> int:
    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM movie_user")).scalar_one()
    engine.dispose()
    return count


def _padded_body(size: int) -> bytes:
    head, tail = b'{"title": "x", "pad": "', b'"}'
    return head + b"y" * (size - len(head) - len(tail)) + tail


def test_body_over_64_kib_is_413(write_app: Flask, write_client: FlaskClient) -> None:
    too_big = _padded_body(MAX_BODY_BYTES + 1)
    response = write_client.post(
        "/movies", data=too_big, content_type="application/json", headers=AUTH
    )
    assert "too large" in problem(response, 413)["detail"]
    # At the cap the body is read, then refused by validation (the unknown `pad` field).
    at_cap = _padded_body(MAX_BODY_BYTES)
    response = write_client.post(
        "/movies", data=at_cap, content_type="application/json", headers=AUTH
    )
    assert problem(response, 400)["errors"][0]["param"] == "pad"
    assert _user_movies(write_app) == 0


def test_chunked_body_without_content_length_is_capped(
    write_app: Flask, write_client: FlaskClient
) -> None:
    """As gunicorn passes a chunked upload: no CONTENT_LENGTH, wsgi.input_terminated set."""

    def chunked_post(body: bytes):
        return write_client.post(
            "/movies",
            input_stream=io.BytesIO(body),
            headers={**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )

    problem(chunked_post(_padded_body(10 * MAX_BODY_BYTES)), 413)
    created = chunked_post(b'{"title": "Chunked \\"NA\\""}')
    assert created.status_code == 201, created.data
    assert created.json["title"] == 'Chunked "NA"'
    assert _user_movies(write_app) == 1


def test_worker_memory_storage_counts_expires_and_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = security.WorkerMemoryStorage()
    storage.timer.join(timeout=1)
    assert not storage.timer.is_alive()  # no expiry thread
    assert [storage.incr("a", 60) for _ in range(3)] == [1, 2, 3]
    storage.incr("b", 60)
    later = types.SimpleNamespace(time=lambda: time.time() + 61)
    monkeypatch.setattr(security, "time", later)
    monkeypatch.setattr(limits.storage.memory, "time", later)
    monkeypatch.setattr(security.WorkerMemoryStorage, "SWEEP_EVERY", 1)
    assert storage.incr("c", 60) == 1  # the sweep dropped a and b, expired
    assert set(storage.storage) == {"c"} and set(storage.expirations) == {"c"}


def test_spec_documents_429_on_every_rate_limited_operation() -> None:
    spec = yaml.safe_load(load_spec_text())
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method in ("get", "head", "post") and path not in ("/healthz", "/readyz")
        if "429" not in operation["responses"]
    ]
    assert undocumented == []
    retry_after = spec["components"]["responses"]["TooManyRequests"]["headers"]["Retry-After"]
    assert retry_after["schema"]["type"] == "integer"
