"""Title search: the text fold shared by the loader, POST /movies and the `q` parameter.

The fold makes search case- and accent-insensitive without any PostgreSQL extension (the
embedded server ships none; pg_trgm and unaccent are therefore not an option):

    NFKD  →  drop combining marks (Mn)  →  every run of non-letters/non-digits becomes one space
          →  lower case, final sigma as sigma  →  trim  →  words cut to MAX_WORD characters

so "Amélie" and "AMELIE" both fold to "amelie", "The Godfather: Part II" to
"the godfather part ii". `fold` is the reference; the loader applies the same steps to whole
columns of a pandas DataFrame (`movies.loader.transform.fold_titles`), and a test checks that
both agree.

A movie stores the fold of its title (`search_title`) and of its original title when that folds
differently (`search_original`, else ''). Matching uses PostgreSQL's built-in full-text types
without a text-search parser or configuration: the folds, being words of letters and digits
separated by single spaces, are cast to `tsvector` as they are (one lexeme per word), and the
query becomes the `tsquery` `'the' & 'godf':*` (every word, the last one as a prefix). No locale
decides what a word is, so the embedded server and the compose one match identically. The query
text is built here from folded words only: the tsquery operators of the raw input never reach it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

MAX_QUERY_LENGTH = 200
# Longer words are cut: a tsvector lexeme must stay under 2 KiB (200 characters are at most 800
# bytes in UTF-8), and no one types 200 letters without a space.
MAX_WORD = 200


class SearchError(ValueError):
    """A search text that cannot be searched for (nothing but punctuation, too long)."""


def fold(text: str) -> str:
    """The search fold of `text`: lower case, no accents, words separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept: list[str] = []
    for char in decomposed:
        category = unicodedata.category(char)
        if category == "Mn":
            continue
        kept.append(char if category[0] in "LN" else " ")
    words = "".join(kept).lower().replace("ς", "σ").split()
    return " ".join(word[:MAX_WORD] for word in words)


def fold_titles(title: str, original_title: str | None) -> tuple[str, str]:
    """(search_title, search_original) of a movie; the second is '' when it adds nothing."""
    folded_title = fold(title)
    folded_original = fold(original_title) if original_title is not None else ""
    return folded_title, "" if folded_original == folded_title else folded_original


@dataclass(frozen=True)
class Search:
    """A validated search: the folded text and the tsquery text built from its words."""

    text: str

    @property
    def tsquery(self) -> str:
        """`'w1' & 'w2' & 'last':*` (words are letters and digits only; quoted regardless)."""
        words = [word.replace("\\", "\\\\").replace("'", "''") for word in self.text.split(" ")]
        terms = [f"'{word}'" for word in words]
        terms[-1] += ":*"
        return " & ".join(terms)

    @property
    def prefix_pattern(self) -> str:
        """LIKE pattern of the titles starting with the text (the fold holds no % or _)."""
        return self.text + "%"


def parse_search(raw: str) -> Search:
    """Validate and fold the `q` parameter.

    :raise SearchError: if it is longer than MAX_QUERY_LENGTH characters, holds a NUL (as every
        other text parameter, it is rejected rather than read as a separator) or has no letter or
        digit (empty, blank or punctuation only).
    """
    if "\x00" in raw:
        raise SearchError("must not contain NUL characters")
    if len(raw) > MAX_QUERY_LENGTH:
        raise SearchError(f"must be at most {MAX_QUERY_LENGTH} characters, got {len(raw)}")
    folded = fold(raw)
    if not folded:
        raise SearchError(f"must contain at least one letter or digit, got {raw[:40]!r}")
    return Search(folded)
