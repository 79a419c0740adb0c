"""Rows to JSON-ready dicts. Rows arrive as tuples in `query.MOVIE_COLUMNS` order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

IMDB_TITLE_URL = "https://www.imdb.com/title/{}/"


def imdb_url(movie_id: str, source: str, imdb_id: str | None) -> str | None:
    """The movie's IMDb page: its own id for IMDb movies, the `imdb_id` given for user ones."""
    tconst = movie_id if source == "imdb" else imdb_id
    return IMDB_TITLE_URL.format(tconst) if tconst else None


def movie_json(row: Sequence[Any]) -> dict[str, Any]:
    """One movie as the API shows it."""
    (
        movie_id,
        source,
        title,
        original_title,
        year,
        genres,
        rating,
        votes,
        runtime_minutes,
        is_adult,
        imdb_id,
        score,
    ) = row
    return {
        "id": movie_id,
        "title": title,
        "original_title": original_title,
        "year": year,
        "genres": genres,
        "rating": None if rating is None else float(rating),
        "votes": votes,
        "runtime_minutes": runtime_minutes,
        "is_adult": is_adult,
        "imdb_url": imdb_url(movie_id, source, imdb_id),
        "source": source,
        "score": None if score is None else float(score),
    }


def facets_json(counts: dict[str, list[tuple[Any, int]]]) -> dict[str, list[dict[str, Any]]]:
    """Facet counts as the API shows them: genre → {name, count}, decade → {decade, count}."""
    key = {"genre": "name", "decade": "decade"}
    return {
        facet: [{key[facet]: value, "count": count} for value, count in pairs]
        for facet, pairs in counts.items()
    }


def dataset_json(row: Any) -> dict[str, Any]:
    """The latest dataset_load row."""

    def instant(value: Any) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "loaded_at": instant(row.loaded_at),
        "source": row.source,
        "basics_last_modified": instant(row.basics_last_modified),
        "ratings_last_modified": instant(row.ratings_last_modified),
        "rows_read": row.rows_read,
        "movies": row.movies,
        "rated_movies": row.rated_movies,
        "genre_links": row.genre_links,
        "skipped_rows": row.skipped_rows,
        "seconds": float(row.seconds),
        "mean_rating": row.mean_rating,
    }
