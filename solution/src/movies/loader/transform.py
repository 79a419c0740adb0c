"""Pure transformations: IMDb string batches → validated movie and rating tables → COPY CSV.

Validation is vectorised (Arrow compute). A movie row whose value cannot be converted is skipped
and counted with the first reason that applies; nothing is guessed or clamped.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from movies.loader.report import LoadReport
from movies.score import MIN_VOTES, SCALE
from movies.tables import GENRE_BITS

TCONST = r"^tt[0-9]{7,}$"
YEAR = r"^[0-9]{1,4}$"  # smallint
COUNT = r"^[0-9]{1,9}$"  # fits integer
RATING = r"^(10(\.0)?|[0-9](\.[0-9])?)$"  # numeric(3, 1), IMDb's 1.0 .. 10.0
GENRES = r"^[^,]+(,[^,]+)*$"  # comma-separated, no empty names

MOVIE_FIELDS = (
    "tconst",
    "primaryTitle",
    "originalTitle",
    "isAdult",
    "startYear",
    "runtimeMinutes",
    "genres",
)
BASICS_USED = (
    "tconst",
    "titleType",
    "primaryTitle",
    "originalTitle",
    "isAdult",
    "startYear",
    "runtimeMinutes",
    "genres",
)
MOVIE_COLUMNS = (
    "id",
    "source",
    "title",
    "original_title",
    "search_title",
    "search_original",
    "year",
    "runtime_minutes",
    "rating",
    "votes",
    "is_adult",
    "genres",
    "score",
)
COPY_ROWS = 65_536


def _flat(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _valid(values: pa.ChunkedArray | pa.Array, pattern: str, *, nullable: bool) -> pa.Array:
    ok = pc.match_substring_regex(values, pattern)
    return pc.fill_null(ok, nullable)


def _keep_valid(
    table: pa.Table, checks: list[tuple[str, pa.Array]], report: LoadReport
) -> pa.Table:
    """Drop rows failing a check; count each under the first failing check's reason."""
    remaining = pa.repeat(pa.scalar(True), table.num_rows)
    for reason, ok in checks:
        bad = pc.and_(remaining, pc.invert(ok))
        report.skip(reason, pc.sum(bad).as_py() or 0)
        remaining = pc.and_(remaining, ok)
    return table.filter(remaining)


def select_movies(table: pa.Table | pa.RecordBatch, report: LoadReport) -> pa.Table:
    """The valid movie rows of basics rows (titleType == "movie"), other rows dropped.

    Skipped (and counted in `report`): a malformed tconst, a missing primaryTitle, an isAdult
    other than 0/1 (`\\N` reads as not adult), a startYear or runtimeMinutes that is not a whole
    number, an empty genre name.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    table = table.filter(pc.equal(table["titleType"], "movie"), null_selection_behavior="drop")
    is_flag = pc.is_in(table["isAdult"], pa.array(["0", "1"]))
    checks = [
        ("basics: bad tconst", _valid(table["tconst"], TCONST, nullable=False)),
        ("basics: missing primaryTitle", pc.is_valid(table["primaryTitle"])),
        ("basics: bad isAdult", pc.or_(pc.is_null(table["isAdult"]), is_flag)),
        ("basics: bad startYear", _valid(table["startYear"], YEAR, nullable=True)),
        ("basics: bad runtimeMinutes", _valid(table["runtimeMinutes"], COUNT, nullable=True)),
        ("basics: bad genres", _valid(table["genres"], GENRES, nullable=True)),
    ]
    checks = [(reason, _flat(ok)) for reason, ok in checks]
    return _keep_valid(table, checks, report).select(list(MOVIE_FIELDS))


def select_ratings(table: pa.Table | pa.RecordBatch, report: LoadReport) -> pa.Table:
    """The valid ratings rows; a bad tconst, rating or vote count is skipped and counted."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    checks = [
        ("ratings: bad tconst", _valid(table["tconst"], TCONST, nullable=False)),
        ("ratings: bad averageRating", _valid(table["averageRating"], RATING, nullable=False)),
        ("ratings: bad numVotes", _valid(table["numVotes"], COUNT, nullable=False)),
    ]
    checks = [(reason, _flat(ok)) for reason, ok in checks]
    return _keep_valid(table, checks, report)


