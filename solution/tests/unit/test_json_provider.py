"""The orjson provider encodes what Flask's provider encodes, to the same values."""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from flask import Flask

from movies.api.json_provider import OrjsonProvider


@pytest.fixture
def provider() -> Iterator[OrjsonProvider]:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    yield app.json  # type: ignore[misc]  # the provider holds its app weakly: keep it alive


@dataclasses.dataclass
class Point:
    x: int
    label: str


NASTY = {
    "titles": ["NA", "null", '"', 'The "Quoted" One', "\\N", "Tab\tInside", "Amélie", "東京物語"],
    "emoji": "🎬 Reel",
    "control": "a\x00b\x1fc\x7f",
    "rating": 8.5,
    "nothing": None,
    "flags": [True, False],
    "big": 2**63 - 1,
    "nested": {"z": 1, "a": 2},
}


def test_values_round_trip_like_the_standard_library(provider: OrjsonProvider) -> None:
    text = provider.dumps(NASTY)
    assert json.loads(text) == NASTY
    assert list(json.loads(text)["nested"]) == ["z", "a"], "keys keep their order"
    assert ": " not in text and ", " not in text, "compact"
    assert "Amélie" in text, "UTF-8, not escaped"


def test_flask_conversions_are_kept(provider: OrjsonProvider) -> None:
    when = datetime.datetime(2026, 11, 26, 9, 30, tzinfo=datetime.UTC)
    some_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {
        "decimal": Decimal("8.5"),
        "when": when,
        "day": datetime.date(2026, 11, 26),
        "id": some_id,
        "point": Point(1, "x"),
        7: "int key",
    }
    assert json.loads(provider.dumps(value)) == {
        "decimal": "8.5",
        "when": "Thu, 26 Nov 2026 09:30:00 GMT",
        "day": "Thu, 26 Nov 2026 00:00:00 GMT",
        "id": str(some_id),
        "point": {"x": 1, "label": "x"},
        "7": "int key",
    }


def test_values_orjson_refuses_fall_back_to_the_standard_library(
    provider: OrjsonProvider,
) -> None:
    for value in [{"lone": "\ud800"}, {"huge": 2**70}]:
        text = provider.dumps(value)
        assert json.loads(text) == value
        assert provider.encode(value).decode("ascii") == text


def test_response_is_json_with_the_body_bytes(provider: OrjsonProvider) -> None:
    with provider._app.test_request_context():
        response = provider.response(items=[{"title": "Zoë"}], next_cursor=None)
    assert response.mimetype == "application/json"
    assert response.get_data() == '{"items":[{"title":"Zoë"}],"next_cursor":null}\n'.encode()


def test_unencodable_object_is_a_type_error(provider: OrjsonProvider) -> None:
    with pytest.raises(TypeError):
        provider.dumps({"x": object()})
