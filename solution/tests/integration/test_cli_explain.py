"""`movies explain`: the SQL a request runs, as the API prepares it, and its plan with timing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from movies.cli import main


@pytest.fixture
def explain(app: Flask) -> Callable[[str], Result]:
    """`movies explain URL` on the seeded database, with the test app's secret (its cursors)."""
    settings = app.config["MOVIES_SETTINGS"]
    env = {"DATABASE_URL": settings.database_url, "MOVIES_SECRET_KEY": settings.secret_key}

    def run(url: str) -> Result:
        return CliRunner().invoke(main, ["explain", url], env=env)

    return run


def test_explain_prints_the_prepared_text_its_parameters_and_the_timed_plan(
    explain: Callable[[str], Result],
) -> None:
    first = explain("http://localhost:5000/movies?genre=drama&rating_gte=7&sort=-votes&limit=2")
    assert first.exit_code == 0, first.output
    # The filters are written into the text as the API prepares it; a first page has no $n.
    assert "movie.genres @> ARRAY['Drama']" in first.output
    assert "movie.rating >= 7" in first.output and "LIMIT 3" in first.output
    assert "Execution Time:" in first.output and "actual time=" in first.output


def test_explain_a_next_page_shows_the_cursor_values_as_parameters(
    explain: Callable[[str], Result], client: FlaskClient
) -> None:
    cursor = client.get("/movies?sort=-votes&limit=2").json["next_cursor"]
    result = explain(f"/movies?sort=-votes&limit=2&cursor={cursor}")
    assert result.exit_code == 0, result.output
    assert "(movie.votes, movie.id) < ($1, $2)" in result.output
    assert "-- $1 = " in result.output and "-- $2 = 'tt" in result.output


def test_explain_covers_count_and_facets_when_asked(explain: Callable[[str], Result]) -> None:
    result = explain("/movies?genre=Comedy&count=exact&facets=decade")
    assert result.exit_code == 0, result.output
    assert "-- count=exact" in result.output and "-- facet decade" in result.output
    assert result.output.count("Execution Time:") == 3


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/movies/tt0000001", "only GET /movies requests"),
        ("/movies?sort=popularity", "sort: cannot sort by 'popularity'"),
        ("/movies?genre=Nope", "genre"),
        ("/movies?cursor=forged", "cursor"),
    ],
)
def test_explain_rejects_what_the_api_rejects_with_a_clear_message(
    explain: Callable[[str], Result], url: str, message: str
) -> None:
    result = explain(url)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
