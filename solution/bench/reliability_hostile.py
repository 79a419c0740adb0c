"""Hostile requests: SQL-injection-shaped values in every parameter, huge and malformed cursors,
deep unicode, NUL bytes, repeated parameters, oversized headers and bodies.

Data only (plus a sender for a live server), so a test suite can replay the same list through
Flask's test client: `build_hostile_requests(list_parameters, token=..., cursor=...)`.

Each request says what a correct server answers:
- `problem`: a 4xx with an application/problem+json body (the application rejected it);
- `rejected`: any 4xx (gunicorn itself refuses oversized request lines and headers, before the
  application sees them, with its own plain body);
- `no-5xx`: a valid if odd request; any status below 500 is right, and a 4xx must be problem+json.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from importlib import resources
from urllib.parse import quote, urlencode

import requests

PROBLEM_JSON = "application/problem+json"

INJECTIONS = (
    "' OR '1'='1",
    "1; DROP TABLE movie; --",
    "1) OR (1=1",
    "1 UNION SELECT usename FROM pg_user",
    "title; DELETE FROM movie_imdb",
    "$$; SELECT pg_sleep(10); $$",
    "-rating,(SELECT 1)",
    "rating DESC NULLS FIRST",
    "\\'; --",
)
UNICODE_VALUES = (
    "\u202egnp.exe",  # right-to-left override
    "a" + "\u0301" * 400,  # one letter under 400 combining accents
    "🎬" * 200,  # 4-byte UTF-8
    "\ufeff1999",  # byte order mark before digits
    "١٩٩٩",  # Arabic-Indic digits: Python's int() accepts them
    "Ｄｒａｍａ",  # fullwidth letters
)
# Percent-encoded byte sequences that are not UTF-8: surrogate, overlong, invalid bytes.
INVALID_UTF8 = ("%ED%A0%80", "%C0%AF", "%FF%FE", "%80")
NUMERIC_GARBAGE = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "99999999999999999999999",
    "-1",
    "0x10",
    "1.5.5",
    " 10",
    "",
    "10 ",
)
DEFAULT_LIST_PARAMETERS = (
    "sort",
    "limit",
    "cursor",
    "genre",
    "year",
    "year_gte",
    "year_lte",
    "rating_gt",
    "rating_gte",
    "rating_lt",
    "rating_lte",
    "votes_gte",
    "runtime_gte",
    "runtime_lte",
)


@dataclass(frozen=True)
class HostileRequest:
    name: str
    method: str = "GET"
    path: str = "/movies"
    query: str = ""  # raw query string, already percent-encoded
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    expect: str = "problem"  # "problem", "rejected" or "no-5xx"

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def list_parameters_from_spec() -> tuple[str, ...]:
    """The query parameters of GET /movies in the package's OpenAPI document, if it has one."""
    try:
        import yaml

        spec = yaml.safe_load((resources.files("movies") / "openapi.yaml").read_text("utf-8"))
        params = spec["paths"]["/movies"]["get"].get("parameters", [])
        names = []
        for param in params:
            if "$ref" in param:
                node = spec
                for part in param["$ref"].lstrip("#/").split("/"):
                    node = node[part]
                param = node
            if param.get("in") == "query":
                names.append(param["name"])
        return tuple(names) or DEFAULT_LIST_PARAMETERS
    except (ImportError, OSError, KeyError, TypeError, AttributeError):
        return DEFAULT_LIST_PARAMETERS


def _text_valued(parameter: str) -> bool:
    # Parameters whose value is free text or a name: an odd value may be valid (an empty match).
    return parameter in ("genre", "title", "q", "search")


