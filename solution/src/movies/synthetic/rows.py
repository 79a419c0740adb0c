"""The rows of the synthetic files, a chunk at a time (numpy): ids, types, titles and their
quirks, adult flags, ratings and votes, years, runtimes, genres, the fixed movies and the
malformed rows, with the counts of what was written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from movies.synthetic.vocabulary import (
    ADJECTIVES,
    EMOJI_TITLES,
    EPISODE,
    FIXED_MOVIES,
    FOREIGN_TITLES,
    GENRE_NAMES,
    GENRES,
    LONG_TITLE_WORDS,
    MONTHS,
    MOVIE,
    NA_TITLES,
    NAMES,
    NOUNS,
    PLACES,
    QUOTE_TEMPLATES,
    SERIES,
    SHORT,
    TYPE_INDEX,
    TYPE_NAMES,
    TYPE_RATED,
    TYPE_SHARES,
)

NULL = "\\N"
# Ids spread over this range at any scale (the real files reach about tt36000000).
ID_SPAN = 33_500_000
CHUNK_ROWS = 250_000


@dataclass
class Counts:
    """What a data set holds; written to synthetic.json."""

    basics_rows: int = 0
    ratings_rows: int = 0
    movies: int = 0
    rated_movies: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    rated_by_type: dict[str, int] = field(default_factory=dict)
    malformed_tconsts: list[str] = field(default_factory=list)
    malformed_rated: int = 0


@dataclass(frozen=True)
class _Pools:
    """Value pools built once per data set; rows index into them."""

    heads: np.ndarray
    tails: np.ndarray
    foreign: np.ndarray
    episodes: np.ndarray
    dated: np.ndarray
    movie_genres: np.ndarray
    tv_genres: np.ndarray
    short_genres: np.ndarray
    years: np.ndarray  # index year - YEAR_BASE; index 0 is NULL
    runtimes: np.ndarray  # index n -> str(n); index 0 is NULL
    ratings: np.ndarray  # index r in 10..100 -> "r/10" with one decimal


YEAR_BASE = 1873
LAST_YEAR = 2031


def _build_pools(rng: np.random.Generator) -> _Pools:
    def pick(words: list[str], n: int) -> list[str]:
        return [words[i] for i in rng.integers(0, len(words), n)]

    n = 4096
    adjs, nouns, nouns2 = pick(ADJECTIVES, n), pick(NOUNS, n), pick(NOUNS, n)
    names, places = pick(NAMES, n), pick(PLACES, n)
    forms = rng.integers(0, 8, n)
    heads = []
    for i in range(n):
        form = forms[i]
        if form == 0:
            heads.append(f"The {adjs[i]} {nouns[i]}")
        elif form == 1:
            heads.append(nouns[i])
        elif form == 2:
            heads.append(f"{adjs[i]} {nouns[i]}")
        elif form == 3:
            heads.append(f"{names[i]}'s {nouns[i]}")
        elif form == 4:
            heads.append(f"A {nouns[i]} in {places[i]}")
        elif form == 5:
            heads.append(f"The {nouns[i]} and the {nouns2[i]}")
        elif form == 6:
            heads.append(names[i])
        else:
            heads.append(f"{places[i]} {nouns[i]}")
    tail_forms = rng.integers(0, 10, n)
    tails = []
    for i in range(n):
        form = tail_forms[i]
        if form < 5:
            tails.append("")
        elif form == 5:
            tails.append(f": The {nouns2[i]}")
        elif form == 6:
            tails.append(f" of {places[i]}")
        elif form == 7:
            tails.append(f" {int(rng.integers(2, 8))}")
        elif form == 8:
            tails.append(f", {names[i]}")
        else:
            tails.append(f" in {MONTHS[i % 12]}")
    foreign = []
    for i in range(n):
        base = FOREIGN_TITLES[i % len(FOREIGN_TITLES)]
        foreign.append(base if i < len(FOREIGN_TITLES) else f"{base} {i // len(FOREIGN_TITLES)}")
    episodes = [f"Episode #{s}.{e}" for s in range(1, 41) for e in range(1, 201)]
    dated = [
        f"Episode dated {d} {m} {y}" for y in range(1990, 2025) for m in MONTHS for d in (1, 15)
    ]
    years = [NULL] + [str(y) for y in range(YEAR_BASE + 1, LAST_YEAR + 1)]
    runtimes = [NULL] + [str(r) for r in range(1, 1500)]
    ratings = [f"{r / 10:.1f}" for r in range(0, 101)]
    return _Pools(
        heads=np.array(heads, dtype=object),
        tails=np.array(tails, dtype=object),
        foreign=np.array(foreign, dtype=object),
        episodes=np.array(episodes, dtype=object),
        dated=np.array(dated, dtype=object),
        movie_genres=_genre_pool(rng, 1, 8192),
        tv_genres=_genre_pool(rng, 2, 8192),
        short_genres=_genre_pool(rng, 1, 4096, always="Short"),
        years=np.array(years, dtype=object),
        runtimes=np.array(runtimes, dtype=object),
        ratings=np.array(ratings, dtype=object),
    )


def _genre_pool(
    rng: np.random.Generator, column: int, n: int, always: str | None = None
) -> np.ndarray:
    """`n` genre lists (1-3 names, alphabetical, comma-joined) drawn with the given weights."""
    weights = np.array([g[column] for g in GENRES])
    if always is not None:
        weights[GENRE_NAMES.index(always)] = 0.0
    # Weighted sampling without replacement: the top k of log(w) + Gumbel noise.
    with np.errstate(divide="ignore"):
        keys = np.log(weights) + rng.gumbel(size=(n, len(GENRES)))
    top = np.argsort(-keys, axis=1)[:, :3]
    sizes = rng.choice([1, 2, 3], size=n, p=[0.45, 0.30, 0.25])
    pool = []
    for row, k in zip(top.tolist(), sizes.tolist(), strict=True):
        names = [GENRE_NAMES[g] for g in row[:k]]
        if always is not None:
            names = [always, *names[: k - 1]] if k > 1 else [always]
        pool.append(",".join(sorted(names)))
    return np.array(pool, dtype=object)


def row_chunks(
    total: int, seed: int, malformed_every: int, counts: Counts
) -> Iterator[tuple[str, str]]:
    """Yield (basics text, ratings text) for consecutive blocks of rows, ids ascending."""
    pools = _build_pools(np.random.default_rng([seed, 0x5EED]))
    mean_gap = max(1.0, ID_SPAN / total)
    last_id = 0
    fixed_left = list(FIXED_MOVIES)
    for start in range(0, total, CHUNK_ROWS):
        n = min(CHUNK_ROWS, total - start)
        rng = np.random.default_rng([seed, start // CHUNK_ROWS])
        gaps = rng.geometric(1.0 / mean_gap, n) if mean_gap > 1 else np.ones(n, np.int64)
        ids = last_id + np.cumsum(gaps)
        last_id = int(ids[-1])
        basics, ratings = _chunk_text(rng, pools, ids, start, malformed_every, fixed_left, counts)
        yield basics, ratings


def _chunk_text(
    rng: np.random.Generator,
    pools: _Pools,
    ids: np.ndarray,
    start: int,
    malformed_every: int,
    fixed_left: list[tuple],
    counts: Counts,
) -> tuple[str, str]:
    n = len(ids)
    kind = rng.choice(len(TYPE_NAMES), size=n, p=TYPE_SHARES)
    is_movie = kind == MOVIE
    is_episode = kind == EPISODE
    is_short = kind == SHORT

    # Titles: head + tail from the English pools; episodes mostly "Episode #s.e".
    primary = (
        pools.heads[rng.integers(0, len(pools.heads), n)]
        + pools.tails[rng.integers(0, len(pools.tails), n)]
    )
    ep_roll = rng.random(n)
    numbered = is_episode & (ep_roll < 0.35)
    primary[numbered] = pools.episodes[rng.integers(0, len(pools.episodes), int(numbered.sum()))]
    dated = is_episode & (ep_roll >= 0.35) & (ep_roll < 0.45)
    primary[dated] = pools.dated[rng.integers(0, len(pools.dated), int(dated.sum()))]
    original = primary.copy()
    lang_roll = rng.random(n)
    # A foreign original beside an English primary title; sometimes the primary is foreign too.
    foreign = ~numbered & ~dated & (lang_roll < 0.10)
    original[foreign] = pools.foreign[rng.integers(0, len(pools.foreign), int(foreign.sum()))]
    foreign_primary = foreign & (lang_roll < 0.03)
    primary[foreign_primary] = original[foreign_primary]

    # Rare quirks in titles (rates per row of title.basics).
    quirk_roll = rng.random(n)
    for i in np.flatnonzero(quirk_roll < 6.1e-4).tolist():  # bare double quotes (~7 k per 11.5 M)
        template = QUOTE_TEMPLATES[i % len(QUOTE_TEMPLATES)]
        primary[i] = template.format(t=primary[i])
        if quirk_roll[i] < 3e-4:
            original[i] = primary[i]
    for i in np.flatnonzero((quirk_roll >= 6.1e-4) & (quirk_roll < 6.3e-4)).tolist():
        primary[i] = original[i] = NA_TITLES[i % len(NA_TITLES)]
    for i in np.flatnonzero((quirk_roll >= 6.3e-4) & (quirk_roll < 6.35e-4)).tolist():
        primary[i] = EMOJI_TITLES[i % len(EMOJI_TITLES)]
    for i in np.flatnonzero((quirk_roll >= 6.35e-4) & (quirk_roll < 6.36e-4)).tolist():
        head, space, rest = primary[i].partition(" ")
        # A backslash, but never "\\N": that pair means NULL only as a whole field.
        primary[i] = f"{head}\\{rest}" if space and not rest.startswith("N") else primary[i] + "\\"
    for i in np.flatnonzero((quirk_roll >= 6.36e-4) & (quirk_roll < 6.3605e-4)).tolist():
        words = LONG_TITLE_WORDS * 4
        primary[i] = original[i] = " ".join(words[: 60 + i % 20])

    # isAdult: rare for movies, common for videos.
    adult_rate = np.where(kind == TYPE_INDEX["video"], 0.12, np.where(is_movie, 0.015, 0.002))
    adult = rng.random(n) < adult_rate

    # Ratings: whether rated depends on the type; votes long-tailed (a Pareto law truncated at
    # about 3 M); the rating is centred near 6-7 and rises with the number of votes.
    rated = rng.random(n) < TYPE_RATED[kind]
    alpha, vmin, vmax = 0.8, 5.0, 3_100_000.0
    u = rng.random(n)
    votes = vmin * (1.0 - u * (1.0 - (vmin / vmax) ** alpha)) ** (-1.0 / alpha)
    votes = np.floor(votes).astype(np.int64)
    lv = np.log10(votes)
    base = np.where(is_episode, 7.1, np.where(is_movie, 5.9, 6.4))
    rating = rng.normal(base + 0.32 * (lv - 1.0), 1.35 / (1.0 + 0.25 * lv))
    rating_idx = np.clip(np.rint(rating * 10), 10, 100).astype(np.int64)

    # Years: mostly recent, more so for titles with many votes; a few NULL; a few movies in the
    # future (never rated).
    age_scale = np.where(rated, 18.0 / (1.0 + 0.15 * (lv - np.log10(vmin))), 18.0)
    age = np.minimum(rng.exponential(1.0, n) * age_scale, 2025 - (YEAR_BASE + 1)).astype(np.int64)
    year = 2025 - age
    future = is_movie & (rng.random(n) < 0.01)
    year[future] = 2026 + rng.integers(0, 4, int(future.sum()))
    rated &= ~future
    year_null = rng.random(n) < np.where(is_movie, 0.012, np.where(is_episode, 0.15, 0.03))
    year_idx = np.where(year_null, 0, year - YEAR_BASE)

    end_idx = np.zeros(n, dtype=np.int64)
    series = np.isin(kind, SERIES) & ~year_null
    ended = series & (rng.random(n) < 0.6)
    end_year = np.minimum(year + 1 + rng.geometric(0.3, n), 2025)
    end_idx[ended] = (end_year - YEAR_BASE)[ended]

    # Runtime: minutes by type, ~30% NULL for movies.
    runtime = np.where(
        is_movie,
        rng.normal(94, 20, n),
        np.where(is_short, rng.normal(12, 7, n), rng.normal(40, 18, n)),
    )
    runtime = np.clip(np.rint(runtime), 1, len(pools.runtimes) - 1).astype(np.int64)
    runtime_null = rng.random(n) < np.where(is_movie, 0.30, 0.55)
    runtime_idx = np.where(runtime_null, 0, runtime)

    # Genres: 1-3, NULL for some; TV genres for TV types, Short always among shorts' genres.
    tv_like = np.isin(kind, (EPISODE, *SERIES, TYPE_INDEX["tvSpecial"]))
    genres = pools.movie_genres[rng.integers(0, len(pools.movie_genres), n)]
    genres[tv_like] = pools.tv_genres[rng.integers(0, len(pools.tv_genres), int(tv_like.sum()))]
    genres[is_short] = pools.short_genres[
        rng.integers(0, len(pools.short_genres), int(is_short.sum()))
    ]
    genres[adult] = "Adult"
    genres[rng.random(n) < np.where(is_movie, 0.08, 0.30)] = NULL

    primary_l = primary.tolist()
    original_l = original.tolist()
    adult_l = np.where(adult, "1", "0").tolist()
    year_l = pools.years[year_idx].tolist()
    end_l = pools.years[end_idx].tolist()
    runtime_l = pools.runtimes[runtime_idx].tolist()
    genres_l = genres.tolist()
    rating_l = pools.ratings[rating_idx].tolist()
    votes_l = votes.tolist()
    rated_l = rated.tolist()
    kind_l = kind.tolist()
    ids_l = ids.tolist()

    if fixed_left:
        for i in np.flatnonzero(is_movie).tolist():
            if not fixed_left:
                break
            title, orig, is_adult, yr, rt, gen, rate = fixed_left.pop(0)
            primary_l[i] = title
            original_l[i] = title if orig is None else orig
            adult_l[i] = str(is_adult)
            year_l[i] = NULL if yr is None else str(yr)
            runtime_l[i] = NULL if rt is None else str(rt)
            genres_l[i] = NULL if gen is None else gen
            rated_l[i] = rate is not None
            if rate is not None:
                rating_l[i], votes_l[i] = f"{rate[0]:.1f}", rate[1]

    tconst_l = [f"tt{i:07d}" for i in ids_l]
    types_l = TYPE_NAMES[kind].tolist()
    lines = list(
        map(
            "\t".join,
            zip(
                tconst_l,
                types_l,
                primary_l,
                original_l,
                adult_l,
                year_l,
                end_l,
                runtime_l,
                genres_l,
                strict=True,
            ),
        )
    )
    if malformed_every:
        first = (-(start + 1)) % malformed_every  # rows whose 1-based number divides evenly
        for i in range(first, n, malformed_every):
            row_number = start + i + 1
            number = row_number // malformed_every
            kind_l[i] = MOVIE
            fields = [tconst_l[i], "movie", primary_l[i], original_l[i], "0", "2001", NULL, "90"]
            if number % 2:
                lines[i] = "\t".join(fields)  # 8 fields: genres missing
            else:
                fields[2] = fields[2] + "\tPart Two"  # 10 fields: a tab inside the title
                lines[i] = "\t".join([*fields, "Drama"])
            counts.malformed_tconsts.append(tconst_l[i])
            counts.malformed_rated += bool(rated_l[i])

    rated_idx = [i for i, r in enumerate(rated_l) if r]
    ratings_text = "".join(f"{tconst_l[i]}\t{rating_l[i]}\t{votes_l[i]}\n" for i in rated_idx)

    counts.basics_rows += n
    counts.ratings_rows += len(rated_idx)
    type_counts = np.bincount(np.array(kind_l), minlength=len(TYPE_NAMES))
    rated_kinds = np.array([kind_l[i] for i in rated_idx], dtype=np.int64)
    rated_counts = np.bincount(rated_kinds, minlength=len(TYPE_NAMES))
    for t, name in enumerate(TYPE_NAMES):
        counts.by_type[name] += int(type_counts[t])
        counts.rated_by_type[name] += int(rated_counts[t])
    counts.movies = counts.by_type["movie"]
    counts.rated_movies = counts.rated_by_type["movie"]
    return "\n".join(lines) + "\n", ratings_text
