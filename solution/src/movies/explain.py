"""Why is this request slow: the SQL a GET /movies request runs, as sent, and its plan with
timing. The library side of `movies explain`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from movies import query as q
from movies.api.params import parse_list_args
from movies.errors import ValidationError
from movies.prepared import explain
from movies.repository import GenreVocabulary, page_sql

PLAN_OPTIONS = "ANALYZE, BUFFERS"


class ExplainError(ValueError):
    """A URL `movies explain` cannot explain (not a list request, or bad parameters)."""


@dataclass(frozen=True)
class Explained:
    """One statement of a request: what it is, its text as prepared, its parameters, its plan."""

    label: str
    text: str
    parameters: list
    plan: list[str]

    def lines(self) -> Iterator[str]:
        yield f"-- {self.label}"
        yield self.text
        for number, value in enumerate(self.parameters, 1):
            yield f"-- ${number} = {value!r}"
        yield f"-- plan (EXPLAIN {PLAN_OPTIONS})"
        yield from self.plan


def explain_url(conn: sa.Connection, url: str, secret: str) -> list[Explained]:
    """The statements GET `url` runs (the page; the count and facets when asked for), each
    prepared as the API prepares it and run under EXPLAIN ANALYZE.

    :raise ExplainError: for a URL other than /movies, or parameters the API would reject.
    """
    parts = urlsplit(url)
    if parts.path.rstrip("/") != "/movies":
        raise ExplainError(f"only GET /movies requests can be explained, got path {parts.path!r}")
    args = MultiDict(parse_qsl(parts.query, keep_blank_values=True))
    vocabulary = GenreVocabulary()
    try:
        parsed = parse_list_args(args, partial(vocabulary.resolve, conn), secret)
    except ValidationError as exc:
        raise ExplainError(str(exc)) from None
    statements = [("page", page_sql(conn, parsed.query, parsed.after, vocabulary))]
    if parsed.count == "exact":
        statements.append(("count=exact", q.count_sql(parsed.query)))
    statements += [(f"facet {name}", q.facet_sql(parsed.query, name)) for name in parsed.facets]
    return [_explained(conn, label, sql) for label, sql in statements]


def _explained(conn: sa.Connection, label: str, sql: q.Sql) -> Explained:
    text, parameters, plan = explain(conn, sql, PLAN_OPTIONS)
    if sql.bound:
        label += ": prepared; $n are the values that change from page to page"
    return Explained(label, text, parameters, plan)
