"""Corrupt input through `movies load`: one clear error line, a non-zero exit, the data intact.

Every case first loads a small, valid but nasty data set (bare quotes, `\\N`, titles `NA` and
`null`, a backslash, unicode, an 8-digit tconst), then loads a broken copy of it with `--force`
(so the shrink guard is not what refuses it) and checks that the movies already loaded are
exactly what they were and that no staging table is left behind. A header-only basics file is
refused, even with `--force` (it would empty the table). Ratings for unknown ids, duplicate
tconsts and rows holding bytes PostgreSQL's text type refuses (a NUL, bytes that are not UTF-8)
are not errors: the load succeeds, skips those rows and counts them.
"""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from movies.cli import main

BASICS = "title.basics.tsv.gz"
RATINGS = "title.ratings.tsv.gz"
BASICS_HEADER = (
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\n"
)
RATINGS_HEADER = "tconst\taverageRating\tnumVotes\n"
BASICS_ROWS = (
    'tt0000001\tmovie\tA "quoted" title\t"Original\t0\t1999\t\\N\t90\tDrama\n'
    "tt0000002\tmovie\tNA\tNA\t0\t\\N\t\\N\t\\N\t\\N\n"
    "tt0000003\tmovie\tnull\tNone\t0\t2001\t\\N\t120\tComedy,Romance\n"
    "tt0000004\tshort\tA short, not a movie\tA short\t0\t2001\t\\N\t5\tShort\n"
    "tt0000005\tmovie\tLove\\Hate\tLove\\Hate\t0\t1950\t\\N\t88\tFilm-Noir\n"
    "tt12345678\tmovie\tÜnïcödé 🎬 東京\tÜnïcödé\t1\t2024\t\\N\t101\tAdult,Drama\n"
)
RATINGS_ROWS = "tt0000001\t7.5\t1000\ntt0000003\t6.1\t12\ntt0000004\t5.0\t3\ntt12345678\t10.0\t5\n"
MOVIES = ["tt0000001", "tt0000002", "tt0000003", "tt0000005", "tt12345678"]


def write_gz(path: Path, text: str) -> None:
    with gzip.open(path, "wt", encoding="utf-8", newline="\n") as out:
        out.write(text)


def write_source(folder: Path, basics: str, ratings: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_gz(folder / BASICS, basics)
    write_gz(folder / RATINGS, ratings)
    return folder


def load(database_url: str, source: Path, *, force: bool = True) -> Result:
    args = ["load", "--source", str(source)] + (["--force"] if force else [])
    return CliRunner().invoke(main, args, env={"DATABASE_URL": database_url})


def snapshot(engine: sa.Engine) -> dict:
    """Everything a load may change, to compare before and after a failed one."""
    with engine.connect() as conn:
        movies = conn.execute(
            sa.text(
                "SELECT id, title, original_title, year, runtime_minutes, rating, votes, "
                "is_adult, genres FROM movie_imdb ORDER BY id"
            )
        ).all()
        links = conn.execute(
            sa.text("SELECT movie_id, genre_id FROM movie_genre_imdb ORDER BY 1, 2")
        ).all()
        loads = conn.execute(sa.text("SELECT count(*) FROM dataset_load")).scalar_one()
    return {"movies": movies, "links": links, "loads": loads}


def staging_tables(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relname LIKE 'movie%\\_next' "
                    "OR relname LIKE 'movie%\\_old'"
                )
            ).scalars()
        )


@pytest.fixture
def good_source(tmp_path: Path) -> Path:
    return write_source(
        tmp_path / "good", BASICS_HEADER + BASICS_ROWS, RATINGS_HEADER + RATINGS_ROWS
    )


@pytest.fixture
def loaded(database_url: str, engine: sa.Engine, good_source: Path) -> dict:
    """The database with the good data set loaded; returns its snapshot."""
    result = load(database_url, good_source, force=False)
    assert result.exit_code == 0, result.output
    state = snapshot(engine)
    assert [row.id for row in state["movies"]] == MOVIES
    return state