def drop_duplicates(table: pa.Table, reason: str, report: LoadReport) -> pa.Table:
    """Keep the first row of each tconst (file order); count the others as skipped."""
    ids = table["tconst"]
    if table.num_rows < 2 or _strictly_ascending(ids):
        return table
    # index_in finds the first occurrence: a row is kept when that is the row itself.
    first = pc.index_in(ids, value_set=ids.combine_chunks())
    keep = pc.equal(first, pa.array(np.arange(table.num_rows, dtype=np.int32)))
    kept = table.filter(keep)
    report.skip(reason, table.num_rows - kept.num_rows)
    return kept


def _strictly_ascending(ids: pa.ChunkedArray | pa.Array) -> bool:
    """True if the tconsts ascend numerically (IMDb's order), which rules out duplicates cheaply.

    Valid tconsts are "tt" and digits, so numeric order is (length, text) order.
    """
    ids = _flat(ids)
    lengths = pc.binary_length(ids)
    before, after = ids.slice(0, len(ids) - 1), ids.slice(1)
    len_before, len_after = lengths.slice(0, len(ids) - 1), lengths.slice(1)
    ascending = pc.or_(
        pc.less(len_before, len_after),
        pc.and_(pc.equal(len_before, len_after), pc.less(before, after)),
    )
    return pc.all(ascending).as_py() is True


def join_ratings(movies: pa.Table, ratings: pa.Table, report: LoadReport) -> pa.Table:
    """Left-join ratings (tconst unique) onto movies: unrated movies keep NULL; count orphans."""
    position = pc.index_in(movies["tconst"], value_set=ratings["tconst"].combine_chunks())
    joined = movies.append_column(
        "averageRating", pc.take(ratings["averageRating"], position)
    ).append_column("numVotes", pc.take(ratings["numVotes"], position))
    report.movies = joined.num_rows
    report.rated_movies = joined.num_rows - position.null_count
    report.ratings_without_movie = ratings.num_rows - report.rated_movies
    return joined


# Titles of ASCII letters and digits separated by single spaces fold to themselves in lower
# case (two thirds of them): a cheap match spares them the costly regex replacement.
ALREADY_FOLDED = r"^[A-Za-z0-9]{1,200}( [A-Za-z0-9]{1,200})*$"
LONG_WORD = r"([^ ]{200})[^ ]+"  # movies.search.MAX_WORD


def fold_titles(titles: pa.ChunkedArray | pa.Array) -> pa.Array:
    """`movies.search.fold` of every title, vectorised (the same steps; NULL stays NULL)."""
    titles = _flat(titles)
    simple = pc.fill_null(pc.match_substring_regex(titles, ALREADY_FOLDED), False)
    others = pc.invert(simple)
    folded = pc.utf8_normalize(titles.filter(others), "NFKD")
    folded = pc.replace_substring_regex(folded, r"\p{Mn}+", "")
    folded = pc.replace_substring_regex(folded, r"[^\p{L}\p{N}]+", " ")
    folded = pc.replace_substring(pc.utf8_lower(folded), "ς", "σ")
    folded = pc.replace_substring_regex(pc.utf8_trim(folded, " "), LONG_WORD, r"\1")
    return pc.replace_with_mask(pc.ascii_lower(titles), others, folded)


def search_folds(
    titles: pa.ChunkedArray | pa.Array, originals: pa.ChunkedArray | pa.Array
) -> dict[str, pa.Array]:
    """The `search_title` and `search_original` columns (`movies.search.fold_titles`).

    Most original titles equal the title: only the others are folded.
    """
    title = fold_titles(titles)
    originals = _flat(originals)
    differs = pc.fill_null(pc.not_equal(originals, _flat(titles)), False)
    blank = pa.repeat(pa.scalar(""), len(originals))
    original = pc.replace_with_mask(blank, differs, fold_titles(originals.filter(differs)))
    return {
        "search_title": title,
        "search_original": pc.if_else(pc.equal(original, title), "", original),
    }


