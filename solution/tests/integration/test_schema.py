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
