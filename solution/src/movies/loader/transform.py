"""Pure transformations on pandas DataFrames: IMDb's raw fields → valid movies and ratings →
the joined movie table and its genre links → COPY CSV.

Every column is Arrow-backed (`pd.ArrowDtype`), so each step is a pandas operation run by Arrow's
compute kernels, without NumPy object arrays. A row whose value cannot be stored is skipped and
counted with the first reason that applies; nothing is guessed or clamped.

The stages, in load order: `movie_rows` (titleType "movie"), `decode_text` (bytes PostgreSQL's
text type refuses), `select_movies` / `select_ratings` (validation), `drop_duplicates`,
`join_ratings` (the merge), `rarest_genre_first` (the write order), then for the COPY the derived
columns of `to_movie_rows` (search folds, score, genre array) and `genre_links`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from movies.loader.report import LoadReport
from movies.score import MIN_VOTES, SCALE
from movies.tables import GENRE_BITS

TEXT = pd.ArrowDtype(pa.string())
NUMBER = pd.ArrowDtype(pa.float64())
GENRE_ID = pd.ArrowDtype(pa.int64())

TCONST = r"tt[0-9]{7,}"
YEAR = r"[0-9]{1,4}"  # smallint
COUNT = r"[0-9]{1,9}"  # fits integer
RATING = r"10(\.0)?|[0-9](\.[0-9])?"  # numeric(3, 1), IMDb's 1.0 .. 10.0
GENRES = r"[^,]+(,[^,]+)*"  # comma-separated, no empty names

MOVIE_FIELDS = (
    "tconst",
    "primaryTitle",
    "originalTitle",
    "isAdult",
    "startYear",
    "runtimeMinutes",
    "genres",
)
BASICS_USED = ("titleType", *MOVIE_FIELDS)
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
LINK_COLUMNS = (
    "movie_id",
    "source",
    "genre_id",
    "year",
    "rating",
    "genre_bits",
    "votes",
    "runtime_minutes",
)
RENAMED = {
    "tconst": "id",
    "primaryTitle": "title",
    "originalTitle": "original_title",
    "startYear": "year",
    "runtimeMinutes": "runtime_minutes",
    "averageRating": "rating",
    "numVotes": "votes",
}
KEY_BASE = 65_536  # above every genre id (smallint)
COPY_ROWS = 65_536


def movie_rows(basics: pd.DataFrame) -> pd.DataFrame:
    """The rows of a raw basics frame whose titleType is "movie", without that column."""
    is_movie = (basics["titleType"] == b"movie").to_numpy(bool, na_value=False)
    return basics[is_movie].drop(columns="titleType")


def decode_text(frame: pd.DataFrame, reason: str, report: LoadReport) -> pd.DataFrame:
    """`frame` (raw bytes) as UTF-8 text, less the rows PostgreSQL's text type would refuse:
    a field that is not UTF-8, or that holds a NUL. Those are skipped and counted as `reason`.

    One such byte would otherwise fail the whole COPY, and with it the load.
    """
    try:
        text = frame.astype(TEXT)
    except pa.ArrowInvalid:  # a field is not UTF-8 (rare): find its rows one value at a time
        utf8 = np.ones(len(frame), bool)
        for name in frame.columns:
            utf8 &= frame[name].map(_is_utf8, na_action="ignore").to_numpy(bool, na_value=True)
        text = frame[utf8].astype(TEXT)
    nul = np.zeros(len(text), bool)
    for name in text.columns:
        in_column = text[name].str.contains("\x00", regex=False)
        if in_column.any():  # rare: the mask is built only then
            nul |= in_column.to_numpy(bool, na_value=False)
    report.skip(reason, len(frame) - len(text) + int(nul.sum()))
    return text[~nul] if nul.any() else text


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _matches(values: pd.Series, pattern: str, *, nullable: bool) -> np.ndarray:
    """Whether each value matches `pattern` in full (NULL: `nullable`), as a NumPy mask."""
    return values.str.fullmatch(pattern).to_numpy(bool, na_value=nullable)


def _keep_valid(
    frame: pd.DataFrame, checks: list[tuple[str, np.ndarray]], report: LoadReport
) -> pd.DataFrame:
    """Drop rows failing a check; count each under the first failing check's reason."""
    remaining = np.ones(len(frame), bool)
    for reason, ok in checks:
        report.skip(reason, int(np.count_nonzero(remaining & ~ok)))
        remaining &= ok
    return frame if remaining.all() else frame[remaining]