def _array_literal(genres: pa.ChunkedArray) -> pa.ChunkedArray:
    """ "A,B" → '{"A","B"}' (a PostgreSQL text[] literal, every element quoted); NULL → '{}'."""
    escaped = pc.replace_substring(genres, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    quoted = pc.replace_substring(escaped, ",", '","')
    literal = pc.binary_join_element_wise('{"', quoted, '"}', "")
    return pc.fill_null(literal, "{}")


def mean_rating(joined: pa.Table) -> float | None:
    """C of the weighted rating: the mean rating of the rated movies (None if none is rated)."""
    return pc.mean(pc.cast(joined["averageRating"], pa.float64())).as_py()


def weighted_ratings(joined: pa.Table, mean: float | None) -> pa.Array:
    """Every movie's score (`movies.score`) as text with SCALE decimals; NULL when unrated."""
    rating = pc.cast(_flat(joined["averageRating"]), pa.float64())
    if mean is None:
        return pa.nulls(joined.num_rows, pa.string())
    votes = pc.fill_null(pc.cast(_flat(joined["numVotes"]), pa.float64()), 0.0)
    score = pc.divide(
        pc.add(pc.multiply(votes, rating), MIN_VOTES * mean), pc.add(votes, float(MIN_VOTES))
    )
    return pc.cast(pc.round(score, SCALE), pa.string())


def to_movie_rows(joined: pa.Table, mean: float | None = None) -> pa.Table:
    """The joined table in the column order and text form of `movie` for COPY ... CSV.

    `mean` is C of the weighted rating (`mean_rating`); without it every score is NULL.
    """
    n = joined.num_rows
    adult = pc.if_else(pc.fill_null(pc.equal(joined["isAdult"], "1"), False), "t", "f")
    return pa.table(
        {
            "id": joined["tconst"],
            "source": pa.repeat(pa.scalar("imdb"), n),
            "title": joined["primaryTitle"],
            "original_title": joined["originalTitle"],
            **search_folds(joined["primaryTitle"], joined["originalTitle"]),
            "year": joined["startYear"],
            "runtime_minutes": joined["runtimeMinutes"],
            "rating": joined["averageRating"],
            "votes": joined["numVotes"],
            "is_adult": adult,
            "genres": _array_literal(joined["genres"]),
            "score": weighted_ratings(joined, mean),
        }
    )


def movie_csv_chunks(
    joined: pa.Table, mean: float | None = None, rows: int = COPY_ROWS
) -> Iterator[bytes]:
    """`to_movie_rows` as COPY CSV, `rows` movies at a time.

    Each slice is converted when its turn comes, so the conversion (the search folds, the
    scores) can overlap the database's work on the previous slice, and never holds a second copy
    of the whole table.
    """
    for start in range(0, joined.num_rows, rows):
        yield from csv_chunks(to_movie_rows(joined.slice(start, rows), mean), rows)


def genre_names(movies: pa.Table) -> list[str]:
    """Every distinct genre name used by `movies` (raw "A,B" lists), sorted."""
    names = pc.list_flatten(_flat(pc.split_pattern(movies["genres"], ",")))
    return sorted(pc.unique(names).to_pylist())


def rarest_genre_first(movies: pa.Table) -> pa.Table:
    """`movies` grouped by their rarest genre (the least common of their genres in `movies`),
    rarest groups first, movies without genres last, each group in its former order.

    The rows are written in this order, so the movies of a rare genre are neighbours on disk: a
    page of Film-Noir reads its 759 movies from 18 table pages rather than from one page each
    (0.5 ms instead of 2.7). No other read has an order to lose: the sort indexes and the
    primary key already point all over the table.
    """
    lists = _flat(pc.split_pattern(movies["genres"], ","))
    names = pc.list_flatten(lists)
    if not len(names):
        return movies
    counted = pc.value_counts(names).flatten()
    by_rarity = sorted(zip(counted[1].to_pylist(), counted[0].to_pylist(), strict=True))
    ranked = pa.array([name for _, name in by_rarity], pa.string())
    ranks = pc.index_in(names, value_set=ranked).to_numpy()
    rarest = np.full(movies.num_rows, len(ranked), np.int64)
    np.minimum.at(rarest, pc.list_parent_indices(lists).to_numpy(), ranks)
    return movies.take(pa.array(np.argsort(rarest, kind="stable")))


def genre_links(movies: pa.Table, genre_ids: dict[str, int]) -> pa.Table:
    """The (movie_id, source, genre_id, year, rating, genre_bits) rows for `movie_genre`, one per
    distinct movie-genre pair (year, rating and the bits of all its genres are the movie's, for
    the genre-year way of movies.query.genres).

    `genre_ids` must hold every name in `movies`; a name repeated in one list links once.
    """
    lists = _flat(pc.split_pattern(movies["genres"], ","))
    names = pc.list_flatten(lists)
    rows = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    vocabulary = pa.array(list(genre_ids), pa.string())
    numbers = pa.array(list(genre_ids.values()), pa.int64())
    ids = pc.take(numbers, pc.index_in(names, value_set=vocabulary))
    if ids.null_count:
        raise ValueError("a genre name has no id")
    # One sortable key per pair: sorting orders the links by movie row, and a key equal to the
    # one before it is a repeat. (np.unique does the same 60 times slower: NumPy 2.4 hashes.)
    keys = np.sort(rows * 65_536 + ids.to_numpy())
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
    link_rows, link_ids = keys // 65_536, keys % 65_536
    movie_rows = pa.array(link_rows)
    return pa.table(
        {
            "movie_id": pc.take(movies["tconst"], movie_rows),
            "source": pa.repeat(pa.scalar("imdb"), len(keys)),
            "genre_id": pa.array(link_ids),
            "year": pc.take(movies["startYear"], movie_rows),
            "rating": pc.take(movies["averageRating"], movie_rows),
            "genre_bits": pa.array(_genre_bits(link_rows, link_ids)),
        }
    )


def _genre_bits(link_rows: np.ndarray, link_ids: np.ndarray) -> np.ndarray:
    """Per link, the bits of all its movie's genres (links ordered by movie, each pair once)."""
    if not len(link_rows):
        return np.zeros(0, np.int64)
    shifts = np.minimum(link_ids, GENRE_BITS - 1)  # in range for every id; the others get 0
    bits = np.where(link_ids < GENRE_BITS, np.left_shift(1, shifts), 0)
    # Distinct powers of two: their sum per movie is their OR.
    starts = np.flatnonzero(np.concatenate(([True], link_rows[1:] != link_rows[:-1])))
    per_movie = np.add.reduceat(bits, starts)
    return np.repeat(per_movie, np.diff(np.append(starts, len(link_rows))))


def genre_sizes(links: pa.Table) -> dict[int, int]:
    """The number of movies of each genre id in `genre_links` rows."""
    counts = pc.value_counts(links["genre_id"]).flatten()
    return dict(zip(counts[0].to_pylist(), counts[1].to_pylist(), strict=True))


def csv_chunks(table: pa.Table, rows: int = COPY_ROWS) -> Iterator[bytes]:
    """`table` as CSV for COPY ... (FORMAT csv): strings always quoted, NULL as an empty field.

    Quoting every string keeps "" (an empty title) distinct from NULL, and CSV needs no escaping
    of backslashes, so titles round-trip byte for byte.
    """
    options = pcsv.WriteOptions(include_header=False, quoting_style="needed")
    for start in range(0, table.num_rows, rows):
        sink = io.BytesIO()
        pcsv.write_csv(table.slice(start, rows), sink, options)
        yield sink.getvalue()
