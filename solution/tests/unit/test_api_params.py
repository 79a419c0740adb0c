"""Query-string and body validation, without a database."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import pytest
from werkzeug.datastructures import MultiDict

from movies.api.params import parse_list_args, parse_new_movie
from movies.errors import ValidationError

VOCABULARY = ["Action", "Drama", "Film-Noir", "Sci-Fi"]


def resolve(names: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    lower = {v.lower(): v for v in VOCABULARY}
    names = list(names)
    return (
        [lower[n.lower()] for n in names if n.lower() in lower],
        [n for n in names if n.lower() not in lower],
        VOCABULARY,
    )


def parse(query: str):
    args = MultiDict([tuple(p.split("=", 1)) for p in query.split("&") if p])
    return parse_list_args(args, resolve, "secret")


def test_defaults() -> None:
    parsed = parse("")
    assert parsed.query.limit == 20 and str(parsed.query.sort[0]) == "title"
    assert not parsed.query.include_adult and parsed.after is None and parsed.count is None


def test_values_are_normalised() -> None:
    parsed = parse("genre=sci-fi,ACTION,action&rating_gt=8.50&year=1999&include_adult=TRUE")
    assert parsed.query.genres == ("Action", "Sci-Fi")
    assert parsed.query.ranges == (("rating_gt", Decimal("8.5")), ("year", 1999))
    assert parsed.query.include_adult is True
    assert parse("rating_gt=8.5").query.fingerprint() == parse("rating_gt=8.50").query.fingerprint()


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        parse("limit=0&sort=x&genre=Nope&colour=red&year=abc")
    params = {e["param"] for e in info.value.errors}
    assert params == {"limit", "sort", "genre", "colour", "year"}


def test_new_movie_strict_types_and_canonical_genres() -> None:
    fields = parse_new_movie(
        {"title": "NA", "genres": ["sci-fi", "drama"], "rating": 7, "is_adult": False}, resolve
    )
    assert fields == {
        "title": "NA",
        "genres": ["Drama", "Sci-Fi"],
        "rating": Decimal("7.0"),
        "is_adult": False,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"title": "t", "rating": 8.55},
        {"title": "t", "rating": float("nan")},
        {"title": "t", "rating": float("inf")},
        {"title": "t", "year": 2000.0},
        {"title": "t", "votes": False},
        {"title": ["t"]},
    ],
)
def test_new_movie_rejections(body: dict) -> None:
    with pytest.raises(ValidationError):
        parse_new_movie(body, resolve)
