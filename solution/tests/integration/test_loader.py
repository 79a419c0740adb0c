"""The loader on a real PostgreSQL: nasty rows, reloads, failures, the lock, the shrink guard."""

from __future__ import annotations

import shutil
import threading
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from movies.cli import main
from movies.loader import LOAD_LOCK, LoadError, LoadInProgressError, ShrinkError, run_load, write

NASTY = Path(__file__).resolve().parents[1] / "fixtures" / "nasty"
BASICS_HEADER = (
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\n"
)


def movie(engine: sa.Engine, tconst: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM movie WHERE id = :id"), {"id": tconst})
        found = row.mappings().first()
    return dict(found) if found else None


def scalar(engine: sa.Engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def staging_tables(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT relname FROM pg_class WHERE relname LIKE '%\\_next%'")
            ).scalars()
        )


def index_names(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT tablename, indexname FROM pg_indexes WHERE tablename IN "
                "('movie_imdb', 'movie_genre_imdb') ORDER BY 1, 2"
            )
        ).all()


def write_files(folder: Path, basics: list[str], ratings: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "title.basics.tsv").write_text(BASICS_HEADER + "".join(r + "\n" for r in basics))
    (folder / "title.ratings.tsv").write_text(
        "tconst\taverageRating\tnumVotes\n" + "".join(r + "\n" for r in ratings)
    )
    return folder


def movie_line(tconst: str, title: str, year: str = "2000", genres: str = "Drama") -> str:
    return f"{tconst}\tmovie\t{title}\t{title}\t0\t{year}\t\\N\t90\t{genres}"


def test_nasty_rows_load_exactly(engine: sa.Engine, database_url: str, tmp_path: Path) -> None:
    report = run_load(database_url, str(NASTY), downloads=tmp_path)
    assert movie(engine, "tt0000002")["title"] == '"'
    assert movie(engine, "tt0000004")["title"] == "NA"
    assert movie(engine, "tt0000004")["original_title"] == "null"
    assert movie(engine, "tt0000004")["genres"] == []
    assert movie(engine, "tt0000005")["original_title"] == "NaN"
    assert movie(engine, "tt0000005")["year"] is None
    assert movie(engine, "tt0000006")["title"] == ""
    assert movie(engine, "tt0000006")["original_title"] is None
    assert movie(engine, "tt0000009")["title"] == "C:\\path\\N and back\\\\slash \\"
    assert movie(engine, "tt0000009")["original_title"] == "\\N\\"
    assert movie(engine, "tt0000010")["title"] == "  spaced  "
    unicode = movie(engine, "tt12345678")
    assert unicode["title"] == "Été 85 – 東京物語 🎬"
    assert (unicode["rating"], unicode["votes"]) == (Decimal("1.0"), 1)
    assert len(movie(engine, "tt0000008")["title"]) > 300
    assert movie(engine, "tt0000001")["title"] == '"Quoted start'  # not the later duplicate
    assert movie(engine, "tt0000013")["title"] == 'Next line after "unclosed"'
    for skipped in ("tt0000011", "tt0000014", "tt0000015", "tt0000019", "tt0000021", "tt123"):
        assert movie(engine, skipped) is None
    unrated = movie(engine, "tt0000005")
    assert (unrated["rating"], unrated["votes"]) == (None, None)
    assert movie(engine, "tt99999999")["runtime_minutes"] == 51420
    assert movie(engine, "tt0000027")["genres"] == ["Drama", "Drama"]
    assert scalar(engine, "SELECT count(*) FROM movie_genre WHERE movie_id = 'tt0000027'") == 1
    assert scalar(engine, "SELECT count(*) FROM genre WHERE name = 'Noir-Fiction'") == 1
    assert report.movies == 17 and report.rated_movies == 5
    assert report.genre_links == scalar(engine, "SELECT count(*) FROM movie_genre_imdb")
    # Each link repeats its movie's sort keys but title and score; each genre knows its number
    # of movies, in all and per year.
    assert 0 == scalar(
        engine,
        "SELECT count(*) FROM movie_genre_imdb AS l JOIN movie_imdb AS m ON m.id = l.movie_id "
        "WHERE (l.year, l.rating, l.votes, l.runtime_minutes) "
        "IS DISTINCT FROM (m.year, m.rating, m.votes, m.runtime_minutes)",
    )
    assert scalar(engine, "SELECT count(*) FROM movie_genre_imdb WHERE votes IS NOT NULL") > 0
    assert 0 == scalar(
        engine,
        "SELECT count(*) FROM (SELECT genre_id, year, imdb_movies FROM genre_year "
        "EXCEPT SELECT genre_id, year, count(*) FROM movie_genre_imdb WHERE year IS NOT NULL "
        "GROUP BY 1, 2) AS unlike",
    )
    assert scalar(engine, "SELECT sum(imdb_movies) FROM genre_year") == scalar(
        engine, "SELECT count(*) FROM movie_genre_imdb WHERE year IS NOT NULL"
    )
    # ... and the bits of all its movie's genres.
    assert 0 == scalar(
        engine,
        "SELECT count(*) FROM movie_genre_imdb AS l JOIN movie_imdb AS m ON m.id = l.movie_id "
        "WHERE l.genre_bits <> (SELECT bit_or(1::bigint << g.id) FROM genre AS g "
        "WHERE g.name = ANY (m.genres))",
    )
    assert 0 == scalar(
        engine,
        "SELECT count(*) FROM genre WHERE imdb_movies <> "
        "(SELECT count(*) FROM movie_genre_imdb WHERE genre_id = genre.id)",
    )
    assert scalar(engine, "SELECT imdb_movies FROM genre WHERE name = 'Noir-Fiction'") == 1
    assert scalar(engine, "SELECT movies FROM dataset_load") == 17
    assert staging_tables(engine) == []