def broken(build: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    """A case builder: copy the good files into the case folder, then break them."""

    def make(good: Path, folder: Path) -> None:
        shutil.copytree(good, folder)
        build(good, folder)

    return make


def _replace_basics(text: str) -> Callable[[Path, Path], None]:
    return broken(lambda _good, folder: write_gz(folder / BASICS, text))


def _replace_ratings(text: str) -> Callable[[Path, Path], None]:
    return broken(lambda _good, folder: write_gz(folder / RATINGS, text))


def _raw_basics(data: bytes) -> Callable[[Path, Path], None]:
    return broken(lambda _good, folder: (folder / BASICS).write_bytes(data))


def _truncate(name: str) -> Callable[[Path, Path], None]:
    def cut(_good: Path, folder: Path) -> None:
        # Enough distinct rows (not movies, not rated movies) that the cut lands inside the
        # deflate stream rather than in the gzip trailer.
        if name == BASICS:
            extra = "".join(
                f"tt{2000000 + i}\ttvEpisode\tEpisode {i}\t\\N\t0\t2001\t\\N\t30\tDrama\n"
                for i in range(3000)
            )
            write_gz(folder / name, BASICS_HEADER + BASICS_ROWS + extra)
        else:
            extra = "".join(f"tt{2000000 + i}\t7.0\t{i}\n" for i in range(3000))
            write_gz(folder / name, RATINGS_HEADER + RATINGS_ROWS + extra)
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return broken(cut)


def _delete(name: str) -> Callable[[Path, Path], None]:
    return broken(lambda _good, folder: (folder / name).unlink())


def _swap_files(_good: Path, folder: Path) -> None:
    (folder / BASICS).rename(folder / "tmp")
    (folder / RATINGS).rename(folder / BASICS)
    (folder / "tmp").rename(folder / RATINGS)


FAILING_CASES: dict[str, Callable[[Path, Path], None]] = {
    "truncated basics gzip": _truncate(BASICS),
    "truncated ratings gzip": _truncate(RATINGS),
    "wrong basics header": _replace_basics(
        BASICS_HEADER.replace("primaryTitle", "title") + BASICS_ROWS
    ),
    "ratings header in basics": _replace_basics(RATINGS_HEADER + BASICS_ROWS),
    "missing basics header": _replace_basics(BASICS_ROWS),
    "wrong ratings header": _replace_ratings("tconst\tnumVotes\taverageRating\n" + RATINGS_ROWS),
    "missing ratings header": _replace_ratings(RATINGS_ROWS),
    "empty basics file": _raw_basics(b""),
    "empty basics gzip": _replace_basics(""),
    "binary garbage": _raw_basics(bytes(range(256)) * 16),
    "gzipped binary garbage": broken(
        lambda _good, folder: (folder / BASICS).write_bytes(gzip.compress(bytes(range(256)) * 16))
    ),
    "files swapped": broken(_swap_files),
    "missing basics file": _delete(BASICS),
    "missing ratings file": _delete(RATINGS),
}


@pytest.mark.parametrize("case", FAILING_CASES)
def test_load_of_corrupt_input_fails_clearly_and_keeps_the_data(
    case: str, database_url: str, engine: sa.Engine, loaded: dict, good_source: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "case"
    FAILING_CASES[case](good_source, folder)

    result = load(database_url, folder)

    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    assert len(last) > len("Error: ") + 10
    assert snapshot(engine) == loaded
    assert staging_tables(engine) == []


def test_load_of_a_missing_source_folder_fails_clearly(
    database_url: str, engine: sa.Engine, loaded: dict, tmp_path: Path
) -> None:
    result = load(database_url, tmp_path / "no-such-folder")

    assert result.exit_code not in (0, None)
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert snapshot(engine) == loaded


@pytest.mark.parametrize("force", [False, True])
def test_header_only_basics_is_refused_even_with_force(
    database_url: str, engine: sa.Engine, loaded: dict, tmp_path: Path, force: bool
) -> None:
    folder = write_source(tmp_path / "empty", BASICS_HEADER, RATINGS_HEADER + RATINGS_ROWS)

    result = load(database_url, folder, force=force)

    assert result.exit_code not in (0, None)
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert snapshot(engine) == loaded


def test_ratings_for_unknown_ids_are_skipped_and_counted(
    database_url: str, engine: sa.Engine, loaded: dict, tmp_path: Path
) -> None:
    unknown = "tt9999999\t8.0\t50\ntt99999999\t9.9\t7\n"
    folder = write_source(
        tmp_path / "unknown", BASICS_HEADER + BASICS_ROWS, RATINGS_HEADER + RATINGS_ROWS + unknown
    )

    result = load(database_url, folder)

    assert result.exit_code == 0, result.output
    # tt0000004 (a short) and the two unknown ids: three ratings rows without a movie.
    assert "ratings without a movie  3" in result.stdout
    after = snapshot(engine)
    assert after["movies"] == loaded["movies"]
    assert after["links"] == loaded["links"]
    assert after["loads"] == loaded["loads"] + 1


def test_duplicate_tconsts_are_skipped_and_counted(
    database_url: str, engine: sa.Engine, loaded: dict, tmp_path: Path
) -> None:
    duplicates = (
        "tt0000001\tmovie\tA second tt0000001\t\\N\t0\t2005\t\\N\t95\tAction\n"
        "tt12345678\tmovie\tA second 8-digit id\t\\N\t0\t2006\t\\N\t96\tWar\n"
    )
    folder = write_source(
        tmp_path / "duplicates", BASICS_HEADER + BASICS_ROWS + duplicates, RATINGS_HEADER
    )

    result = load(database_url, folder)

    assert result.exit_code == 0, result.output
    assert "basics: duplicate tconst" in result.stdout
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM movie_imdb ORDER BY id")).scalars().all()
        skipped = conn.execute(
            sa.text("SELECT skipped_rows FROM dataset_load ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    assert ids == MOVIES
    assert skipped >= 2


# One row of a file holding a byte PostgreSQL's text type refuses: the row is skipped and counted,
# everything else loads. Each extra row would be a new movie (tt0000009) or the rating of an
# unrated one (tt0000002).
MOVIE_ROW = b"tt0000009\tmovie\tTitle\tOriginal\t0\t2000\t\\N\t90\tDrama,War\n"
RATING_ROW = b"tt0000002\t8.1\t77\n"
UNSTORABLE_ROWS: dict[str, tuple[str, bytes]] = {
    "NUL in a title": (BASICS, MOVIE_ROW.replace(b"\tTitle", b"\tTi\x00tle")),
    "NUL in an original title": (BASICS, MOVIE_ROW.replace(b"Original", b"\x00")),
    "NUL in a genre": (BASICS, MOVIE_ROW.replace(b"War", b"W\x00r")),
    "NUL in a tconst": (BASICS, MOVIE_ROW.replace(b"tt0000009", b"tt000\x000009")),
    "not UTF-8 in a title": (BASICS, MOVIE_ROW.replace(b"Title", b"\xff\xfe")),
    "Latin-1 in an original title": (
        BASICS,
        MOVIE_ROW.replace(b"Original", "Amélie".encode("latin-1")),
    ),
    "encoded surrogate in a genre": (BASICS, MOVIE_ROW.replace(b"War", b"\xed\xa0\x80")),
    "truncated UTF-8 in a runtime": (BASICS, MOVIE_ROW.replace(b"\t90\t", b"\t9\xc3\t")),
    "NUL in a vote count": (RATINGS, RATING_ROW.replace(b"77", b"7\x007")),
    "not UTF-8 in a rating": (RATINGS, RATING_ROW.replace(b"8.1", b"8\xb71")),
}


@pytest.mark.parametrize("case", UNSTORABLE_ROWS)
def test_a_row_with_bytes_text_cannot_hold_is_skipped_and_counted(
    case: str, database_url: str, engine: sa.Engine, loaded: dict, good_source: Path, tmp_path: Path
) -> None:
    name, row = UNSTORABLE_ROWS[case]
    folder = tmp_path / "case"
    shutil.copytree(good_source, folder)
    with gzip.open(folder / name, "ab") as out:
        out.write(row)

    result = load(database_url, folder)

    assert result.exit_code == 0, result.output
    reason = "basics" if name == BASICS else "ratings"
    assert re.search(rf"^ +{reason}: NUL or invalid UTF-8 +1$", result.stdout, re.MULTILINE), (
        result.stdout
    )
    after = snapshot(engine)
    assert after["movies"] == loaded["movies"]
    assert after["links"] == loaded["links"]
    assert after["loads"] == loaded["loads"] + 1
    with engine.connect() as conn:
        skipped = conn.execute(
            sa.text("SELECT skipped_rows FROM dataset_load ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    assert skipped == 1
