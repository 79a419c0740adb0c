"""Synthetic IMDb files: exact format, determinism, scale and the quirks a loader must survive."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from movies import synthetic
from movies.synthetic import BASICS, MANIFEST, RATINGS, format_tconst, generate, read_manifest

GENRES = {
    "Action", "Adult", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary",
    "Drama", "Family", "Fantasy", "Film-Noir", "Game-Show", "History", "Horror", "Music",
    "Musical", "Mystery", "News", "Reality-TV", "Romance", "Sci-Fi", "Short", "Sport",
    "Talk-Show", "Thriller", "War", "Western",
}  # fmt: skip
TYPES = {
    "movie", "short", "tvEpisode", "tvSeries", "video", "tvMovie", "tvMiniSeries", "videoGame",
    "tvSpecial", "tvShort", "tvPilot",
}  # fmt: skip
TCONST = re.compile(r"tt[0-9]{7,}")
YEAR = re.compile(r"[0-9]{4}|\\N")
INT_OR_NULL = re.compile(r"[0-9]+|\\N")
RATING = re.compile(r"(10|[1-9])\.[0-9]")
SCALE = 0.002  # 23,000 title rows, about 1,400 movies


def read_lines(path: Path) -> list[str]:
    raw = gzip.decompress(path.read_bytes())
    assert b"\r" not in raw
    assert raw.endswith(b"\n")
    return raw.decode("utf-8").split("\n")[:-1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    generate(out, scale=SCALE, seed=7, malformed_every=5000)
    return out


@pytest.fixture(scope="module")
def basics(dataset: Path) -> list[list[str]]:
    lines = read_lines(dataset / BASICS)
    assert lines[0] == synthetic.BASICS_HEADER.rstrip("\n")
    return [line.split("\t") for line in lines[1:]]


@pytest.fixture(scope="module")
def ratings(dataset: Path) -> list[list[str]]:
    lines = read_lines(dataset / RATINGS)
    assert lines[0] == "tconst\taverageRating\tnumVotes"
    return [line.split("\t") for line in lines[1:]]


@pytest.fixture(scope="module")
def movies(basics: list[list[str]]) -> list[list[str]]:
    return [row for row in basics if len(row) == 9 and row[1] == "movie"]


def test_format_tconst_is_seven_digits_then_eight() -> None:
    assert format_tconst(1) == "tt0000001"
    assert format_tconst(9_999_999) == "tt9999999"
    assert format_tconst(10_000_000) == "tt10000000"
    assert format_tconst(36_123_456) == "tt36123456"
    with pytest.raises(ValueError, match="start at 1"):
        format_tconst(0)


def test_generate_same_seed_gives_identical_bytes(tmp_path: Path, dataset: Path) -> None:
    generate(tmp_path / "again", scale=SCALE, seed=7, malformed_every=5000)
    generate(tmp_path / "other", scale=SCALE, seed=8, malformed_every=5000)
    for name in (BASICS, RATINGS, MANIFEST):
        assert (tmp_path / "again" / name).read_bytes() == (dataset / name).read_bytes()
    assert (tmp_path / "other" / BASICS).read_bytes() != (dataset / BASICS).read_bytes()


def test_generate_leaves_no_temporary_files(dataset: Path) -> None:
    assert sorted(p.name for p in dataset.iterdir()) == sorted([BASICS, RATINGS, MANIFEST])


def test_generate_interrupted_leaves_no_complete_looking_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_chunks(*args, **kwargs):
        yield "tt0000001\tmovie\tA\tA\t0\t2000\t\\N\t90\tDrama\n", ""
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic.files, "row_chunks", failing_chunks)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path, scale=SCALE)
    assert list(tmp_path.iterdir()) == []
    assert read_manifest(tmp_path) is None


def test_generate_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        generate(tmp_path, scale=0)
    with pytest.raises(ValueError, match="malformed_every"):
        generate(tmp_path, scale=SCALE, malformed_every=-1)


def test_basics_rows_have_imdb_field_formats(basics: list[list[str]], dataset: Path) -> None:
    manifest = read_manifest(dataset)
    malformed = set(manifest["malformed_tconsts"])
    assert len(basics) == manifest["basics_rows"] == round(11_500_000 * SCALE)
    assert len(malformed) == len(basics) // 5000
    for row in basics:
        if row[0] in malformed:
            assert len(row) in (8, 10)
            assert row[1] == "movie"
            continue
        assert len(row) == 9, row
        tconst, kind, primary, original, adult, start, end, runtime, genres = row
        assert TCONST.fullmatch(tconst)
        assert kind in TYPES
        assert primary and original and "\\N" not in primary and "\\N" not in original
        assert adult in ("0", "1")
        assert YEAR.fullmatch(start) and YEAR.fullmatch(end)
        assert INT_OR_NULL.fullmatch(runtime)
        if genres != "\\N":
            names = genres.split(",")
            assert 1 <= len(names) <= 3 and set(names) <= GENRES
            assert names == sorted(names) and len(set(names)) == len(names)
    assert all(len(row) != 9 for row in basics if row[0] in malformed)


def test_tconsts_ascend_numerically_and_reach_eight_digits(basics: list[list[str]]) -> None:
    numbers = [int(row[0][2:]) for row in basics]
    assert all(a < b for a, b in zip(numbers, numbers[1:], strict=False))
    assert any(len(row[0]) == 9 for row in basics)
    assert any(len(row[0]) == 10 for row in basics)
    # String order disagrees with numeric order once 8-digit ids appear.
    assert [row[0] for row in basics] != sorted(row[0] for row in basics)


def test_ratings_rows_are_valid_and_follow_basics(
    ratings: list[list[str]], basics: list[list[str]], dataset: Path
) -> None:
    manifest = read_manifest(dataset)
    assert len(ratings) == manifest["ratings_rows"]
    position = {row[0]: i for i, row in enumerate(basics)}
    kinds = {row[0]: row[1] for row in basics}
    last = -1
    for tconst, rating, votes in ratings:
        assert RATING.fullmatch(rating) and 1.0 <= float(rating) <= 10.0
        assert votes.isdigit() and int(votes) >= 1
        assert position[tconst] > last
        last = position[tconst]
    rated_types = {kinds[row[0]] for row in ratings}
    assert "movie" in rated_types and len(rated_types) > 3


def test_row_counts_are_proportional_to_scale(tmp_path: Path, dataset: Path) -> None:
    generate(tmp_path, scale=SCALE * 2, seed=7)
    small, large = read_manifest(dataset), read_manifest(tmp_path)
    assert large["basics_rows"] == 2 * small["basics_rows"]
    for key in ("movies", "ratings_rows", "rated_movies"):
        assert 1.7 < large[key] / small[key] < 2.3, key
    # Shares as at full size: ~6 % movies, ~2/3 of them rated, ratings ~13.5 % of titles.
    assert 0.05 < large["movies"] / large["basics_rows"] < 0.07
    assert 0.6 < large["rated_movies"] / large["movies"] < 0.75
    assert 0.12 < large["ratings_rows"] / large["basics_rows"] < 0.15
    assert max(large["by_type"], key=large["by_type"].get) == "tvEpisode"
    assert set(large["by_type"]) == TYPES


def test_manifest_counts_match_files(
    dataset: Path, basics: list[list[str]], ratings: list[list[str]], movies: list[list[str]]
) -> None:
    manifest = read_manifest(dataset)
    movie_ids = {row[0] for row in movies}
    assert manifest["loadable_movies"] == len(movies)
    assert manifest["movies"] == len(movies) + len(manifest["malformed_tconsts"])
    assert manifest["rated_movies"] == sum(
        1 for row in ratings if row[0] in movie_ids or row[0] in manifest["malformed_tconsts"]
    )
    assert manifest["loadable_rated_movies"] == sum(1 for row in ratings if row[0] in movie_ids)


def test_titles_carry_the_quirks(basics: list[list[str]], movies: list[list[str]]) -> None:
    titles = [row[2] for row in basics if len(row) == 9]
    movie_titles = {row[2] for row in movies}
    assert {"NA", "null", "None", "NaN", "N/A", "nan", "NULL", "#N/A"} <= movie_titles
    assert any(t.startswith('"') for t in movie_titles)
    assert any('"' in t[1:] for t in movie_titles)
    assert sum(t.count('"') % 2 for t in titles) > 0  # unbalanced quotes too
    assert any("\\" in t[:-1] for t in movie_titles)
    assert any(t.endswith("\\") for t in movie_titles)  # a backslash right before the tab
    assert any(len(t) > 300 for t in movie_titles)
    assert any("," in t for t in titles) and any("'" in t for t in titles)
    originals = {row[3] for row in movies}
    text = "".join(movie_titles | originals)
    assert re.search("[À-ÿ]", text)  # accents
    assert re.search("[\u3040-\u30ff\u4e00-\u9fff]", text)  # Japanese / Chinese
    assert re.search("[\u0590-\u06ff]", text)  # Hebrew / Arabic (right to left)
    assert re.search("[\U0001f300-\U0001faff]", text)  # emoji, 4 bytes in UTF-8
    assert sum(row[2] != row[3] for row in movies) > len(movies) * 0.03


def test_movies_have_nulls_adults_ties_and_extremes(
    movies: list[list[str]], ratings: list[list[str]]
) -> None:
    assert any(row[5] == "\\N" for row in movies)
    assert any(row[7] == "\\N" for row in movies)
    assert any(row[8] == "\\N" for row in movies)
    assert any(row[4] == "1" for row in movies)
    assert len({row[5] for row in movies}) < len(movies) / 10  # many movies share a year
    movie_ids = {row[0] for row in movies}
    movie_ratings = [(float(r), int(v)) for t, r, v in ratings if t in movie_ids]
    assert len({r for r, _ in movie_ratings}) < len(movie_ratings) / 5  # ties in rating
    assert any(r == 10.0 and v < 10 for r, v in movie_ratings)
    assert any(v >= 1_000_000 for _, v in movie_ratings)
    assert len(movie_ids) > len(movie_ratings)  # some movies have no ratings row
    mean = sum(r for r, _ in movie_ratings) / len(movie_ratings)
    assert 5.5 < mean < 7.0


def test_generate_without_malformed_rows(tmp_path: Path) -> None:
    generate(tmp_path, scale=0.0005, malformed_every=0)
    lines = read_lines(tmp_path / BASICS)
    assert all(line.count("\t") == 8 for line in lines)
    assert read_manifest(tmp_path)["malformed_tconsts"] == []


def test_generate_across_chunks_is_deterministic_and_ordered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synthetic.rows, "CHUNK_ROWS", 1000)  # 12 chunks instead of one
    generate(tmp_path / "a", scale=0.001, seed=3, malformed_every=2500)
    generate(tmp_path / "b", scale=0.001, seed=3, malformed_every=2500)
    for name in (BASICS, RATINGS, MANIFEST):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    rows = [line.split("\t") for line in read_lines(tmp_path / "a" / BASICS)[1:]]
    numbers = [int(row[0][2:]) for row in rows]
    assert len(rows) == 11_500
    assert all(a < b for a, b in zip(numbers, numbers[1:], strict=False))
    manifest = read_manifest(tmp_path / "a")
    assert len(manifest["malformed_tconsts"]) == 4
    titles = {row[2] for row in rows if len(row) == 9 and row[1] == "movie"}
    assert {title for title, *_ in synthetic.FIXED_MOVIES} <= titles