def test_report_lists_counts_reasons_and_phases(database_url: str, tmp_path: Path) -> None:
    text = run_load(database_url, str(NASTY), downloads=tmp_path).render()
    for expected in (
        "rows read                31 basics, 11 ratings",
        "movies                   17",
        "rated movies             5",
        "basics: bad runtimeMinutes",
        "basics: wrong number of fields     2",
        "ratings without a movie  2",
        "download",
        "parse",
        "copy",
        "index",
        "swap",
        "total",
    ):
        assert expected in text


def test_swap_keeps_the_schema_index_and_constraint_names(engine, database_url, tmp_path):
    before = index_names(engine)
    run_load(database_url, str(NASTY), downloads=tmp_path)
    run_load(database_url, str(NASTY), downloads=tmp_path)
    assert index_names(engine) == before
    with engine.connect() as conn:
        constraints = conn.execute(
            sa.text(
                "SELECT conrelid::regclass::text, conname FROM pg_constraint "
                "WHERE conrelid IN ('movie_imdb'::regclass, 'movie_genre_imdb'::regclass) "
                "ORDER BY 1, 2"
            )
        ).all()
        # Every partition index is attached to its parent's index.
        unattached = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_index AS x WHERE x.indrelid IN "
                "('movie_imdb'::regclass, 'movie_genre_imdb'::regclass) "
                "AND NOT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = x.indexrelid)"
            )
        ).scalar()
    assert ("movie_imdb", "movie_imdb_id_is_tconst") in constraints
    assert not any("next" in name for _, name in constraints)
    assert unattached == 0