def _cursor_of(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def build_hostile_requests(
    list_parameters: tuple[str, ...] = DEFAULT_LIST_PARAMETERS,
    *,
    token: str = "",
    cursor: str = "",
    movie_id: str = "tt0000001",
) -> list[HostileRequest]:
    """The hostile request list. `cursor` is a real next_cursor (tampered copies are sent);
    `token` a valid bearer token (so body validation, not authentication, answers)."""
    out: list[HostileRequest] = []
    add = out.append

    # Injection-shaped and unicode values in every list parameter.
    for param in list_parameters:
        expect = "no-5xx" if _text_valued(param) else "problem"
        for i, value in enumerate(INJECTIONS):
            add(
                HostileRequest(
                    f"{param}=injection{i}", query=urlencode({param: value}), expect=expect
                )
            )
        for i, value in enumerate(UNICODE_VALUES):
            ok = "no-5xx" if _text_valued(param) or value == "١٩٩٩" else "problem"
            add(HostileRequest(f"{param}=unicode{i}", query=urlencode({param: value}), expect=ok))
        for i, raw in enumerate(INVALID_UTF8):
            add(HostileRequest(f"{param}=bad-utf8-{i}", query=f"{param}={raw}", expect="no-5xx"))
        add(HostileRequest(f"{param}=NUL", query=f"{param}=1%00", expect="problem"))
        add(HostileRequest(f"{param}=NUL-only", query=f"{param}=%00", expect="problem"))
        add(HostileRequest(f"{param}=repeated", query=f"{param}=1&{param}=2", expect="no-5xx"))
        if not _text_valued(param) and param not in ("sort", "cursor"):
            for i, value in enumerate(NUMERIC_GARBAGE):
                expect = "no-5xx" if value.strip() == "10" or value == "" else "problem"
                add(
                    HostileRequest(
                        f"{param}=number{i}", query=urlencode({param: value}), expect=expect
                    )
                )

    # Unknown parameters, injection-shaped names, many parameters.
    add(HostileRequest("unknown parameter", query="colour=red"))
    add(HostileRequest("injection-shaped name", query=urlencode({"1' OR '1'='1": "1"})))
    add(HostileRequest("NUL in name", query="so%00rt=title"))
    add(HostileRequest("300 genres", query="&".join(["genre=Drama"] * 300), expect="no-5xx"))
    add(
        HostileRequest(
            "sort on every key 50 times", query="sort=" + ",".join(["title", "-rating"] * 50)
        )
    )
    add(HostileRequest("sort on a column not offered", query="sort=imdb_id"))
    add(HostileRequest("sort on a system column", query="sort=ctid"))

    # Cursors: tampered, malformed, huge, wrong types inside a well-formed envelope.
    add(HostileRequest("cursor not base64", query="cursor=!!!***"))
    add(HostileRequest("cursor base64 of garbage", query="cursor=" + _cursor_of("garbage")[:-1]))
    add(HostileRequest("cursor JSON list", query="cursor=" + _cursor_of([1, 2, 3])))
    add(
        HostileRequest(
            "cursor JSON injection",
            query="cursor=" + _cursor_of({"v": ["' OR 1=1 --"], "id": "x' OR 1=1"}),
        )
    )
    add(HostileRequest("cursor 3 KB", query="cursor=" + "A" * 3000))
    add(
        HostileRequest("cursor 3 KB base64 JSON", query="cursor=" + _cursor_of({"v": ["x" * 2000]}))
    )
    add(
        HostileRequest(
            "cursor 20 KB (beyond the request line limit)",
            query="cursor=" + "A" * 20000,
            expect="rejected",
        )
    )
    add(
        HostileRequest(
            "cursor deep JSON", query="cursor=" + _cursor_of(json.loads("[" * 500 + "]" * 500))
        )
    )
    if cursor:
        flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
        add(HostileRequest("cursor tampered (one character)", query="cursor=" + flipped))
        add(HostileRequest("cursor truncated", query="cursor=" + cursor[: len(cursor) // 2]))
        add(HostileRequest("cursor with another sort", query=f"cursor={cursor}&sort=-votes"))
        add(
            HostileRequest(
                "cursor doubled", query=f"cursor={cursor}&cursor={cursor}", expect="no-5xx"
            )
        )

    # Paths.
    for i, value in enumerate(INJECTIONS[:4]):
        add(HostileRequest(f"id injection{i}", path="/movies/" + quote(value, safe="")))
    add(HostileRequest("id with NUL", path=f"/movies/{movie_id}%00"))
    add(HostileRequest("id 5000 digits", path="/movies/tt" + "9" * 3000))
    add(HostileRequest("id unicode digits", path="/movies/tt" + quote("١٢٣٤٥٦٧")))
    add(HostileRequest("id invalid UTF-8", path="/movies/tt%ED%A0%80"))
    add(HostileRequest("path traversal", path="/movies/..%2F..%2Fetc%2Fpasswd"))
    add(HostileRequest("unknown route", path="/movies/tt0000001/edit"))
    for method in ("DELETE", "PUT", "PATCH"):
        add(HostileRequest(f"{method} a movie", method=method, path=f"/movies/{movie_id}"))
    add(HostileRequest("DELETE the list", method="DELETE"))

    # Headers.
    add(HostileRequest("header 10 KB", headers=(("X-Padding", "a" * 10_000),), expect="rejected"))
    add(
        HostileRequest(
            "200 headers", headers=tuple((f"X-H{i}", "1") for i in range(200)), expect="rejected"
        )
    )
    add(HostileRequest("Accept: garbage", headers=(("Accept", "';--/*"),), expect="no-5xx"))

    # POST: authentication first, then bodies (with a valid token).
    def post(
        name: str,
        body: bytes,
        *,
        auth: str | None = f"Bearer {token}",
        content_type: str = "application/json",
        expect: str = "problem",
    ) -> None:
        headers = [("Content-Type", content_type)]
        if auth is not None:
            headers.append(("Authorization", auth))
        add(
            HostileRequest(
                name, "POST", "/movies", headers=tuple(headers), body=body, expect=expect
            )
        )

    valid = json.dumps({"title": "Hostile but valid", "year": 2001}).encode()
    post("no token", valid, auth=None)
    post("wrong token", valid, auth="Bearer not-the-token")
    post("empty bearer", valid, auth="Bearer ")
    post("basic auth", valid, auth="Basic " + base64.b64encode(b"a:b").decode())
    post("token injection", valid, auth="Bearer ' OR '1'='1")
    post("token 8 KB", valid, auth="Bearer " + "a" * 8000, expect="rejected")
    post("malformed JSON", b'{"title": ')
    post("JSON array", b"[]")
    post("JSON null", b"null")
    post("JSON string", b'"title"')
    post("JSON deeply nested", b"[" * 100_000 + b"]" * 100_000)
    post("not UTF-8", b'{"title": "\xff\xfe"}')
    post("title with NUL", json.dumps({"title": "a\u0000b"}).encode())
    post("title lone surrogate", b'{"title": "\\ud800"}')
    post("title 1 MB", json.dumps({"title": "x" * 1_000_000}).encode())
    post("body 12 MB", json.dumps({"title": "x", "pad": "y" * 12_000_000}).encode())
    post(
        "title injection typed as number", json.dumps({"title": "t", "year": "1' OR 1=1"}).encode()
    )
    post("rating out of range", json.dumps({"title": "t", "rating": 11}).encode())
    post("year NaN", b'{"title": "t", "year": NaN}')
    post("year huge", json.dumps({"title": "t", "year": 10**30}).encode())
    post("genres not a list", json.dumps({"title": "t", "genres": "Drama"}).encode())
    post(
        "genre unknown", json.dumps({"title": "t", "genres": ["'; DROP TABLE genre; --"]}).encode()
    )
    post("id given", json.dumps({"title": "t", "id": "tt0000001"}).encode())
    post("source imdb", json.dumps({"title": "t", "source": "imdb"}).encode())
    post("duplicate keys", b'{"title": "t", "title": 5}')
    post("text/plain body", valid, content_type="text/plain")
    post("form body", b"title=t", content_type="application/x-www-form-urlencoded")
    return out


@dataclass(frozen=True)
class HostileResult:
    request: HostileRequest
    status: int  # 0: no HTTP response
    content_type: str
    seconds: float

    @property
    def passed(self) -> bool:
        if not self.status or self.status >= 500:
            return False
        problem = self.content_type == PROBLEM_JSON
        if self.request.expect == "problem":
            return 400 <= self.status < 500 and problem
        if self.request.expect == "rejected":
            return 400 <= self.status < 500
        return self.status < 400 or problem


def send(session: requests.Session, base_url: str, request: HostileRequest) -> HostileResult:
    """Send one hostile request exactly as written (no re-quoting of the target)."""
    prepared = requests.Request(
        request.method, base_url + "/", headers=dict(request.headers), data=request.body
    ).prepare()
    prepared.url = base_url + request.target
    started = time.monotonic()
    try:
        response = session.send(prepared, timeout=30)
        status = response.status_code
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    except requests.RequestException:
        status, content_type = 0, ""
    return HostileResult(request, status, content_type, time.monotonic() - started)
