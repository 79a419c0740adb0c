"""Cursors: round trip, and every way a cursor can be wrong is a CursorError."""

from __future__ import annotations

import base64
import json

import pytest

from movies.cursor import CursorError, decode_cursor, encode_cursor

SECRET = "s3cret"


def test_cursor_round_trips_unicode_and_nulls() -> None:
    token = encode_cursor(['東京 "NA"', None, "8.5"], "tt12345678", "fp", SECRET)
    assert decode_cursor(token, "fp", SECRET) == (['東京 "NA"', None, "8.5"], "tt12345678")
    assert all(c.isalnum() or c in "-_." for c in token), "URL-safe without escaping"


def test_cursor_with_other_fingerprint_is_rejected() -> None:
    token = encode_cursor([1], "tt0000001", "fp-a", SECRET)
    with pytest.raises(CursorError, match="different filters or sort"):
        decode_cursor(token, "fp-b", SECRET)


def test_cursor_signed_with_other_secret_is_rejected() -> None:
    token = encode_cursor([1], "tt0000001", "fp", "other")
    with pytest.raises(CursorError, match="signature"):
        decode_cursor(token, "fp", SECRET)


def test_cursor_with_edited_payload_is_rejected() -> None:
    token = encode_cursor([1], "tt0000001", "fp", SECRET)
    body, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["i"] = "tt9999999"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    with pytest.raises(CursorError):
        decode_cursor(f"{forged}.{signature}", "fp", SECRET)


@pytest.mark.parametrize(
    "token", ["", ".", "abc", "a.b.c", "é.é", "!!!.???", "A" * 3000, "e30.AAAA", "bnVsbA.xx"]
)
def test_malformed_cursor_is_rejected(token: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor(token, "fp", SECRET)


def test_signed_but_wrong_shape_is_rejected() -> None:
    import hashlib
    import hmac

    payload = b'{"v": [1]}'
    sig = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()
    token = (
        base64.urlsafe_b64encode(payload).decode().rstrip("=")
        + "."
        + base64.urlsafe_b64encode(sig).decode().rstrip("=")
    )
    with pytest.raises(CursorError, match="malformed"):
        decode_cursor(token, "fp", SECRET)
