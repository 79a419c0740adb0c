"""Bearer-token authentication for writes."""

from __future__ import annotations

import hmac

from movies.errors import UnauthorizedError, WritesDisabledError


def require_token(authorization: str | None, tokens: tuple[str, ...]) -> None:
    """Check an `Authorization: Bearer <token>` header against the configured tokens.

    Compares against every token in constant time, so timing reveals neither which token
    nearly matched nor how many there are.

    :raise WritesDisabledError: (403) if no token is configured.
    :raise UnauthorizedError: (401) if the header is missing, malformed or wrong.
    """
    if not tokens:
        raise WritesDisabledError(
            "writes are disabled: set MOVIES_API_TOKENS (comma-separated bearer tokens) "
            "to enable POST /movies"
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise UnauthorizedError("send Authorization: Bearer <token>")
    given_bytes = given.strip().encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given_bytes, token.encode())
    if not matched:
        raise UnauthorizedError("invalid bearer token")