def select_movies(movies: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """The valid rows of decoded movie rows (`movie_rows`, `decode_text`).

    Skipped (and counted in `report`): a malformed tconst, a missing primaryTitle, an isAdult
    other than 0/1 (`\\N` reads as not adult), a startYear or runtimeMinutes that is not a whole
    number, an empty genre name.
    """
    checks = [
        ("basics: bad tconst", _matches(movies["tconst"], TCONST, nullable=False)),
        ("basics: missing primaryTitle", movies["primaryTitle"].notna().to_numpy(bool)),
        ("basics: bad isAdult", _matches(movies["isAdult"], "[01]", nullable=True)),
        ("basics: bad startYear", _matches(movies["startYear"], YEAR, nullable=True)),
        ("basics: bad runtimeMinutes", _matches(movies["runtimeMinutes"], COUNT, nullable=True)),
        ("basics: bad genres", _matches(movies["genres"], GENRES, nullable=True)),
    ]
    return _keep_valid(movies, checks, report)[list(MOVIE_FIELDS)]


def select_ratings(ratings: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """The valid decoded ratings rows; a bad tconst, rating or vote count is skipped and counted."""
    checks = [
        ("ratings: bad tconst", _matches(ratings["tconst"], TCONST, nullable=False)),
        ("ratings: bad averageRating", _matches(ratings["averageRating"], RATING, nullable=False)),
        ("ratings: bad numVotes", _matches(ratings["numVotes"], COUNT, nullable=False)),
    ]
    return _keep_valid(ratings, checks, report)


def drop_duplicates(frame: pd.DataFrame, reason: str, report: LoadReport) -> pd.DataFrame:
    """Keep the first row of each tconst (file order); count the others as skipped."""
    if len(frame) < 2 or _strictly_ascending(frame["tconst"]):
        return frame
    kept = frame.drop_duplicates("tconst", keep="first", ignore_index=True)
    report.skip(reason, len(frame) - len(kept))
    return kept


def _strictly_ascending(ids: pd.Series) -> bool:
    """True if the tconsts ascend numerically (IMDb's order), which rules out duplicates cheaply
    (hashing 700,000 ids costs 0.4 s, this comparison of neighbours 0.02 s).

    Valid tconsts are "tt" and digits, so numeric order is (length, text) order.
    """
    ids = ids.reset_index(drop=True)
    lengths = ids.str.len()
    before, before_lengths = ids.shift(), lengths.shift()
    ascending = (before_lengths < lengths) | ((before_lengths == lengths) & (before < ids))
    return bool(ascending.iloc[1:].all())


def join_ratings(movies: pd.DataFrame, ratings: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """Left-join ratings (tconst unique) onto movies: unrated movies keep NULL; count orphans."""
    joined = movies.merge(ratings, on="tconst", how="left", sort=False)
    report.movies = len(joined)
    report.rated_movies = int(joined["averageRating"].notna().sum())
    report.ratings_without_movie = len(ratings) - report.rated_movies
    return joined


def genre_pairs(movies: pd.DataFrame) -> pd.DataFrame:
    """One (row, genre) row per genre name in each movie's "A,B" list (a repeated name too);
    `row` is the movie's position. Movies without genres have none."""
    names = movies["genres"].reset_index(drop=True).str.split(",").explode().dropna()
    return names.rename("genre").rename_axis("row").reset_index()


def genre_names(movies: pd.DataFrame) -> list[str]:
    """Every distinct genre name used by `movies` (raw "A,B" lists), sorted."""
    return sorted(genre_pairs(movies)["genre"].unique().tolist())


def rarest_genre_first(movies: pd.DataFrame) -> pd.DataFrame:
    """`movies` grouped by their rarest genre (the least common of their genres in `movies`),
    rarest groups first, movies without genres last, each group in its former order.

    The rows are written in this order, so the movies of a rare genre are neighbours on disk: a
    page of Film-Noir reads its 759 movies from 18 table pages rather than from one page each
    (0.5 ms instead of 2.7). No other read has an order to lose: the sort indexes and the
    primary key already point all over the table.
    """
    pairs = genre_pairs(movies)
    if pairs.empty:
        return movies
    codes, names = pd.factorize(pairs["genre"])
    sizes = pd.DataFrame({"genre": names, "movies": np.bincount(codes)})
    rank = np.argsort(sizes.sort_values(["movies", "genre"]).index.to_numpy())
    rarest = (
        pd.Series(rank[codes])
        .groupby(pairs["row"].to_numpy())
        .min()
        .reindex(range(len(movies)), fill_value=len(sizes))
    )
    return movies.iloc[np.argsort(rarest.to_numpy(), kind="stable")].reset_index(drop=True)


def genre_links(movies: pd.DataFrame, genre_ids: dict[str, int]) -> pd.DataFrame:
    """The rows for `movie_genre` (`LINK_COLUMNS`), one per distinct movie-genre pair, ordered
    by movie. Everything but the genre id is the movie's (the bits of all its genres, its year,
    rating, votes and runtime), for the genre-year way of movies.query.genres.

    `genre_ids` must hold every name in `movies`; a name repeated in one list links once.

    :raise ValueError: if a genre name has no id.
    """
    pairs = genre_pairs(movies)
    codes, names = pd.factorize(pairs["genre"])
    ids = pd.Series(names).map(genre_ids)
    if ids.isna().any():
        raise ValueError("a genre name has no id")
    # One number per pair, row first: dropping repeats and sorting one column costs half of
    # doing it on two (0.06 s against 0.14 for 1.15 M pairs).
    keys = pairs["row"] * KEY_BASE + ids.to_numpy(np.int64)[codes]
    keys = keys.drop_duplicates().sort_values(ignore_index=True)
    links = pd.DataFrame({"row": keys // KEY_BASE, "genre_id": keys % KEY_BASE})
    repeated = ["tconst", "startYear", "averageRating", "numVotes", "runtimeMinutes"]
    movie = movies[repeated].iloc[links["row"].to_numpy()]
    movie = movie.reset_index(drop=True)
    return pd.DataFrame(
        {
            "movie_id": movie["tconst"],
            "source": _constant("imdb", len(links)),
            "genre_id": links["genre_id"].astype(GENRE_ID),
            "year": movie["startYear"],
            "rating": movie["averageRating"],
            "genre_bits": _genre_bits(links),
            "votes": movie["numVotes"],
            "runtime_minutes": movie["runtimeMinutes"],
        }
    )


def _genre_bits(links: pd.DataFrame) -> pd.Series:
    """Per link, the bits of all its movie's genres (each movie-genre pair once)."""
    ids = links["genre_id"].to_numpy(np.int64)
    shifts = np.minimum(ids, GENRE_BITS - 1)  # in range for every id; the others get 0
    bits = pd.Series(np.where(ids < GENRE_BITS, np.left_shift(1, shifts), 0))
    # Distinct powers of two: their sum per movie is their OR.
    return bits.groupby(links["row"].to_numpy()).transform("sum").astype(GENRE_ID)


def genre_sizes(links: pd.DataFrame) -> dict[int, int]:
    """The number of movies of each genre id in `genre_links` rows."""
    return {int(i): int(n) for i, n in links["genre_id"].value_counts().items()}


def _constant(value: str, rows: int) -> pd.Series:
    return pd.Series(pa.repeat(pa.scalar(value), rows), dtype=TEXT)


# Titles of ASCII letters and digits separated by single spaces fold to themselves in lower
# case (two thirds of them): a cheap match spares them the costly regex replacement.
ALREADY_FOLDED = r"[A-Za-z0-9]{1,200}( [A-Za-z0-9]{1,200})*"
LONG_WORD = r"([^ ]{200})[^ ]+"  # movies.search.MAX_WORD


def fold_titles(titles: pd.Series) -> pd.Series:
    """`movies.search.fold` of every title, vectorised (the same steps; NULL stays NULL)."""
    others = ~_matches(titles, ALREADY_FOLDED, nullable=True)
    folded = (
        titles[others]
        .str.normalize("NFKD")
        .str.replace(r"\p{Mn}+", "", regex=True)
        .str.replace(r"[^\p{L}\p{N}]+", " ", regex=True)
        .str.lower()
        .str.replace("ς", "σ", regex=False)
        .str.strip(" ")
        .str.replace(LONG_WORD, r"\1", regex=True)
    )
    return titles.str.lower().mask(others, folded)


def search_folds(titles: pd.Series, originals: pd.Series) -> pd.DataFrame:
    """The `search_title` and `search_original` columns (`movies.search.fold_titles`).

    Most original titles equal the title: only the others are folded.
    """
    title = fold_titles(titles)
    differs = originals.ne(titles).fillna(False).astype(bool)
    original = fold_titles(originals[differs]).reindex(originals.index).fillna("")
    return pd.DataFrame(
        {"search_title": title, "search_original": original.mask(original == title, "")}
    )


def _array_literal(genres: pd.Series) -> pd.Series:
    """ "A,B" → '{"A","B"}' (a PostgreSQL text[] literal, every element quoted); NULL → '{}'."""
    escaped = genres.str.replace("\\", "\\\\", regex=False).str.replace('"', '\\"', regex=False)
    return ('{"' + escaped.str.replace(",", '","', regex=False) + '"}').fillna("{}")


def mean_rating(joined: pd.DataFrame) -> float | None:
    """C of the weighted rating: the mean rating of the rated movies (None if none is rated)."""
    mean = joined["averageRating"].astype(NUMBER).mean()
    return None if pd.isna(mean) else float(mean)


def weighted_ratings(joined: pd.DataFrame, mean: float | None) -> pd.Series:
    """Every movie's score (`movies.score`) as text with SCALE decimals; NULL when unrated."""
    if mean is None:
        return pd.Series(pa.nulls(len(joined), pa.string()), index=joined.index, dtype=TEXT)
    rating = joined["averageRating"].astype(NUMBER)
    votes = joined["numVotes"].astype(NUMBER).fillna(0.0)
    score = (votes * rating + MIN_VOTES * mean) / (votes + MIN_VOTES)
    return score.round(SCALE).astype(TEXT)


def to_movie_rows(joined: pd.DataFrame, mean: float | None = None) -> pd.DataFrame:
    """The joined movies in the columns (order and text form) of `movie` for COPY ... CSV.

    `mean` is C of the weighted rating (`mean_rating`); without it every score is NULL.
    """
    derived = search_folds(joined["primaryTitle"], joined["originalTitle"]).assign(
        source=_constant("imdb", len(joined)).set_axis(joined.index),
        is_adult=joined["isAdult"].eq("1").fillna(False),
        genres=_array_literal(joined["genres"]),
        score=weighted_ratings(joined, mean),
    )
    renamed = joined.rename(columns=RENAMED).drop(columns=["genres", "isAdult"])
    return pd.concat([renamed, derived], axis=1)[list(MOVIE_COLUMNS)]


def movie_csv_chunks(
    joined: pd.DataFrame, mean: float | None = None, rows: int = COPY_ROWS
) -> Iterator[bytes]:
    """`to_movie_rows` as COPY CSV, `rows` movies at a time.

    Each slice is converted when its turn comes, so the conversion (the search folds, the
    scores) can overlap the database's work on the previous slice, and never holds a second copy
    of the whole table.
    """
    for start in range(0, len(joined), rows):
        yield from csv_chunks(to_movie_rows(joined.iloc[start : start + rows], mean), rows)


def csv_chunks(frame: pd.DataFrame, rows: int = COPY_ROWS) -> Iterator[bytes]:
    """`frame` as CSV for COPY ... (FORMAT csv): strings always quoted, NULL as an empty field.

    Quoting every string keeps "" (an empty title) distinct from NULL, and CSV needs no escaping
    of backslashes, so titles round-trip byte for byte. The Arrow-backed columns go to Arrow's
    CSV writer as they are, without a copy.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    options = pcsv.WriteOptions(include_header=False, quoting_style="needed")
    for start in range(0, table.num_rows, rows):
        sink = io.BytesIO()
        pcsv.write_csv(table.slice(start, rows), sink, options)
        yield sink.getvalue()
