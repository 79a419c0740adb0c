"""Synthetic IMDb files: full-size, deterministic, with IMDb's quirks, for tests and benchmarks.

`generate(out_dir, scale=1.0, seed=42)` writes `title.basics.tsv.gz` and `title.ratings.tsv.gz` in
IMDb's exact format: a header line, tab-separated fields, `\\N` for NULL (and nothing else means
NULL), no quoting at all, LF line ends, UTF-8, rows in numeric `tconst` order, gzip (level 1).
Beside them it writes `synthetic.json`, the counts a loader should reproduce; it is written last,
so its presence (with the right seed and scale) marks a complete data set.

Scale 1.0 is the size of the real files: about 11.5 M title rows of every title type (movie about
700 k, tvEpisode most of the rest) and about 1.55 M ratings rows (about 470 k of them for movies).
Row counts are proportional to `scale`. Ids always spread over tt0000001..~tt33500000 whatever the
scale, so 8-digit tconsts (tt10000000 and above) occur even in small files; at scales above ~2.9
the ids become consecutive.

The same seed and scale give byte-identical files (the gzip stream carries no name and no mtime;
the bytes depend on the zlib build, so compare files made on the same machine).

Quirks, at realistic rates and deterministically placed (each also forced once among the first
movies, so every quirk occurs at any scale; see `FIXED_MOVIES`):

- titles starting with or containing a bare `"` (about 7 k lines at scale 1.0), never quoted;
- titles that are exactly `NA`, `null`, `None`, `NaN`, `N/A`, `nan`, `NULL`, `#N/A`, `<NA>`,
  `True`, `1917`: real titles, never NULL (`\\N` never occurs inside a title);
- a few titles holding a backslash, never followed by `N` (`Love\\Hate`, or one at the end of the
  title, right before the tab), which PostgreSQL's COPY text format reads as an escape unless
  the loader escapes it;
- a few titles longer than 300 characters, commas and apostrophes in titles;
- unicode titles: accents, combining marks, Cyrillic, Greek, CJK, Korean, Arabic and Hebrew (RTL),
  Devanagari, Thai and emoji (4-byte UTF-8);
- `originalTitle` differing from `primaryTitle` (foreign originals);
- `\\N` for startYear, runtimeMinutes and genres; endYear `\\N` except for some series;
- isAdult 1 on some titles (with genre Adult), 1-3 genres from IMDb's 28, alphabetically sorted,
  skewed as in reality (Drama, Comedy, Documentary common; Film-Noir, News, Reality-TV rare);
- ties everywhere (ratings have one decimal, years and runtimes are small integers, many titles
  repeat), ratings 1.0-10.0 centred near 6-7, votes long-tailed up to about 3 M; high vote counts
  go with later years and better ratings; a handful of movies rated 10.0 on very few votes;
- ratings rows for titles of every type, and movies with no ratings row (about a third).

Malformed rows: one basics row per `malformed_every` (default 1,000,000; so 11 at scale 1.0) is a
movie row with the wrong number of fields, alternately 8 fields (genres missing) and 10 fields (a
tab inside the title). A loader must skip and count them; `synthetic.json` lists their tconsts.
Pass `malformed_every=0` for none.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BASICS = "title.basics.tsv.gz"
RATINGS = "title.ratings.tsv.gz"
MANIFEST = "synthetic.json"
BASICS_HEADER = (
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\n"
)
RATINGS_HEADER = "tconst\taverageRating\tnumVotes\n"
NULL = "\\N"

FULL_BASICS_ROWS = 11_500_000
# Ids spread over this range at any scale (the real files reach about tt36000000).
ID_SPAN = 33_500_000
CHUNK_ROWS = 250_000
GZIP_LEVEL = 1

# (titleType, share of title.basics, share of that type with a ratings row)
TITLE_TYPES: tuple[tuple[str, float, float], ...] = (
    ("tvEpisode", 0.7692, 0.0737),
    ("short", 0.0913, 0.1620),
    ("movie", 0.0609, 0.6714),
    ("video", 0.0261, 0.1670),
    ("tvSeries", 0.0243, 0.3570),
    ("tvMovie", 0.0130, 0.3670),
    ("tvMiniSeries", 0.0052, 0.3330),
    ("tvSpecial", 0.0048, 0.1820),
    ("videoGame", 0.0039, 0.4440),
    ("tvShort", 0.0011, 0.2500),
    ("tvPilot", 0.0002, 0.0500),
)
TYPE_NAMES = np.array([t[0] for t in TITLE_TYPES], dtype=object)
TYPE_SHARES = np.array([t[1] for t in TITLE_TYPES])
TYPE_SHARES = TYPE_SHARES / TYPE_SHARES.sum()
TYPE_RATED = np.array([t[2] for t in TITLE_TYPES])
TYPE_INDEX = {name: i for i, name in enumerate(TYPE_NAMES)}
MOVIE = TYPE_INDEX["movie"]
EPISODE = TYPE_INDEX["tvEpisode"]
SHORT = TYPE_INDEX["short"]
SERIES = (TYPE_INDEX["tvSeries"], TYPE_INDEX["tvMiniSeries"])

# IMDb's 28 genres with relative frequencies for feature-length titles and for TV titles.
GENRES: tuple[tuple[str, float, float], ...] = (
    ("Action", 7.0, 4.0),
    ("Adult", 0.6, 0.2),
    ("Adventure", 4.0, 3.0),
    ("Animation", 2.0, 5.0),
    ("Biography", 3.0, 1.0),
    ("Comedy", 18.0, 20.0),
    ("Crime", 6.0, 5.0),
    ("Documentary", 16.0, 8.0),
    ("Drama", 33.0, 18.0),
    ("Family", 3.0, 5.0),
    ("Fantasy", 2.5, 2.0),
    ("Film-Noir", 0.08, 0.01),
    ("Game-Show", 0.02, 3.0),
    ("History", 2.5, 2.0),
    ("Horror", 6.0, 1.0),
    ("Music", 2.5, 3.0),
    ("Musical", 1.5, 0.3),
    ("Mystery", 3.0, 2.0),
    ("News", 0.1, 6.0),
    ("Reality-TV", 0.05, 9.0),
    ("Romance", 7.0, 6.0),
    ("Sci-Fi", 2.0, 1.0),
    ("Short", 0.01, 0.5),
    ("Sport", 1.0, 2.0),
    ("Talk-Show", 0.03, 7.0),
    ("Thriller", 7.0, 1.5),
    ("War", 1.5, 0.5),
    ("Western", 1.0, 0.5),
)
GENRE_NAMES = [g[0] for g in GENRES]

ADJECTIVES = (
    "Last Silent Dark Golden Broken Hidden Lost Wild Red Blue Black White Secret Little Great "
    "Long Cold Burning Final Forgotten Eternal Sweet Bitter Crimson Frozen Distant Lonely Savage "
    "Quiet Endless Hollow Iron Velvet Electric Midnight Wicked Restless Gentle Shattered Fallen "
    "Rising Sacred Strange Invisible Naked Deadly Perfect Happy Dangerous Young Old New Second "
    "Seventh Magnificent Crazy Beautiful Ugly Brave Proud Holy Mad Sudden Violent Tender Empty"
).split()
NOUNS = (
    "Night Day City River Road House Heart Dream Love War Sky Sea Storm Fire Rain Shadow Moon "
    "Sun Star Garden Island Mountain Summer Winter Journey Stranger Brother Sister Mother Father "
    "Daughter Son King Queen Girl Boy Man Woman Child Ghost Angel Devil Hunter Soldier Doctor "
    "Detective Witness Promise Secret Truth Lie Game Kiss Song Dance Wolf Horse Bird Dog Cat "
    "Train Bridge Harbor Valley Desert Forest Empire Kingdom Revolution Escape Return Revenge "
    "Silence Mirror Door Window Letter Voice Memory Time Life Death Blood Money Gold Diamond "
    "Line Edge Circle Hour Minute Season Wedding Funeral Party Crossing Frontier Border"
).split()
NAMES = (
    "Anna Maria John Paul Mary Peter Laura Jack Rosa Ivan Ali Mei Yuki Omar Elena Carlos Ingrid "
    "Hans Pierre Sofia Lucia Raj Priya Kofi Amara Sven Olga Dmitri Chen Hiro Fatima Leila Tomas"
).split()
PLACES = [
    *"Paris Rome Berlin Tokyo London Cairo Lagos Lima Oslo Vienna Madrid Seoul".split(),
    *"Mumbai Texas".split(),
    *"Chicago Brooklyn Havana Istanbul Manila Dakar Warsaw Prague Naples Sicily".split(),
    "Hong Kong",
    "Rio de Janeiro",
]
MONTHS = (
    "January February March April May June July August September October November December"
).split()
# Foreign originals, one or two per script; combined with a counter word to make many.
FOREIGN_TITLES = (
    "Le fabuleux destin",
    "La vie en rose",
    "Les quatre cents coups",
    "À bout de souffle",
    "Été 85",
    "L'arrivée d'un train à La Ciotat",
    "Über den Dächern",
    "Überflüssige Menschen",
    "Das Leben der Anderen",
    "Smörgåsbord för själen",
    "El laberinto del fauno",
    "Niño pequeño, mañana",
    "Cidade de Deus",
    "Ladri di biciclette",
    "Ça ira, señor",
    "Jeune fille à la fenêtre",
    "Cafe\u0301 de la Gare",
    "Čierny Peter",
    "Łódź nocą",
    "Брат",
    "Война и мир",
    "Ο θίασος",
    "千と千尋の神隠し",
    "七人の侍",
    "霸王别姬",
    "花樣年華",
    "기생충",
    "올드보이",
    "الرسالة",
    "وجدة",
    "ואלס עם באשיר",
    "देवदास",
    "ฟ้าทะลายโจร",
    "Nuovo Cinema Paradiso",
    "Fröken Julie",
    "Ó Paí, Ó",
)
EMOJI_TITLES = ("🎬 Movie Night 🍿", "Love ❤️ Story", "😀 Happy", "🦄 Unicorn Dreams", "👻")
NA_TITLES = ("NA", "null", "None", "NaN", "N/A", "nan", "NULL", "#N/A", "<NA>", "True", "1917")
QUOTE_TEMPLATES = (
    '"{t}"',
    '"{t}" Live',
    'The "{t}"',
    '{t} "Special"',
    '12" {t}',
    '"{t}',
)
LONG_TITLE_WORDS = (
    "The Fable of the Kid Who Shifted His Ideals to Golf and Finally Became a Baseball Fan and "
    "Took the Only Known Cure for the Condition Known as"
).split()

# Movies written at fixed places (the first movie rows) so every quirk occurs at any scale:
# (primaryTitle, originalTitle or None for the same, isAdult, startYear, runtime, genres,
#  (averageRating, numVotes) or None for no ratings row).
FIXED_MOVIES: tuple[tuple, ...] = (
    ('"Giliap"', None, 0, 1975, 137, "Crime,Drama", (6.8, 2041)),
    ('The "Best" Years', None, 0, 1999, 101, "Comedy", (6.8, 2041)),
    ('"Unbalanced quote', None, 0, 2004, 88, "Drama", (5.5, 77)),
    ('12" Single', None, 0, 2011, 95, "Music", None),
    ("NA", None, 0, 2015, 90, "Drama", (6.1, 120)),
    ("null", None, 0, 2012, 85, "Thriller", (5.0, 40)),
    ("None", None, 0, 2019, 99, "Comedy", None),
    ("NaN", None, 0, 2021, 92, "Documentary", (7.2, 15)),
    ("N/A", None, 0, 2008, 78, "Horror", (4.4, 310)),
    ("nan", "NaN", 0, 2020, 101, "Drama", (6.1, 120)),
    ("NULL", None, 0, 2016, 80, "Sci-Fi", (3.9, 55)),
    ("#N/A", None, 0, 2017, 110, "Crime", None),
    ("Love\\Hate", None, 0, 2010, 96, "Drama,Romance", (6.6, 430)),
    ("Ends With A Backslash\\", None, 0, 2013, 88, "Drama", (6.6, 430)),
    (" ".join(LONG_TITLE_WORDS * 3), None, 0, 1916, 12, "Comedy", (5.9, 21)),
    ("Amélie Blues", "Le fabuleux destin d'Amélie Blues", 0, 2001, 122, "Comedy", (8.3, 800000)),
    ("Spirited Away Again", "千と千尋の神隠し 2", 0, 2003, 125, "Animation,Family", (8.6, 31000)),
    ("The Message Returns", "الرسالة", 0, 1976, 177, "Biography,Drama,History", (8.1, 9000)),
    ("Waltz", "ואלס עם באשיר", 0, 2008, 90, "Animation,Documentary,War", (8.0, 61000)),
    ("🎬 Movie Night 🍿", None, 0, 2022, 93, "Comedy", (7.0, 12)),
    ("Cafe\u0301 Combining", None, 0, 1990, 95, "Drama", None),
    ("No Year", None, 0, None, 95, "Drama", None),
    ("No Runtime", None, 0, 1994, None, "Drama", (7.4, 1200)),
    ("No Genres", None, 0, 1994, 100, None, (7.4, 1200)),
    ("Nothing Known", None, 0, None, None, None, None),
    ("Adult Feature", None, 1, 1998, 84, "Adult", (5.2, 60)),
    ("Perfect Ten", None, 0, 2023, 70, "Documentary", (10.0, 5)),
    ("Perfect Ten, Twice", None, 0, 2024, 71, "Documentary", (10.0, 6)),
    ("The Worst", None, 0, 2005, 80, "Horror", (1.0, 9000)),
    ("The Most Watched", None, 0, 2008, 152, "Action,Crime,Drama", (9.0, 3_000_000)),
    ("Earliest", None, 0, 1874, 1, "Documentary,Short", (6.8, 2300)),
    ("Not Released Yet", None, 0, 2031, None, "Sci-Fi", None),
    ("Logistics", None, 0, 2012, 51420, "Documentary", (5.0, 800)),
)


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


def format_tconst(number: int) -> str:
    """IMDb's id for a number: 'tt' and at least 7 digits (tt0000001 ... tt9999999, tt10000000)."""
    if number < 1:
        raise ValueError(f"tconst numbers start at 1, got {number}")
    return f"tt{number:07d}"