def test_reload_reflects_the_new_file_and_keeps_user_movies(engine, database_url, tmp_path):
    first = write_files(
        tmp_path / "v1",
        [
            movie_line("tt0000001", "Stays"),
            movie_line("tt0000002", "Goes"),
            movie_line("tt0000003", "Old title", genres="Comedy"),
        ],
        ["tt0000001\t7.0\t10", "tt0000003\t5.0\t20"],
    )
    run_load(database_url, str(first), downloads=tmp_path)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO movie_user (title, genres) VALUES ('Mine', '{Drama}')"))
    second = write_files(
        tmp_path / "v2",
        [
            movie_line("tt0000001", "Stays"),
            movie_line("tt0000003", "New title", genres="Horror"),
            movie_line("tt10000004", "Added"),
        ],
        ["tt0000001\t7.5\t11"],
    )
    run_load(database_url, str(second), downloads=tmp_path)
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM movie_imdb ORDER BY id")).scalars().all()
        links = conn.execute(
            sa.text(
                "SELECT movie_id, name FROM movie_genre_imdb JOIN genre ON genre.id = genre_id "
                "ORDER BY 1"
            )
        ).all()
    assert ids == ["tt0000001", "tt0000003", "tt10000004"]
    changed = movie(engine, "tt0000003")
    assert (changed["title"], changed["genres"], changed["rating"]) == (
        "New title",
        ["Horror"],
        None,
    )
    assert movie(engine, "tt0000001")["rating"] == Decimal("7.5")
    assert links == [("tt0000001", "Drama"), ("tt0000003", "Horror"), ("tt10000004", "Drama")]
    assert scalar(engine, "SELECT title FROM movie_user") == "Mine"
    assert scalar(engine, "SELECT count(*) FROM dataset_load") == 2


def test_failure_after_copy_leaves_old_data_and_no_staging(
    engine, database_url, tmp_path, monkeypatch
):
    run_load(database_url, str(NASTY), downloads=tmp_path)
    v2 = write_files(
        tmp_path / "v2", [movie_line(f"tt{n:07d}", f"New {n}") for n in range(1, 40)], []
    )

    def fail(cur) -> None:
        cur.execute("SELECT count(*) FROM movie_imdb_next")
        assert cur.fetchone()[0] == 39  # the COPY happened
        cur.execute("SELECT 1 / 0")

    monkeypatch.setattr(write, "analyze", fail)
    with pytest.raises(LoadError, match="division by zero"):
        run_load(database_url, str(v2), downloads=tmp_path)
    assert movie(engine, "tt0000001")["title"] == '"Quoted start'
    assert scalar(engine, "SELECT count(*) FROM movie_imdb") == 17
    assert scalar(engine, "SELECT count(*) FROM dataset_load") == 1
    assert staging_tables(engine) == []


def test_readers_see_old_data_until_commit(engine, database_url, tmp_path, monkeypatch):
    run_load(database_url, str(NASTY), downloads=tmp_path)
    v2 = write_files(
        tmp_path / "v2", [movie_line(f"tt{n:07d}", f"New {n}") for n in range(1, 40)], []
    )
    seen: list[int] = []
    real_swap = write.swap

    def swap_and_look(cur, renames) -> None:
        seen.append(scalar(engine, "SELECT count(*) FROM movie WHERE source = 'imdb'"))
        real_swap(cur, renames)

    monkeypatch.setattr(write, "swap", swap_and_look)
    run_load(database_url, str(v2), downloads=tmp_path)
    assert seen == [17]
    assert scalar(engine, "SELECT count(*) FROM movie WHERE source = 'imdb'") == 39


def test_cli_load_fails_cleanly_on_a_corrupt_second_file(engine, database_url, tmp_path):
    run_load(database_url, str(NASTY), downloads=tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(NASTY, broken)
    (broken / "title.basics.tsv").unlink()
    (broken / "title.basics.tsv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage" * 50)
    result = CliRunner().invoke(
        main, ["load", "--source", str(broken)], env=cli_env(database_url, tmp_path)
    )
    assert result.exit_code != 0
    assert "title.basics.tsv.gz" in result.output and "Traceback" not in result.output
    assert scalar(engine, "SELECT count(*) FROM movie_imdb") == 17
    assert staging_tables(engine) == []


def test_second_loader_fails_fast_while_one_holds_the_lock(database_url, tmp_path):
    holder = psycopg2.connect(sa.make_url(database_url).render_as_string(hide_password=False))
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK,))
        with pytest.raises(LoadInProgressError, match="another load is in progress"):
            run_load(database_url, str(NASTY), downloads=tmp_path)
    finally:
        holder.rollback()
        holder.close()
    run_load(database_url, str(NASTY), downloads=tmp_path)


