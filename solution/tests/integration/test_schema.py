from decimal import Decimal

import pytest
import sqlalchemy as sa


def test_schema_applies_twice_and_seeds_genres(engine: sa.Engine) -> None:
    from movies.schema import apply_schema

    apply_schema(engine)
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM genre ORDER BY name")).scalars().all()
    assert len(names) == 28
    assert "Film-Noir" in names and "Sci-Fi" in names


def test_user_movie_ids_never_look_like_tconsts(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        new_id = conn.execute(
            sa.text("INSERT INTO movie_user (title) VALUES ('Mine') RETURNING id")
        ).scalar_one()
    assert new_id.startswith("um") and not new_id.startswith("tt")


def test_up_to_date_schema_is_not_reapplied_behind_a_long_reader(engine: sa.Engine) -> None:
    """A long reader of `movie` (an export) must not stall the API's start or a load."""
    from movies.schema import apply_schema

    reader = engine.connect()
    try:
        reader.execute(sa.text("SELECT count(*) FROM movie"))  # holds ACCESS SHARE until rollback
        starter = sa.create_engine(engine.url, connect_args={"options": "-c lock_timeout=500"})
        try:
            assert apply_schema(starter) is False
        finally:
            starter.dispose()
    finally:
        reader.rollback()
        reader.close()


def test_changed_scripts_are_applied_again(engine: sa.Engine) -> None:
    from movies.schema import apply_schema

    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_state SET digest = 'old'"))
    assert apply_schema(engine) is True
    assert apply_schema(engine) is False


def test_scripts_may_contain_percent_signs(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from movies import schema

    scripts = schema.schema_scripts() + [
        ("99-percent.sql", "-- 100 % sure\nCOMMENT ON TABLE genre IS 'names, 100 %';")
    ]
    monkeypatch.setattr(schema, "schema_scripts", lambda: scripts)
    assert schema.apply_schema(engine) is True
    with engine.connect() as conn:
        comment = conn.execute(sa.text("SELECT obj_description('genre'::regclass)")).scalar()
    assert comment == "names, 100 %"


OLD_DESCENDING_INDEXES = {
    "movie_year_desc_idx": "year DESC NULLS LAST, id DESC",
    "movie_rating_desc_idx": "rating DESC NULLS LAST, id DESC",
    "movie_votes_desc_idx": "votes DESC NULLS LAST, id DESC",
    "movie_runtime_desc_idx": "runtime_minutes DESC NULLS LAST, id DESC",
    "movie_score_desc_idx": "score DESC NULLS LAST, id DESC",
}


def test_upgrade_drops_the_descending_sort_indexes(engine: sa.Engine) -> None:
    """A database made by an earlier schema loses its descending indexes, partitions included:
    the ascending ones read backward serve those sorts, and a load rebuilds every index the live
    partition has."""
    from movies.schema import apply_schema

    def descending_indexes(table: str) -> set[str]:
        with engine.connect() as conn:
            return set(
                conn.execute(
                    sa.text(
                        "SELECT indexrelid::regclass::text FROM pg_index "
                        "WHERE indrelid = CAST(:table AS regclass) "
                        "AND pg_get_indexdef(indexrelid) LIKE '%DESC%'"
                    ),
                    {"table": table},
                ).scalars()
            )

    with engine.begin() as conn:
        for name, columns in OLD_DESCENDING_INDEXES.items():
            conn.execute(sa.text(f"CREATE INDEX {name} ON movie ({columns})"))
        conn.execute(sa.text("UPDATE schema_state SET digest = 'old'"))
    assert descending_indexes("movie") == set(OLD_DESCENDING_INDEXES)
    assert len(descending_indexes("movie_imdb")) == len(OLD_DESCENDING_INDEXES)

    assert apply_schema(engine) is True
    assert descending_indexes("movie") == set()
    assert descending_indexes("movie_imdb") == set()
    assert descending_indexes("movie_user") == set()


def test_upgrade_gives_existing_links_their_movies_year_and_rating(engine: sa.Engine) -> None:
    """A database made before the genre-year path: its links take their movies' year and rating,
    no genre bits (-1) and each genre its number of IMDb movies, so genre-and-year pages are
    right before any load."""
    from movies.schema import apply_schema

    with engine.begin() as conn:
        # Dropping the columns drops the index on them.
        conn.execute(
            sa.text("ALTER TABLE movie_genre DROP COLUMN year, DROP COLUMN rating, DROP genre_bits")
        )
        conn.execute(sa.text("UPDATE genre SET imdb_movies = 0"))
        conn.execute(
            sa.text(
                "INSERT INTO movie_imdb (id, source, title, year, rating, genres) VALUES "
                "('tt0000001', 'imdb', 'Old', 1994, 7.5, '{Drama}'), "
                "('tt0000002', 'imdb', 'Unrated', NULL, NULL, '{Drama}')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO movie_genre_imdb (movie_id, source, genre_id) "
                "SELECT id, 'imdb', (SELECT id FROM genre WHERE name = 'Drama') FROM movie_imdb"
            )
        )
        conn.execute(sa.text("UPDATE schema_state SET digest = 'old'"))

    assert apply_schema(engine) is True
    with engine.connect() as conn:
        links = conn.execute(
            sa.text("SELECT movie_id, year, rating, genre_bits FROM movie_genre ORDER BY 1")
        ).all()
        drama = conn.execute(sa.text("SELECT imdb_movies FROM genre WHERE name = 'Drama'"))
        assert drama.scalar_one() == 2
        index = conn.execute(sa.text("SELECT to_regclass('movie_genre_year_bits_idx')"))
        assert index.scalar() is not None
    # Bits unknown until the next load: -1 narrows nothing (every requested genre "may" be there).
    assert [tuple(link) for link in links] == [
        ("tt0000001", 1994, Decimal("7.5"), -1),
        ("tt0000002", None, None, -1),
    ]