def basics_rows_for(scale: float) -> int:
    """Number of title.basics data rows at `scale` (1.0: 11.5 M)."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return max(1, round(FULL_BASICS_ROWS * scale))


def generate(
    out_dir: Path, *, scale: float = 1.0, seed: int = 42, malformed_every: int = 1_000_000
) -> None:
    """Write title.basics.tsv.gz, title.ratings.tsv.gz and synthetic.json into `out_dir`.

    Files are written under temporary names and renamed when complete; synthetic.json last.

    :raise ValueError: if scale is not positive or malformed_every is negative.
    :raise OSError: if out_dir cannot be created or written.
    """
    total = basics_rows_for(scale)
    if malformed_every < 0:
        raise ValueError(f"malformed_every must be 0 or more, got {malformed_every}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    manifest_path.unlink(missing_ok=True)
    tmp_suffix = f".tmp-{os.getpid()}"
    basics_tmp = out_dir / (BASICS + tmp_suffix)
    ratings_tmp = out_dir / (RATINGS + tmp_suffix)
    counts = Counts(
        by_type={str(t): 0 for t in TYPE_NAMES}, rated_by_type={str(t): 0 for t in TYPE_NAMES}
    )
    try:
        with _GzipWriter(basics_tmp) as basics, _GzipWriter(ratings_tmp) as ratings:
            basics.write(BASICS_HEADER.encode())
            ratings.write(RATINGS_HEADER.encode())
            for basics_text, ratings_text in _chunks(total, seed, malformed_every, counts):
                basics.write(basics_text.encode())
                ratings.write(ratings_text.encode())
        os.replace(ratings_tmp, out_dir / RATINGS)
        os.replace(basics_tmp, out_dir / BASICS)
    finally:
        basics_tmp.unlink(missing_ok=True)
        ratings_tmp.unlink(missing_ok=True)
    manifest = {
        "seed": seed,
        "scale": scale,
        "malformed_every": malformed_every,
        "basics_rows": counts.basics_rows,
        "ratings_rows": counts.ratings_rows,
        "movies": counts.movies,
        "loadable_movies": counts.movies - len(counts.malformed_tconsts),
        "rated_movies": counts.rated_movies,
        "loadable_rated_movies": counts.rated_movies - counts.malformed_rated,
        "by_type": counts.by_type,
        "rated_by_type": counts.rated_by_type,
        "malformed_tconsts": counts.malformed_tconsts,
    }
    tmp_manifest = out_dir / (MANIFEST + tmp_suffix)
    tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_manifest, manifest_path)


def read_manifest(out_dir: Path) -> dict | None:
    """The synthetic.json of a complete data set in `out_dir`, or None if there is none."""
    try:
        return json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class _GzipWriter:
    """A single-member gzip file (no name, mtime 0) compressed on a background thread.

    zlib releases the GIL, so compression overlaps with building the next chunk of text.
    """

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=3)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                self._file.write(self._compressor.compress(data))
            self._file.write(self._compressor.flush())
        except BaseException as exc:  # re-raised in the writing thread
            self._error = exc
            while self._queue.get() is not None:
                pass

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _GzipWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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


def _chunks(
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
