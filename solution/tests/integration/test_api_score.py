"""sort=score: IMDb's weighted rating, computed by the loader from real TSV files, checked against
an exact Python computation (fractions), walked page by page in both directions."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient

from movies import query as q
from movies.api.connection import db
from movies.app import create_app
from movies.config import Settings
from movies.db import create_engine
from movies.loader import run_load
from movies.score import MIN_VOTES

SECRET = "score-test-secret"
TOKENS = ("score-token",)
AUTH = {"Authorization": f"Bearer {TOKENS[0]}"}
BASICS_HEADER = (
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\n"
)
TITLES = ["NA", "null", '"', 'The "Quoted" One', "\\N title", "Amélie", "東京物語", "Heat"]
RATINGS = ["1.0", "5.5", "6.8", "7.0", "8.6", "9.3", "10.0"]
VOTES = [0, 5, 100, 24_999, 25_000, 250_000, 2_900_000]
PERFECT_FEW = "tt0000005"  # 10.0 from 5 votes
TOP = "tt0111161"  # 9.3 from 2.9 million votes


def write_dataset(folder: Path, seed: int, count: int = 150) -> dict[str, tuple[str, int]]:
    """Write basics and ratings TSVs; return {tconst: (rating, votes)} of the rated movies."""
    rng = random.Random(seed)
    ids = [f"tt{n:07d}" for n in rng.sample(range(10, 9_000_000), count // 2)]
    ids += [f"tt{n:08d}" for n in rng.sample(range(10_000_000, 99_999_999), count - len(ids))]
    ids += [PERFECT_FEW, TOP]
    ratings = {i: (rng.choice(RATINGS), rng.choice(VOTES)) for i in ids if rng.random() < 0.8}
    ratings[PERFECT_FEW], ratings[TOP] = ("10.0", 5), ("9.3", 2_900_000)
    # Ties: several movies share rating and votes, so they share a score; id breaks the tie.
    for tied in ids[:12]:
        ratings[tied] = ("7.0", 100)
    basics = [BASICS_HEADER]
    for n, tconst in enumerate(sorted(ids)):
        adult = "1" if n % 17 == 3 and tconst not in (PERFECT_FEW, TOP) else "0"
        title = rng.choice(TITLES)
        basics.append(f"{tconst}\tmovie\t{title}\t{title}\t{adult}\t1999\t\\N\t90\tDrama\n")
    # A rated non-movie: its rating must not count towards C.
    basics.append("tt0000002\ttvSeries\tShow\tShow\t0\t1999\t\\N\t30\tDrama\n")
    lines = ["tconst\taverageRating\tnumVotes\n", "tt0000002\t1.0\t1000\n"]
    lines += [f"{i}\t{r}\t{v}\n" for i, (r, v) in sorted(ratings.items())]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "title.basics.tsv").write_text("".join(basics), encoding="utf-8")
    (folder / "title.ratings.tsv").write_text("".join(lines), encoding="utf-8")
    return ratings


def exact_mean(ratings: dict[str, tuple[str, int]]) -> Fraction:
    return sum(Fraction(r) for r, _ in ratings.values()) / len(ratings)


def exact_score(rating: str | float | None, votes: int | None, mean: Fraction) -> float | None:
    """The weighted rating with exact arithmetic, rounded half-even to 4 decimals."""
    if rating is None:
        return None
    v, r = Fraction(votes or 0), Fraction(str(rating))
    value = (v * r + MIN_VOTES * mean) / (v + MIN_VOTES)
    quantized = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_EVEN
    )
    return float(quantized)


def close_app(app: Flask) -> None:
    with app.app_context():
        db.engine.dispose()


def walk(client: FlaskClient, params: dict[str, str]) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(500):
        response = client.get(
            f"/movies?{urlencode(dict(params, **({'cursor': cursor} if cursor else {})))}"
        )
        assert response.status_code == 200, response.json
        items.extend(response.json["items"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


@pytest.fixture(scope="module")
def scored(
    make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Flask, dict[str, tuple[str, int]], Fraction]]:
    """(app, ratings of the loaded movies, exact C) on a database loaded from generated files."""
    url = make_database()
    folder = tmp_path_factory.mktemp("score-data")
    ratings = write_dataset(folder, seed=7)
    run_load(url, str(folder), downloads=folder / "downloads")
    app = create_app(Settings(database_url=url, secret_key=SECRET, api_tokens=TOKENS))
    yield app, ratings, exact_mean(ratings)
    close_app(app)


def test_many_votes_outrank_a_perfect_rating_from_few_votes(scored) -> None:
    app, _, mean = scored
    client = app.test_client()
    top = client.get(f"/movies/{TOP}").json
    few = client.get(f"/movies/{PERFECT_FEW}").json
    assert few["rating"] == 10.0 and top["rating"] == 9.3
    assert top["score"] > few["score"]
    assert abs(few["score"] - float(mean)) < 0.001  # 5 votes barely move a movie off C
    assert abs(top["score"] - 9.3) < 0.05  # 2.9 million votes keep it near its own rating
    ranked = [m["id"] for m in walk(client, {"sort": "-score", "limit": "100"})]
    assert ranked.index(TOP) < ranked.index(PERFECT_FEW)
    by_rating = [m["id"] for m in walk(client, {"sort": "-rating", "limit": "100"})]
    assert by_rating.index(PERFECT_FEW) < by_rating.index(TOP)


def test_scores_equal_the_formula_with_the_datasets_mean(scored) -> None:
    app, ratings, mean = scored
    client = app.test_client()
    items = walk(client, {"sort": "title", "include_adult": "true", "limit": "100"})
    assert len(items) == 152
    for movie in items:
        rating, votes = ratings.get(movie["id"], (None, None))
        assert movie["score"] == exact_score(rating, votes, mean), movie
    dataset = client.get("/dataset").json
    assert abs(Fraction(dataset["mean_rating"]) - mean) < Fraction(1, 10**9)


@pytest.mark.parametrize("sort", ["-score", "score", "-score,title", "score,-year,title"])
def test_sort_by_score_walks_all_pages_in_python_order(
    scored, sort_like_api: Callable, sort: str
) -> None:
    app, ratings, mean = scored
    client = app.test_client()
    items = walk(client, {"sort": sort, "include_adult": "true", "limit": "7"})
    ids = [m["id"] for m in items]
    assert len(ids) == len(set(ids)) == 152
    expected = [
        {"id": m["id"], "title": m["title"], "year": m["year"], "score": m["score"]} for m in items
    ]
    for movie in expected:
        rating, votes = ratings.get(movie["id"], (None, None))
        movie["score"] = exact_score(rating, votes, mean)
    assert ids == [m["id"] for m in sort_like_api(expected, sort)]


@pytest.mark.parametrize("sort", ["-score", "score"])
def test_unrated_movies_have_no_score_and_come_last(scored, sort: str) -> None:
    app, ratings, _ = scored
    items = walk(app.test_client(), {"sort": sort, "include_adult": "true", "limit": "50"})
    unrated = [m for m in items if m["id"] not in ratings]
    assert unrated and all(m["score"] is None and m["rating"] is None for m in unrated)
    assert items[-len(unrated) :] == unrated
    assert all(m["score"] is not None for m in items[: -len(unrated)])


def test_score_sort_combines_with_filters(scored) -> None:
    app, ratings, mean = scored
    items = walk(app.test_client(), {"sort": "-score", "votes_gte": "25000", "limit": "9"})
    assert items and all(m["votes"] >= 25_000 and not m["is_adult"] for m in items)
    scores = [m["score"] for m in items]
    assert scores == sorted(scores, reverse=True)


def test_bad_score_cursor_value_is_rejected(scored) -> None:
    app, _, _ = scored
    client = app.test_client()
    first = client.get("/movies?sort=-score&limit=2").json
    response = client.get(f"/movies?sort=-rating&limit=2&cursor={first['next_cursor']}")
    assert response.status_code == 400 and response.json["errors"][0]["param"] == "cursor"


def test_created_movie_is_scored_and_rescored_by_the_next_load(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    app = create_app(Settings(database_url=url, secret_key=SECRET, api_tokens=TOKENS))
    try:
        client = app.test_client()
        body = {"title": "Before any load", "rating": 9.0, "votes": 25_000}
        early = client.post("/movies", json=body, headers=AUTH).json
        assert early["score"] is None  # C is unknown before the first load

        first = write_dataset(tmp_path / "one", seed=1)
        run_load(url, str(tmp_path / "one"), downloads=tmp_path / "dl")
        c1 = exact_mean(first)
        assert client.get(f"/movies/{early['id']}").json["score"] == exact_score(9.0, 25_000, c1)

        created = client.post(
            "/movies", json={"title": "NA", "rating": 10.0, "votes": 5}, headers=AUTH
        ).json
        assert created["score"] == exact_score(10.0, 5, c1)
        unrated = client.post("/movies", json={"title": "null", "votes": 9}, headers=AUTH).json
        assert unrated["score"] is None

        second = write_dataset(tmp_path / "two", seed=2)
        run_load(url, str(tmp_path / "two"), downloads=tmp_path / "dl")
        c2 = exact_mean(second)
        assert c1 != c2
        assert client.get(f"/movies/{created['id']}").json["score"] == exact_score(10.0, 5, c2)
        assert client.get(f"/movies/{unrated['id']}").json["score"] is None
    finally:
        close_app(app)


def test_score_sort_reads_an_index_without_sorting(scored) -> None:
    """The first page of sort=score and sort=-score, as the API builds it: the score index, read
    forward or backward, and no sort."""
    app, _, _ = scored
    engine = create_engine(app.config["MOVIES_SETTINGS"].database_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")
            for sort, direction in (("-score", "Backward"), ("score", "")):
                sql = q.page_sql(q.MovieQuery(sort=q.parse_sort(sort), limit=20))
                text = "\n".join(conn.exec_driver_sql(f"EXPLAIN {sql.text}", sql.params).scalars())
                assert re.search(rf"Index Scan {direction}\s*using movie_imdb_score", text), text
                assert not re.search(r"(^|->\s+)Sort\s+\(", text, re.MULTILINE), text
    finally:
        engine.dispose()
