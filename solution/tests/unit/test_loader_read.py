"""The TSV reader and the pure transformations (pandas DataFrames), on nasty hand-written files
and small frames (no database)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from movies.loader import FormatError, LoadReport
from movies.loader.read import BASICS_COLUMNS, RATINGS_COLUMNS, TsvReader
from movies.loader.source import SourceFiles, local_file
from movies.loader.transform import (
    LINK_COLUMNS,
    MOVIE_FIELDS,
    csv_chunks,
    decode_text,
    drop_duplicates,
    genre_links,
    genre_names,
    genre_sizes,
    join_ratings,
    movie_rows,
    rarest_genre_first,
    select_movies,
    select_ratings,
    to_movie_rows,
)

NASTY = Path(__file__).resolve().parents[1] / "fixtures" / "nasty"
HEADER = "\t".join(BASICS_COLUMNS) + "\n"


def records(frame: pd.DataFrame) -> list[dict]:
    """The rows of an Arrow-backed frame as dicts of Python values (NULL as None)."""
    return pa.Table.from_pandas(frame, preserve_index=False).to_pylist()


def text_frame(columns: dict[str, list]) -> pd.DataFrame:
    """A frame of Arrow-backed columns, as the reader and the transformations hand them on."""
    return pa.table(columns).to_pandas(types_mapper=pd.ArrowDtype)


def read_all(path: Path, columns=BASICS_COLUMNS) -> tuple[TsvReader, list[dict]]:
    reader = TsvReader(path, columns)
    report = LoadReport(source=str(path))
    rows = [row for frame in reader.frames() for row in records(decode_text(frame, "text", report))]
    return reader, rows


def parse(folder: Path) -> tuple[list[dict], LoadReport]:
    from movies.loader.pipeline import parse_files

    report = LoadReport(source=str(folder))
    files = SourceFiles(
        local_file(folder, "title.basics.tsv"), local_file(folder, "title.ratings.tsv")
    )
    rows = records(to_movie_rows(parse_files(files, report)))
    return sorted(rows, key=lambda row: row["id"]), report


def test_reader_reads_only_backslash_n_as_null_and_keeps_quotes() -> None:
    reader, rows = read_all(NASTY / "title.basics.tsv")
    by_id: dict[str, dict] = {}
    for row in rows:
        by_id.setdefault(row["tconst"], row)
    assert by_id["tt0000002"]["primaryTitle"] == '"'
    assert by_id["tt0000001"]["primaryTitle"] == '"Quoted start'
    assert by_id["tt0000004"]["primaryTitle"] == "NA"
    assert by_id["tt0000004"]["originalTitle"] == "null"
    assert by_id["tt0000004"]["genres"] is None
    assert by_id["tt0000005"]["primaryTitle"] == "None"
    assert by_id["tt0000005"]["originalTitle"] == "NaN"
    assert by_id["tt0000006"]["primaryTitle"] == ""
    assert by_id["tt0000006"]["originalTitle"] is None
    assert by_id["tt0000009"]["primaryTitle"] == "C:\\path\\N and back\\\\slash \\"
    assert by_id["tt0000010"]["primaryTitle"] == "  spaced  "


def test_reader_skips_and_counts_rows_with_wrong_field_count_without_merging() -> None:
    reader, rows = read_all(NASTY / "title.basics.tsv")
    ids = [row["tconst"] for row in rows]
    assert "tt0000011" not in ids and "tt0000014" not in ids
    # The row after an unclosed quote is its own row, intact.
    assert "tt0000012" in ids and "tt0000013" in ids
    assert next(r for r in rows if r["tconst"] == "tt0000012")["genres"] == "Thriller"
    assert reader.bad_rows == 2  # 10 fields, 8 fields
    # An empty line reads as a row of empty strings: not a movie, dropped.
    assert reader.rows_read == 31


def test_reader_rejects_a_header_that_is_not_imdbs(tmp_path: Path) -> None:
    path = tmp_path / "title.basics.tsv"
    path.write_text(HEADER.replace("primaryTitle", "title") + "tt0000001\tmovie\n")
    with pytest.raises(FormatError, match=r"title.basics.tsv: line 1: .*missing primaryTitle"):
        read_all(path)


def test_reader_rejects_columns_in_the_wrong_order(tmp_path: Path) -> None:
    path = tmp_path / "title.ratings.tsv"
    path.write_text("tconst\tnumVotes\taverageRating\n")
    with pytest.raises(FormatError, match="wrong order"):
        read_all(path, RATINGS_COLUMNS)


def test_reader_rejects_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "title.basics.tsv.gz"
    with gzip.open(path, "wb"):
        pass
    with pytest.raises(FormatError, match="file is empty"):
        read_all(path)


def test_reader_accepts_a_header_only_file_as_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "title.basics.tsv"
    path.write_text(HEADER)
    reader, rows = read_all(path)
    assert rows == [] and reader.rows_read == 0


def test_reader_rejects_a_truncated_gzip(tmp_path: Path) -> None:
    data = (NASTY / "title.basics.tsv").read_bytes() * 200
    whole = gzip.compress(data)
    path = tmp_path / "title.basics.tsv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FormatError, match=r"title.basics.tsv.gz: cannot read"):
        read_all(path)


def test_reader_rejects_binary_garbage_named_gz(tmp_path: Path) -> None:
    path = tmp_path / "title.basics.tsv.gz"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(FormatError, match="not a gzip file"):
        read_all(path)


def test_reader_rejects_binary_garbage_as_a_header(tmp_path: Path) -> None:
    path = tmp_path / "title.basics.tsv"
    path.write_bytes(b"\x00\xff\xfe garbage\n\x01\x02\n")
    with pytest.raises(FormatError, match="header is not IMDb's"):
        read_all(path)


def test_reader_hands_on_a_row_that_is_not_utf8_as_raw_bytes(tmp_path: Path) -> None:
    """Not a reason to refuse the file: `decode_text` skips the row."""
    path = tmp_path / "title.basics.tsv"
    path.write_bytes(
        HEADER.encode() + b"tt0000001\tmovie\tBad \xff byte\tx\t0\t2000\t\\N\t90\tDrama\n"
    )
    (frame,) = TsvReader(path, BASICS_COLUMNS).frames()
    assert frame["primaryTitle"].tolist() == [b"Bad \xff byte"]
    assert frame["endYear"].isna().all()


# Each holds bytes PostgreSQL's text type refuses: a NUL, bytes that are no UTF-8 at all, a
# truncated sequence, an over-long encoding, an encoded surrogate, a code point past U+10FFFF.
UNSTORABLE = [
    b"a\x00b",
    b"\x00",
    b"Bad \xff",
    b"caf\xc3",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
]


@pytest.mark.parametrize("value", UNSTORABLE)
@pytest.mark.parametrize("column", ["tconst", "title", "genres"])
def test_rows_with_bytes_text_cannot_hold_are_skipped_and_counted(
    value: bytes, column: str
) -> None:
    columns = {
        "tconst": [b"tt0000001", b"tt0000002", b"tt0000003"],
        "title": ["Amélie".encode(), b"", None],
        "genres": [b"Drama", None, "Film-Noir,Ünïcode".encode()],
    }
    columns[column][1] = value
    frame = pa.table({k: pa.array(v, pa.binary()) for k, v in columns.items()}).to_pandas(
        types_mapper=pd.ArrowDtype
    )
    report = LoadReport(source="test")
    text = decode_text(frame, "basics: NUL or invalid UTF-8", report)
    assert report.skipped == {"basics: NUL or invalid UTF-8": 1}
    assert records(text) == [
        {"tconst": "tt0000001", "title": "Amélie", "genres": "Drama"},
        {"tconst": "tt0000003", "title": None, "genres": "Film-Noir,Ünïcode"},
    ]
    assert all(dtype == pd.ArrowDtype(pa.string()) for dtype in text.dtypes)


def test_decoding_text_that_is_all_storable_skips_nothing() -> None:
    frame = text_frame({"a": pa.array([b"x", None, "\u2028 \\N \t".encode()], pa.binary())})
    report = LoadReport(source="test")
    assert records(decode_text(frame, "reason", report)) == [
        {"a": "x"},
        {"a": None},
        {"a": "\u2028 \\N \t"},
    ]
    assert report.skipped == {}


def test_parse_keeps_movies_with_converted_values_and_counts_skips() -> None:
    rows, report = parse(NASTY)
    ids = [row["id"] for row in rows]
    assert "tt0000015" not in ids and "tt0000017" not in ids  # short, tvMovie
    assert "tt12345678" in ids and "tt99999999" in ids
    assert report.skipped == {
        "basics: wrong number of fields": 2,
        "basics: bad runtimeMinutes": 1,
        "basics: bad startYear": 1,
        "basics: bad isAdult": 1,
        "basics: bad tconst": 2,
        "basics: duplicate tconst": 1,
        "basics: missing primaryTitle": 1,
        "ratings: bad averageRating": 1,
        "ratings: bad numVotes": 1,
        "ratings: wrong number of fields": 1,
        "ratings: duplicate tconst": 1,
    }
    assert report.rows_read == 31 and report.ratings_rows_read == 11
    first = rows[ids.index("tt0000001")]
    assert first["title"] == '"Quoted start' and first["rating"] == "7.5"
    assert rows[ids.index("tt0000003")]["rating"] == "10.0"  # the first of two ratings rows
    assert rows[ids.index("tt0000004")]["rating"] is None  # its ratings row was bad
    assert rows[ids.index("tt0000027")]["is_adult"] is False  # isAdult \N
    assert rows[ids.index("tt0000025")]["is_adult"] is True
    assert report.movies == len(rows) == 17
    # tt9999999 and the short tt0000015 have ratings but no movie row.
    assert report.ratings_without_movie == 2


def test_copy_csv_keeps_empty_strings_distinct_from_null_and_quotes_quotes() -> None:
    frame = text_frame(
        {"a": ["", None, '"', 'x"y', "back\\slash"], "b": ["1", "2", None, "4", "5"]}
    )
    text = b"".join(csv_chunks(frame, rows=2)).decode()
    assert text.splitlines() == ['"","1"', ',"2"', '"""",', '"x""y","4"', '"back\\slash","5"']