def test_shrink_guard_refuses_without_force_and_accepts_with_force(engine, database_url, tmp_path):
    run_load(database_url, str(NASTY), downloads=tmp_path)
    small = write_files(tmp_path / "small", [movie_line("tt0000001", "Only one")], [])
    with pytest.raises(ShrinkError, match=r"17 movies with 1 .*--force"):
        run_load(database_url, str(small), downloads=tmp_path)
    assert scalar(engine, "SELECT count(*) FROM movie_imdb") == 17
    run_load(database_url, str(small), downloads=tmp_path, force=True)
    assert scalar(engine, "SELECT count(*) FROM movie_imdb") == 1


def test_header_only_files_are_stopped_by_the_shrink_guard(engine, database_url, tmp_path):
    run_load(database_url, str(NASTY), downloads=tmp_path)
    empty = write_files(tmp_path / "empty", [], [])
    with pytest.raises(ShrinkError, match="17 movies with 0"):
        run_load(database_url, str(empty), downloads=tmp_path)
    assert scalar(engine, "SELECT count(*) FROM movie_imdb") == 17


def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "MOVIES_DATA_DIR": str(tmp_path / "data")}


def test_cli_load_prints_the_report(engine, database_url, tmp_path):
    result = CliRunner().invoke(
        main, ["load", "--source", str(NASTY)], env=cli_env(database_url, tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert "movies                   17" in result.output
    assert scalar(engine, "SELECT count(*) FROM movie_imdb") == 17


@pytest.mark.parametrize("missing", ["folder", "file"])
def test_cli_load_bad_source_is_a_clear_error(database_url, tmp_path, missing):
    folder = tmp_path / "src"
    if missing == "file":
        folder.mkdir()
        (folder / "title.basics.tsv.gz").write_bytes(b"")
    result = CliRunner().invoke(
        main, ["load", "--source", str(folder)], env=cli_env(database_url, tmp_path)
    )
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    expected = "does not exist" if missing == "folder" else "missing title.ratings.tsv.gz"
    assert expected in result.output and str(folder) in result.output


def test_unreachable_database_is_a_load_error(tmp_path):
    with pytest.raises(LoadError, match="database error while applying the schema"):
        run_load(
            "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2",
            str(NASTY),
            downloads=tmp_path,
        )


def test_swap_waits_for_readers_and_retries(engine, database_url, tmp_path, monkeypatch, caplog):
    run_load(database_url, str(NASTY), downloads=tmp_path)
    monkeypatch.setattr(write, "SWAP_LOCK_TIMEOUT", "100ms")
    v2 = write_files(tmp_path / "v2", [movie_line(f"tt{n:07d}", f"N{n}") for n in range(30)], [])
    real_swap = write.swap
    reader = engine.connect()
    timer = threading.Timer(0.5, reader.close)

    def swap_while_reading(cur, renames) -> None:
        reader.execute(sa.text("SELECT count(*) FROM movie"))  # holds its lock for 0.5 s
        timer.start()
        real_swap(cur, renames)

    monkeypatch.setattr(write, "swap", swap_while_reading)
    try:
        run_load(database_url, str(v2), downloads=tmp_path)
    finally:
        timer.join()
    assert "swap attempt 1/5: tables busy; retrying" in caplog.text
    assert scalar(engine, "SELECT count(*) FROM movie_imdb") == 30


def test_swap_gives_up_when_readers_never_leave(engine, database_url, tmp_path, monkeypatch):
    run_load(database_url, str(NASTY), downloads=tmp_path)
    monkeypatch.setattr(write, "SWAP_LOCK_TIMEOUT", "50ms")
    monkeypatch.setattr(write, "SWAP_ATTEMPTS", 2)
    v2 = write_files(tmp_path / "v2", [movie_line(f"tt{n:07d}", f"N{n}") for n in range(30)], [])
    real_swap = write.swap
    with engine.connect() as reader:

        def swap_while_reading(cur, renames) -> None:
            reader.execute(sa.text("SELECT count(*) FROM movie"))  # holds its lock
            real_swap(cur, renames)

        monkeypatch.setattr(write, "swap", swap_while_reading)
        with pytest.raises(LoadError, match="could not lock the movie tables"):
            run_load(database_url, str(v2), downloads=tmp_path)
    assert scalar(engine, "SELECT count(*) FROM movie_imdb") == 17
    assert staging_tables(engine) == []
