"""Request parsing and validation: query strings and JSON bodies become validated values.

Every problem is reported as a ValidationError naming the parameter (or body field) and what
is allowed; nothing here touches the database except through the `resolve_genres` callable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.datastructures import MultiDict

from movies import query as q
from movies.cursor import CursorError, decode_cursor
from movies.errors import ValidationError
from movies.search import SearchError, parse_search

# names -> (canonical names of the known ones, the unknown ones, the whole vocabulary)
ResolveGenres = Callable[[Iterable[str]], tuple[list[str], list[str], list[str]]]

COUNT_MODES = ("exact", "estimate")
FACETS = ("genre", "decade")
GENRE_PARAMS = ("genre", "genre_any", "genre_not")
LIST_PARAMS = frozenset(
    {*GENRE_PARAMS, "q", "facets", "sort", "limit", "cursor", "count", "include_adult", *q.FILTERS}
)
_INTEGER = re.compile(r"-?[0-9]{1,12}")
_DECIMAL = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,4})?")
_BOOLEANS = {"true": True, "false": False}
# A tconst, or a user id: "um" and the number, 7 digits zero-padded or up to 19 unpadded (bigint).
MOVIE_ID = re.compile(r"tt[0-9]{7,12}|um([0-9]{7}|[1-9][0-9]{7,18})")
IMDB_ID = re.compile(r"tt[0-9]{7,9}")

MAX_TITLE = 500
MAX_BODY_GENRES = 3
MIN_YEAR, MAX_YEAR = 1870, 2100
MAX_INT = 2_147_483_647


@dataclass(frozen=True)
class ListRequest:
    """A validated GET /movies request."""

    query: q.MovieQuery
    after: q.Keyset | None
    count: str | None
    facets: tuple[str, ...] = ()


def _error(param: str, message: str) -> dict[str, str]:
    return {"param": param, "message": message}


def _single_values(args: MultiDict[str, str], errors: list[dict[str, str]]) -> dict[str, str]:
    unknown = sorted(set(args) - LIST_PARAMS)
    if unknown:
        allowed = ", ".join(sorted(LIST_PARAMS))
        for name in unknown:
            errors.append(_error(name, f"unknown parameter; allowed parameters: {allowed}"))
    values: dict[str, str] = {}
    for name in LIST_PARAMS & set(args):
        given = args.getlist(name)
        if len(given) > 1:
            errors.append(_error(name, "given more than once; give it once"))
        else:
            values[name] = given[0]
    return values


def _parse_number(name: str, raw: str, spec: q.RangeFilter) -> int | Decimal:
    pattern = _INTEGER if spec.kind is int else _DECIMAL
    noun = "an integer" if spec.kind is int else "a number"
    if len(raw) > 32 or not pattern.fullmatch(raw):
        raise ValueError(f"must be {noun} between {spec.minimum} and {spec.maximum}, got {raw!r}")
    value = spec.kind(raw)
    if not spec.minimum <= value <= spec.maximum:
        raise ValueError(f"must be between {spec.minimum} and {spec.maximum}, got {raw}")
    if spec.kind is Decimal:
        value = value.normalize() if value else Decimal(0)
    return value


def parse_list_args(
    args: MultiDict[str, str], resolve_genres: ResolveGenres, secret: str
) -> ListRequest:
    """Validate the query string of GET /movies.

    :raise ValidationError: listing every bad, unknown or repeated parameter.
    """
    errors: list[dict[str, str]] = []
    values = _single_values(args, errors)

    genres, genres_any, genres_not = (
        _parse_genres(name, values.get(name), resolve_genres, errors) for name in GENRE_PARAMS
    )

    search = None
    if "q" in values:
        try:
            search = parse_search(values["q"])
        except SearchError as exc:
            errors.append(_error("q", str(exc)))

    facets: tuple[str, ...] = ()
    if "facets" in values:
        names = values["facets"].split(",")
        bad = [name for name in names if name not in FACETS]
        if bad:
            errors.append(
                _error("facets", f"unknown facet(s) {', '.join(map(repr, bad))}; use {FACETS}")
            )
        facets = tuple(name for name in FACETS if name in names)

    ranges: list[tuple[str, int | Decimal]] = []
    for name in sorted(q.FILTERS.keys() & values.keys()):
        try:
            ranges.append((name, _parse_number(name, values[name], q.FILTERS[name])))
        except ValueError as exc:
            errors.append(_error(name, str(exc)))

    include_adult = False
    if "include_adult" in values:
        raw = values["include_adult"].lower()
        if raw not in _BOOLEANS:
            errors.append(_error("include_adult", "must be true or false"))
        else:
            include_adult = _BOOLEANS[raw]

    sort = q.RELEVANCE if "q" in values else q.DEFAULT_SORT
    if values.get("sort") == "relevance":
        if "q" not in values:
            errors.append(_error("sort", "sort=relevance needs a search text in q"))
    elif "sort" in values:
        try:
            sort = q.parse_sort(values["sort"])
        except q.QueryError as exc:
            errors.append(_error("sort", str(exc)))

    limit = q.DEFAULT_LIMIT
    if "limit" in values:
        raw = values["limit"]
        if not _INTEGER.fullmatch(raw) or not 1 <= int(raw) <= q.MAX_LIMIT:
            errors.append(
                _error("limit", f"must be an integer from 1 to {q.MAX_LIMIT}, got {raw!r}")
            )
        else:
            limit = int(raw)

    count = values.get("count")
    if count is not None and count not in COUNT_MODES:
        errors.append(_error("count", f"must be one of {', '.join(COUNT_MODES)}, got {count!r}"))

    if errors:
        raise ValidationError(errors)

    query = q.MovieQuery(
        genres=genres,
        ranges=tuple(ranges),
        include_adult=include_adult,
        sort=sort,
        limit=limit,
        genres_any=genres_any,
        genres_not=genres_not,
        search=search,
    )
    after = None
    if "cursor" in values:
        try:
            raw_values, movie_id = decode_cursor(values["cursor"], query.fingerprint(), secret)
            after = q.keyset_from_json(query.sort, raw_values, movie_id)
        except (CursorError, q.QueryError) as exc:
            raise ValidationError([_error("cursor", str(exc))]) from None
    return ListRequest(query, after, count, facets)


EXPORT_FORMATS = ("ndjson", "csv")
EXPORT_PARAMS = (LIST_PARAMS - {"limit", "cursor", "count", "facets"}) | {"format"}


@dataclass(frozen=True)
class ExportRequest:
    """A validated GET /movies/export request: the filters and sort of a list, and a format."""

    query: q.MovieQuery
    format: str


def parse_export_args(
    args: MultiDict[str, str], resolve_genres: ResolveGenres, secret: str
) -> ExportRequest:
    """Validate the query string of GET /movies/export: GET /movies' filters and sort, plus
    `format` (ndjson by default); no limit, cursor, count or facets.

    :raise ValidationError: listing every bad, unknown or repeated parameter.
    """
    errors: list[dict[str, str]] = []
    allowed = ", ".join(sorted(EXPORT_PARAMS))
    for name in sorted(set(args) - EXPORT_PARAMS):
        errors.append(_error(name, f"unknown parameter; allowed parameters: {allowed}"))
    export_format = "ndjson"
    given = args.getlist("format")
    if len(given) > 1:
        errors.append(_error("format", "given more than once; give it once"))
    elif given and given[0] not in EXPORT_FORMATS:
        errors.append(
            _error("format", f"must be one of {', '.join(EXPORT_FORMATS)}, got {given[0]!r}")
        )
    elif given:
        export_format = given[0]
    list_args = MultiDict(
        [(name, value) for name, value in args.items(multi=True) if name in EXPORT_PARAMS]
    )
    list_args.pop("format", None)
    try:
        query = parse_list_args(list_args, resolve_genres, secret).query
    except ValidationError as exc:
        errors.extend(exc.errors or [])
    if errors:
        raise ValidationError(errors)
    return ExportRequest(query, export_format)


def _parse_genres(
    param: str, raw: str | None, resolve_genres: ResolveGenres, errors: list[dict[str, str]]
) -> tuple[str, ...]:
    """Canonical, sorted, distinct genre names of a comma-separated parameter (case-insensitive)."""
    if raw is None:
        return ()
    names = [name.strip() for name in raw.split(",")]
    if not all(names):
        errors.append(_error(param, f"empty genre name; use {param}=Action,Thriller"))
        return ()
    known, unknown, vocabulary = resolve_genres(names)
    if unknown:
        valid = ", ".join(vocabulary)
        errors.append(_error(param, f"unknown genre(s) {', '.join(unknown)}; valid: {valid}"))
    return tuple(sorted(set(known)))


# Body field -> (JSON types accepted, whether null is allowed). bool is not an int here.
MOVIE_FIELDS = (
    "title",
    "original_title",
    "year",
    "genres",
    "rating",
    "votes",
    "runtime_minutes",
    "is_adult",
    "imdb_id",
)


def _is_int(value: Any) -> bool:
    return type(value) is int


def _check_text(name: str, value: Any, errors: list[dict[str, str]]) -> str | None:
    if not isinstance(value, str):
        errors.append(_error(name, "must be a string"))
        return None
    if "\x00" in value:
        errors.append(_error(name, "must not contain NUL characters"))
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        errors.append(_error(name, "must be valid Unicode (no lone surrogates)"))
        return None
    if not value.strip():
        errors.append(_error(name, "must not be blank"))
        return None
    if len(value) > MAX_TITLE:
        errors.append(_error(name, f"must be at most {MAX_TITLE} characters"))
        return None
    return value


def _check_int(
    name: str, value: Any, low: int, high: int, errors: list[dict[str, str]]
) -> int | None:
    if not _is_int(value):
        errors.append(_error(name, f"must be an integer from {low} to {high}"))
        return None
    if not low <= value <= high:
        errors.append(_error(name, f"must be from {low} to {high}, got {value}"))
        return None
    return value


def _check_rating(value: Any, errors: list[dict[str, str]]) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(_error("rating", "must be a number from 1.0 to 10.0"))
        return None
    try:
        rating = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        errors.append(_error("rating", "must be a number from 1.0 to 10.0"))
        return None
    if not rating.is_finite() or not Decimal(1) <= rating <= Decimal(10):
        errors.append(_error("rating", f"must be from 1.0 to 10.0, got {value}"))
        return None
    if rating != rating.quantize(Decimal("0.1")):
        errors.append(_error("rating", f"must have at most one decimal, got {value}"))
        return None
    return rating.quantize(Decimal("0.1"))


def _check_genres(
    value: Any, resolve_genres: ResolveGenres, errors: list[dict[str, str]]
) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(_error("genres", "must be a list of genre names"))
        return None
    if len(value) > MAX_BODY_GENRES:
        errors.append(_error("genres", f"at most {MAX_BODY_GENRES} genres, got {len(value)}"))
        return None
    known, unknown, vocabulary = resolve_genres(value)
    if unknown:
        errors.append(
            _error(
                "genres", f"unknown genre(s) {', '.join(unknown)}; valid: {', '.join(vocabulary)}"
            )
        )
        return None
    if len(set(known)) != len(known):
        errors.append(_error("genres", "a genre appears more than once"))
        return None
    return sorted(known)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be one JSON object.

    :raise ValidationError: if the body is not UTF-8 JSON or not an object.
    """
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValidationError([_error("body", f"invalid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise ValidationError([_error("body", "must be a JSON object")])
    return data


def parse_new_movie(data: dict[str, Any], resolve_genres: ResolveGenres) -> dict[str, Any]:
    """Validate a POST /movies body; return movie_user column values.

    :raise ValidationError: naming every unknown, missing or invalid field.
    """
    errors: list[dict[str, str]] = []
    unknown = sorted(set(data) - set(MOVIE_FIELDS))
    for name in unknown:
        errors.append(_error(name, f"unknown field; allowed fields: {', '.join(MOVIE_FIELDS)}"))
    fields: dict[str, Any] = {}
    if data.get("title") is None:
        errors.append(_error("title", "is required"))
    else:
        fields["title"] = _check_text("title", data["title"], errors)
    checks: dict[str, Callable[[Any], Any]] = {
        "original_title": lambda v: _check_text("original_title", v, errors),
        "year": lambda v: _check_int("year", v, MIN_YEAR, MAX_YEAR, errors),
        "genres": lambda v: _check_genres(v, resolve_genres, errors),
        "rating": lambda v: _check_rating(v, errors),
        "votes": lambda v: _check_int("votes", v, 0, MAX_INT, errors),
        "runtime_minutes": lambda v: _check_int("runtime_minutes", v, 1, MAX_INT, errors),
        "is_adult": lambda v: (
            v if isinstance(v, bool) else errors.append(_error("is_adult", "must be true or false"))
        ),
        "imdb_id": lambda v: (
            v
            if isinstance(v, str) and IMDB_ID.fullmatch(v)
            else errors.append(_error("imdb_id", "must look like tt0111161 (tt and 7 to 9 digits)"))
        ),
    }
    for name, check in checks.items():
        if data.get(name) is not None:
            fields[name] = check(data[name])
    if errors:
        raise ValidationError(errors)
    return fields
