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

Modules: `vocabulary` (types, genres, words, fixed movies), `rows` (the rows, a chunk at a time),
`files` (the gzip files and synthetic.json).
"""

from movies.synthetic.files import (
    BASICS,
    BASICS_HEADER,
    MANIFEST,
    RATINGS,
    format_tconst,
    generate,
    read_manifest,
)
from movies.synthetic.vocabulary import FIXED_MOVIES

__all__ = [
    "BASICS",
    "BASICS_HEADER",
    "FIXED_MOVIES",
    "MANIFEST",
    "RATINGS",
    "format_tconst",
    "generate",
    "read_manifest",
]
