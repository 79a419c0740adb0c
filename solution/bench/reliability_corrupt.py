"""Corrupt inputs for `make reliability`, built from a good data set (cached beside it).

Each case is a source folder plus what a correct loader does with it:
- `fail`: exit non-zero with one clear line on stderr, the served data untouched;
- `skip`: load, counting the bad rows as skipped (ratings for unknown ids, duplicate tconsts);
- `either`: a defensible file whose outcome the harness reports without judging.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BASICS = "title.basics.tsv.gz"
RATINGS = "title.ratings.tsv.gz"
BASICS_HEADER = (
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\n"
)
RATINGS_HEADER = "tconst\taverageRating\tnumVotes\n"
SAMPLE_ROWS = (
    'tt0000001\tmovie\tA "quoted" title\t\\N\t0\t1999\t\\N\t90\tDrama\n'
    "tt12345678\tmovie\tNA\tNA\t0\t2020\t\\N\t\\N\t\\N\n"
)
UNKNOWN_RATINGS = 1000
DUPLICATE_EVERY = 1000


@dataclass(frozen=True)
class CorruptCase:
    name: str
    expect: str  # "fail", "skip" or "either"
    build: Callable[[Path, Path], None]  # (good source, case folder)


def _gz(path: Path, text: str) -> None:
    with gzip.open(path, "wt", encoding="utf-8", newline="\n", compresslevel=1) as out:
        out.write(text)


def _link(good: Path, case: Path, name: str) -> None:
    target = case / name
    if target.exists():
        return
    if _same_device(good, case):
        os.link(good / name, target)  # no copy of a large file that is not changed
    else:
        shutil.copy(good / name, target)


def _same_device(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def _truncated(name: str, fraction: float) -> Callable[[Path, Path], None]:
    def build(good: Path, case: Path) -> None:
        data = (good / name).read_bytes()
        (case / name).write_bytes(data[: int(len(data) * fraction)])
        _link(good, case, RATINGS if name == BASICS else BASICS)

    return build


def _basics(content: bytes | str, *, gzipped: bool = True) -> Callable[[Path, Path], None]:
    def build(good: Path, case: Path) -> None:
        if gzipped and isinstance(content, str):
            _gz(case / BASICS, content)
        elif gzipped:
            with gzip.open(case / BASICS, "wb") as out:
                out.write(content)
        else:
            (case / BASICS).write_bytes(content if isinstance(content, bytes) else content.encode())
        _link(good, case, RATINGS)

    return build


def _ratings(content: str) -> Callable[[Path, Path], None]:
    def build(good: Path, case: Path) -> None:
        _gz(case / RATINGS, content)
        _link(good, case, BASICS)

    return build


def _only(name: str) -> Callable[[Path, Path], None]:
    def build(good: Path, case: Path) -> None:
        _link(good, case, name)

    return build


def _swapped(good: Path, case: Path) -> None:
    shutil.copy(good / RATINGS, case / BASICS)
    shutil.copy(good / BASICS, case / RATINGS)


def _unknown_ratings(good: Path, case: Path) -> None:
    """The good ratings plus ratings for tconsts that no basics row has (tt9000000000...)."""
    with (
        gzip.open(good / RATINGS, "rt", encoding="utf-8", newline="\n") as src,
        gzip.open(case / RATINGS, "wt", encoding="utf-8", newline="\n", compresslevel=1) as dst,
    ):
        shutil.copyfileobj(src, dst)
        for i in range(UNKNOWN_RATINGS):
            dst.write(f"tt{9_000_000_000 + i}\t7.5\t{100 + i}\n")
    _link(good, case, BASICS)


def _duplicates(good: Path, case: Path) -> None:
    """The good basics with every 1000th movie row repeated right after itself, retitled."""
    count = 0
    with (
        gzip.open(good / BASICS, "rt", encoding="utf-8", newline="\n") as src,
        gzip.open(case / BASICS, "wt", encoding="utf-8", newline="\n", compresslevel=1) as dst,
    ):
        dst.write(src.readline())
        movies = 0
        for line in src:
            dst.write(line)
            fields = line.split("\t")
            if len(fields) == 9 and fields[1] == "movie":
                movies += 1
                if movies % DUPLICATE_EVERY == 0:
                    fields[2] = "Duplicate of " + fields[2]
                    dst.write("\t".join(fields))
                    count += 1
    (case / "duplicates.json").write_text(json.dumps({"duplicates": count}))
    _link(good, case, RATINGS)


CASES: tuple[CorruptCase, ...] = (
    CorruptCase("truncated gzip (basics cut at 60 %)", "fail", _truncated(BASICS, 0.6)),
    CorruptCase("truncated gzip (ratings cut at 50 %)", "fail", _truncated(RATINGS, 0.5)),
    CorruptCase(
        "wrong header (basics)",
        "fail",
        _basics(BASICS_HEADER.replace("primaryTitle", "title") + SAMPLE_ROWS),
    ),
    CorruptCase(
        "wrong header (ratings header in basics)", "fail", _basics(RATINGS_HEADER + SAMPLE_ROWS)
    ),
    CorruptCase("missing header (basics)", "fail", _basics(SAMPLE_ROWS)),
    CorruptCase(
        "wrong header (ratings)",
        "fail",
        _ratings("tconst\tnumVotes\taverageRating\ntt0000001\t7.5\t100\n"),
    ),
    CorruptCase("empty file (0 bytes)", "fail", _basics(b"", gzipped=False)),
    CorruptCase("empty gzip", "fail", _basics("")),
    CorruptCase(
        "binary garbage (not gzip)", "fail", _basics(bytes(range(256)) * 64, gzipped=False)
    ),
    CorruptCase("binary garbage (gzipped)", "fail", _basics(bytes(range(256)) * 64)),
    CorruptCase("header-only basics", "fail", _basics(BASICS_HEADER)),
    CorruptCase("header-only ratings", "either", _ratings(RATINGS_HEADER)),
    CorruptCase("files swapped", "fail", _swapped),
    CorruptCase("missing basics file", "fail", _only(RATINGS)),
    CorruptCase("missing ratings file", "fail", _only(BASICS)),
    CorruptCase("ratings for unknown ids", "skip", _unknown_ratings),
    CorruptCase("duplicate tconsts", "skip", _duplicates),
)


def build_case(case: CorruptCase, good: Path, root: Path) -> Path:
    """The folder for `case` (cached; `ready` is written last and marks it complete)."""
    slug = "".join(c if c.isalnum() else "-" for c in case.name.lower()).strip("-")
    folder = root / slug
    marker = folder / "ready"
    if marker.exists() and marker.read_text() == str(good):
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    case.build(good, folder)
    marker.write_text(str(good))
    return folder
