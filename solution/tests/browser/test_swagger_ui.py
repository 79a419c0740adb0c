"""Swagger UI in a real browser: /docs renders the contract and "Try it out" calls the live API.

Drives the system Chromium (Debian's `chromium`; CHROMIUM_PATH overrides /usr/bin/chromium) with
Playwright, against the app served by werkzeug on a free localhost port over a seeded database.
A missing browser fails the test: it never skips.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import make_server

from movies.api.docs import load_spec_text
from movies.app import create_app
from movies.config import Settings
from movies.db import create_engine

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000

SEED = """
INSERT INTO movie_imdb (id, source, title, year, rating, votes, genres)
VALUES ('tt0000001', 'imdb', 'NA', 1999, 7.5, 120, '{Drama}'),
       ('tt12345678', 'imdb', 'Ünïcode "quoted" title', 2021, 8.1, 4000, '{Comedy,Drama}'),
       ('tt0000003', 'imdb', 'null', NULL, NULL, NULL, '{}');
INSERT INTO movie_genre_imdb (movie_id, source, genre_id)
SELECT m.id, 'imdb', g.id FROM movie_imdb m JOIN genre g ON g.name = ANY (m.genres);
INSERT INTO dataset_load (source, rows_read, movies, rated_movies, genre_links, skipped_rows,
                          seconds)
VALUES ('browser test', 3, 3, 2, 3, 0, 0.1);
"""


@pytest.fixture(scope="module")
def base_url(make_database: Callable[[], str]) -> Iterator[str]:
    url = make_database()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(SEED)
    engine.dispose()
    app = create_app(Settings(database_url=url, api_tokens=("browser-token",)))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    with app.app_context():
        app.extensions["sqlalchemy"].engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def operation(page: Page, method: str, path: str):
    return page.locator(f".opblock-{method}:has(.opblock-summary-path[data-path='{path}'])")


def spec_operations() -> list[tuple[str, str]]:
    """Every (method, path) of the contract the app serves."""
    spec = yaml.safe_load(load_spec_text())
    return [
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def movie_path() -> str:
    """The single-movie path of the contract, `/movies/{<parameter>}`."""
    [path] = {p for _, p in spec_operations() if re.fullmatch(r"/movies/\{\w+\}", p)}
    return path


def test_docs_render_every_operation(page: Page, base_url: str) -> None:
    operations = spec_operations()
    assert {("get", "/movies"), ("get", movie_path()), ("post", "/movies")} <= set(operations)
    page.goto(f"{base_url}/docs")
    for method, path in operations:
        expect(operation(page, method, path)).to_have_count(1)
    expect(page.locator(".info .title")).to_contain_text("movies", ignore_case=True)


def test_try_it_out_lists_movies_from_the_live_api(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/docs")
    list_movies = operation(page, "get", "/movies")
    list_movies.locator(".opblock-summary").click()
    list_movies.locator("button.try-out__btn").click()
    list_movies.locator("button.execute").click()

    live = list_movies.locator(".live-responses-table .response")
    expect(live.locator(".response-col_status")).to_have_text("200")
    body = live.locator(".response-col_description .highlight-code .microlight")
    expect(body).to_contain_text("tt12345678")
    expect(body).to_contain_text('Ünïcode \\"quoted\\" title')
    expect(body).to_contain_text('"NA"')
    # Swagger UI shows the request it sent: the same origin as the page, no CORS involved
    expect(list_movies.locator(".request-url")).to_contain_text(f"{base_url}/movies")


def test_try_it_out_shows_the_error_body_for_a_missing_movie(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/docs")
    path = movie_path()
    get_movie = operation(page, "get", path)
    get_movie.locator(".opblock-summary").click()
    get_movie.locator("button.try-out__btn").click()
    parameter = path.removeprefix("/movies/{").removesuffix("}")
    get_movie.locator(f"tr[data-param-name='{parameter}'] input").fill("tt9999999")
    get_movie.locator("button.execute").click()

    live = get_movie.locator(".live-responses-table .response")
    expect(live.locator(".response-col_status")).to_contain_text("404")
    expect(live.locator(".response-col_description")).to_contain_text("tt9999999")


def test_seeded_database_is_what_the_page_shows(base_url: str) -> None:
    """Guard for the tests above: the API itself returns the seeded rows."""
    with urllib.request.urlopen(f"{base_url}/movies?sort=title") as response:
        items = json.load(response)["items"]
    # byte order (COLLATE "C"): "NA" < "null" < "Ü..."
    assert [item["id"] for item in items] == ["tt0000001", "tt0000003", "tt12345678"]