def test_movie_csv_in_slices_is_the_csv_of_the_whole_table() -> None:
    from movies.loader.pipeline import parse_files
    from movies.loader.transform import mean_rating, movie_csv_chunks

    report = LoadReport(source=str(NASTY))
    files = SourceFiles(
        local_file(NASTY, "title.basics.tsv"), local_file(NASTY, "title.ratings.tsv")
    )
    joined = parse_files(files, report)
    mean = mean_rating(joined)
    whole = b"".join(csv_chunks(to_movie_rows(joined, mean)))
    assert whole and b"".join(movie_csv_chunks(joined, mean, rows=4)) == whole


def test_copy_reader_prefetches_chunks_in_order_and_raises_their_errors() -> None:
    from movies.loader.write import _ChunkReader

    with _ChunkReader(iter([b"abc", b"", b"defg"])) as reader:
        assert [reader.read(2), reader.read(5), reader.read(2), reader.read(9)] == [
            b"ab",
            b"c",
            b"de",
            b"fg",
        ]
        assert reader.read() == b""

    def failing():
        yield b"ok"
        raise ValueError("bad slice")

    with _ChunkReader(failing()) as reader:
        assert reader.read() == b"ok"
        with pytest.raises(ValueError, match="bad slice"):
            reader.read()


def test_copy_reader_stops_its_thread_when_the_copy_fails() -> None:
    """Leaving the reader (a COPY that failed after the first chunk) ends the producer, which
    would otherwise wait forever for room in the queue."""
    from movies.loader.write import _ChunkReader

    with _ChunkReader(b"x" for _ in range(1_000_000)) as reader:
        assert reader.read() == b"x"
        thread = reader._thread
    assert not thread.is_alive()


