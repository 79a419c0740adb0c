"""The search fold: Python reference vs the loader's pandas version, and the tsquery text."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movies.loader.transform import fold_titles as frame_fold
from movies.loader.transform import search_folds
from movies.search import MAX_QUERY_LENGTH, Search, SearchError, fold, fold_titles, parse_search

NASTY = [
    ("Amélie", "amelie"),
    ("AMÉLIE", "amelie"),
    ("Ämélie", "amelie"),
    ("The Godfather: Part II", "the godfather part ii"),
    ("  Leading\tand\u00a0trailing\u2003 ", "leading and trailing"),
    ("ΟΔΥΣΣΕΥΣ", "οδυσσευσ"),  # final sigma folds like any sigma
    ("Οδυσσευς", "οδυσσευσ"),
    ("İstanbul", "istanbul"),  # dotted capital I: NFKD first, so no stray combining dot
    ("Straße", "straße"),
    ("ǅemal", "dzemal"),  # titlecase digraph
    ("ﬁlm ﬂight", "film flight"),  # ligatures (compatibility decomposition)
    ("Ⅻ ½ ²", "xii 1 2 2"),  # roman numeral, vulgar fraction, superscript
    ("東京物語", "東京物語"),
    ("ガンダム", "カンタム"),  # dakuten are combining marks
    ("Ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
    ("O'Brien & Co. (1999)!", "o brien co 1999"),
    ("a_b-c.d", "a b c d"),
    ('"', ""),
    ("\\N", "n"),
    ("🎬 Reel", "reel"),
    ("Zoë", "zoe"),
    ("Łódź", "łodz"),  # Ł has no decomposition: kept (lower case)
    ("Ærø", "ærø"),
    ("e\u0301\u0301", "e"),  # stacked combining marks
    ("", ""),
    ("x" * 500, "x" * 200),  # words are cut to MAX_WORD characters
    ("É" * 300 + " b", "e" * 200 + " b"),
]


def texts(values: list[str | None]) -> pd.Series:
    return pd.Series(pa.array(values, pa.string()), dtype=pd.ArrowDtype(pa.string()))


def python_values(series: pd.Series) -> list:
    return pa.array(series).to_pylist()


@pytest.mark.parametrize(("text", "folded"), NASTY)
def test_fold_reference(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_frame_fold_agrees_with_python_on_nasty_titles() -> None:
    titles = [text for text, _ in NASTY] + [None]
    assert python_values(frame_fold(texts(titles))) == [fold(t) for t in titles[:-1]] + [None]


# Characters this Python's Unicode database knows (Arrow's tables may be newer: a character
# assigned since is a letter to Arrow and unassigned, hence a separator, to Python).
ASSIGNED = st.characters(exclude_categories=("Cn", "Cs"))


# No deadline: a busy machine makes a first call slow, and speed is not what this checks.
@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.lists(st.text(ASSIGNED, max_size=30), min_size=1, max_size=20))
def test_frame_fold_agrees_with_python_on_any_text(titles: list[str]) -> None:
    assert python_values(frame_fold(texts(titles))) == [fold(t) for t in titles]


def test_search_folds_match_fold_titles() -> None:
    titles = ["Amélie", "Heat", "NA", "Le Fabuleux", "x"]
    originals = ["Amelie", None, "NA (original)", "Amélie", "X!"]
    got = search_folds(texts(titles), texts(originals))
    pairs = zip(got["search_title"].tolist(), got["search_original"].tolist(), strict=True)
    assert list(pairs) == [fold_titles(t, o) for t, o in zip(titles, originals, strict=True)]
    assert got["search_original"].tolist() == ["", "", "na original", "amelie", ""]


def test_tsquery_ands_the_words_and_prefixes_the_last() -> None:
    assert parse_search("The  GODF").tsquery == "'the' & 'godf':*"
    assert parse_search("heat").tsquery == "'heat':*"


def test_operator_characters_never_reach_the_tsquery() -> None:
    search = parse_search("a & b | !c:* (d) 'e' \\f <-> g")
    assert search == Search("a b c d e f g")
    assert search.tsquery == "'a' & 'b' & 'c' & 'd' & 'e' & 'f' & 'g':*"


@pytest.mark.parametrize("raw", ["", " ", "&|!():*'\\", "%_", "x" * (MAX_QUERY_LENGTH + 1)])
def test_parse_search_rejects(raw: str) -> None:
    with pytest.raises(SearchError):
        parse_search(raw)


def test_prefix_pattern_holds_no_like_metacharacters() -> None:
    assert parse_search("50% of_it").prefix_pattern == "50 of it%"


def test_search_text_with_a_nul_is_rejected_like_every_text_parameter() -> None:
    with pytest.raises(SearchError, match="NUL"):
        parse_search("1\x00")
