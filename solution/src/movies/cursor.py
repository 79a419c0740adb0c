"""Opaque pagination cursors: signed, bound to the filters and sort they were issued for.

A cursor is `base64url(json) "." base64url(hmac_sha256(secret, json))`, where the compact JSON
holds the last row's sort key values (`v`), its id (`i`) and the query fingerprint (`f`). The
signature makes cursors tamper-evident; the fingerprint makes a cursor issued for one
filter/sort combination unusable with another. Cursors are not encrypted: their content is the
last row's public values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

MAX_CURSOR_LENGTH = 2048


class CursorError(ValueError):
    """A cursor that is malformed, tampered with, or issued for another query."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()


def encode_cursor(values: list[Any], movie_id: str, fingerprint: str, secret: str) -> str:
    """Build the cursor for the page after the row with these sort values and id."""
    payload = json.dumps(
        {"v": values, "i": movie_id, "f": fingerprint},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return f"{_b64encode(payload)}.{_b64encode(_sign(secret, payload))}"


def decode_cursor(token: str, fingerprint: str, secret: str) -> tuple[Any, Any]:
    """Verify a cursor and return its (values, id), still as JSON values.

    :raise CursorError: if the token is malformed, its signature is wrong, or it was issued
        for a different set of filters or sort.
    """
    if len(token) > MAX_CURSOR_LENGTH or token.count(".") != 1:
        raise CursorError("malformed cursor")
    body, signature = token.split(".")
    try:
        payload = _b64decode(body)
        given = _b64decode(signature)
    except (binascii.Error, ValueError):
        raise CursorError("malformed cursor") from None
    if not hmac.compare_digest(given, _sign(secret, payload)):
        raise CursorError("cursor signature does not match: it was altered or is not ours")
    try:
        data = json.loads(payload)
    except ValueError:
        raise CursorError("malformed cursor") from None
    if not isinstance(data, dict) or set(data) != {"v", "i", "f"}:
        raise CursorError("malformed cursor")
    if data["f"] != fingerprint:
        raise CursorError(
            "cursor was issued for different filters or sort; "
            "repeat the original filters and sort, or start again without a cursor"
        )
    return data["v"], data["i"]