def test_genres_become_quoted_array_literals() -> None:
    rows, _ = parse(NASTY)
    by_id = {row["id"]: row for row in rows}
    assert by_id["tt0000003"]["genres"] == '{"Action","Adventure","Sci-Fi"}'
    assert by_id["tt0000004"]["genres"] == "{}"


def test_plain_and_gzip_files_read_the_same(tmp_path: Path) -> None:
    for name in ("title.basics.tsv", "title.ratings.tsv"):
        with open(NASTY / name, "rb") as src, gzip.open(tmp_path / (name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    assert parse(tmp_path)[0] == parse(NASTY)[0]


def test_genre_links_are_one_per_distinct_pair_and_none_for_null_genres() -> None:
    movies = text_frame(
        {
            "tconst": ["tt0000001", "tt0000002", "tt0000003"],
            "genres": ["Drama,Drama,Comedy", None, "Noir-Fiction"],
            "startYear": ["1999", "2001", None],
            "averageRating": ["7.5", "8.0", None],
            "numVotes": ["12", "3", None],
            "runtimeMinutes": ["95", None, "7"],
        }
    )
    assert genre_names(movies) == ["Comedy", "Drama", "Noir-Fiction"]
    links = genre_links(movies, {"Drama": 9, "Comedy": 6, "Noir-Fiction": 29, "War": 27})
    assert tuple(links.columns) == LINK_COLUMNS
    first = {"movie_id": "tt0000001", "source": "imdb", "year": "1999", "rating": "7.5"}
    first |= {"votes": "12", "runtime_minutes": "95"}
    first_bits = (1 << 6) | (1 << 9)
    third = {"movie_id": "tt0000003", "source": "imdb", "year": None, "rating": None}
    third |= {"votes": None, "runtime_minutes": "7"}
    assert records(links) == [
        {**first, "genre_id": 6, "genre_bits": first_bits},
        {**first, "genre_id": 9, "genre_bits": first_bits},
        {**third, "genre_id": 29, "genre_bits": 1 << 29},
    ]
    assert genre_sizes(links) == {6: 1, 9: 1, 29: 1}


def test_genre_bits_cover_every_genre_of_the_movie_and_skip_ids_beyond_the_bits() -> None:
    """Bits 0-62 of a signed bigint: genre 62 is the last with a bit, 63 and later have none
    (queries never narrow by them; the movie rows still answer for them)."""
    movies = text_frame(
        {
            "tconst": ["tt0000001", "tt10000002"],
            "genres": ["A,B,C", "C"],
            "startYear": ["1999", "2001"],
            "averageRating": [None, "1.0"],
            "numVotes": [None, "5"],
            "runtimeMinutes": [None, None],
        }
    )
    links = genre_links(movies, {"A": 1, "B": 62, "C": 63})
    assert [(link["genre_id"], link["genre_bits"]) for link in records(links)] == [
        (1, 2 | 1 << 62),
        (62, 2 | 1 << 62),
        (63, 2 | 1 << 62),
        (63, 0),
    ]
    assert len(genre_links(movies.iloc[:0], {"A": 1})) == 0


def test_movies_are_grouped_by_their_rarest_genre_rarest_first() -> None:
    """Noir (1 movie) < War (2) < Drama (4); ties of counts by name; no genre last; each group
    keeps the order it had."""
    movies = text_frame(
        {
            "tconst": [f"tt000000{i}" for i in range(1, 8)],
            "genres": ["Drama", "Drama,War", None, "Noir,Drama", "War", "Drama,Drama", "Zed"],
        }
    )
    ordered = rarest_genre_first(movies)
    assert ordered["tconst"].tolist() == [
        "tt0000004",  # Noir
        "tt0000007",  # Zed: also 1 movie, after Noir by name
        "tt0000002",  # War
        "tt0000005",
        "tt0000001",  # Drama
        "tt0000006",
        "tt0000003",  # no genre
    ]
    assert ordered.sort_values("tconst", ignore_index=True).equals(movies)
    no_genres = text_frame({"tconst": ["tt0000001"], "genres": pa.array([None], pa.string())})
    assert rarest_genre_first(no_genres).equals(no_genres)


def test_movie_rows_keep_title_type_movie_only_and_drop_the_column() -> None:
    basics = text_frame(
        {
            "tconst": pa.array([b"tt0000001", b"tt0000002", b"tt0000003", b"tt0000004"]),
            "titleType": pa.array([b"movie", b"tvMovie", None, b"movie"]),
            "primaryTitle": pa.array([b"A", b"B", b"C", b"D"]),
        }
    )
    movies = movie_rows(basics)
    assert list(movies.columns) == ["tconst", "primaryTitle"]
    assert movies["tconst"].tolist() == [b"tt0000001", b"tt0000004"]


def test_select_movies_counts_each_bad_row_under_its_first_reason() -> None:
    movies = text_frame(
        {
            "tconst": ["tt0000001", "tx0000002", "tt0000003", "tt0000004", "tt0000005", "tt06"],
            "primaryTitle": ["Good", "Bad id", None, "Bad year", "Bad genres", None],
            "originalTitle": [None, "x", "x", "x", "x", "x"],
            "isAdult": [None, "0", "1", "0", "0", "2"],
            "startYear": ["1999", "1999", "1999", "19999", None, "1999"],
            "runtimeMinutes": [None, "90", "90", "90", "90", "x"],
            "genres": ["Drama,War", "Drama", "Drama", "Drama", "Drama,,War", None],
        }
    )
    report = LoadReport(source="test")
    valid = select_movies(movies, report)
    assert valid["tconst"].tolist() == ["tt0000001"]
    assert list(valid.columns) == list(MOVIE_FIELDS)
    assert report.skipped == {
        "basics: bad tconst": 2,  # tx0000002; tt06 (also no title, bad isAdult and runtime)
        "basics: missing primaryTitle": 1,
        "basics: bad startYear": 1,
        "basics: bad genres": 1,
    }


def test_select_ratings_keeps_imdbs_ratings_and_whole_vote_counts() -> None:
    ratings = text_frame(
        {
            "tconst": ["tt0000001", "tt0000002", "tt0000003", "tt0000004", "tt0000005"],
            "averageRating": ["10.0", "10.1", "7", "6.5", "0.5"],
            "numVotes": ["5", "5", "1234567890", "0", "12"],
        }
    )
    report = LoadReport(source="test")
    assert select_ratings(ratings, report)["tconst"].tolist() == [
        "tt0000001",
        "tt0000004",
        "tt0000005",
    ]
    assert report.skipped == {"ratings: bad averageRating": 1, "ratings: bad numVotes": 1}


def test_drop_duplicates_keeps_the_first_of_each_tconst_in_file_order() -> None:
    ascending = text_frame(
        {"tconst": ["tt0000009", "tt0000010", "tt10000000"], "n": ["1", "2", "3"]}
    )
    report = LoadReport(source="test")
    assert drop_duplicates(ascending, "dup", report).equals(ascending) and report.skipped == {}
    repeated = text_frame(
        {"tconst": ["tt0000002", "tt0000001", "tt0000002", "tt0000001"], "n": ["1", "2", "3", "4"]}
    )
    kept = drop_duplicates(repeated, "dup", report)
    assert kept["n"].tolist() == ["1", "2"] and report.skipped == {"dup": 2}


def test_join_ratings_is_a_left_merge_that_counts_rated_movies_and_orphans() -> None:
    movies = text_frame(
        {"tconst": ["tt0000003", "tt0000001", "tt0000002"], "primaryTitle": ["C", "A", "B"]}
    )
    ratings = text_frame(
        {
            "tconst": ["tt0000001", "tt0000003", "tt0000009"],
            "averageRating": ["7.5", "8.0", "9.9"],
            "numVotes": ["10", "20", "30"],
        }
    )
    report = LoadReport(source="test")
    joined = join_ratings(movies, ratings, report)
    assert records(joined) == [
        {"tconst": "tt0000003", "primaryTitle": "C", "averageRating": "8.0", "numVotes": "20"},
        {"tconst": "tt0000001", "primaryTitle": "A", "averageRating": "7.5", "numVotes": "10"},
        {"tconst": "tt0000002", "primaryTitle": "B", "averageRating": None, "numVotes": None},
    ]
    assert (report.movies, report.rated_movies, report.ratings_without_movie) == (3, 2, 1)
