"""SQLAlchemy Core tables mirroring sql-scripts/01-schema.sql.

Metadata only: the SQL scripts create the schema (`movies.schema.apply`); these objects
exist so queries are built from columns, never from strings. Never call `create_all`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

C_TEXT = sa.Text(collation="C")
# Genre ids below this have a bit in movie_genre.genre_bits (a signed bigint: bits 0 to 62).
GENRE_BITS = 63


def _movie_columns(*, generated: bool = False) -> list[sa.Column]:
    # movie_user generates id, source and created_at itself (column defaults in the DDL).
    default = {"server_default": sa.FetchedValue()} if generated else {}
    return [
        sa.Column("id", C_TEXT, primary_key=True, **default),
        sa.Column("source", sa.Text, primary_key=True, **default),
        sa.Column("title", C_TEXT, nullable=False),
        sa.Column("original_title", C_TEXT),
        # The search folds of the titles (movies.search); '' for none.
        sa.Column("search_title", C_TEXT, nullable=False),
        sa.Column("search_original", C_TEXT, nullable=False),
        sa.Column("year", sa.SmallInteger),
        sa.Column("runtime_minutes", sa.Integer),
        sa.Column("rating", sa.Numeric(3, 1)),
        sa.Column("votes", sa.Integer),
        sa.Column("is_adult", sa.Boolean, nullable=False),
        sa.Column("genres", postgresql.ARRAY(C_TEXT), nullable=False),
        sa.Column("imdb_id", C_TEXT),
        sa.Column("created_at", sa.DateTime(timezone=True), **default),
        sa.Column("score", sa.Numeric(6, 4)),
    ]


def _movie_genre_columns(*, generated: bool = False) -> list[sa.Column]:
    default = {"server_default": sa.FetchedValue()} if generated else {}
    return [
        sa.Column("movie_id", C_TEXT, primary_key=True),
        sa.Column("source", sa.Text, primary_key=True, **default),
        sa.Column("genre_id", sa.SmallInteger, primary_key=True),
        # The movie's year and rating, repeated for the genre-year way (movies.query.genres).
        sa.Column("year", sa.SmallInteger),
        sa.Column("rating", sa.Numeric(3, 1)),
        # The movie's genres as bits, 1 << genre id for ids below GENRE_BITS; -1 when unknown.
        sa.Column("genre_bits", sa.BigInteger, nullable=False),
        # The movie's votes and runtime, repeated so that the genre-year way sorts its
        # candidates by these keys from the links alone.
        sa.Column("votes", sa.Integer),
        sa.Column("runtime_minutes", sa.Integer),
    ]


genre = sa.Table(
    "genre",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True),
    sa.Column("name", C_TEXT, nullable=False, unique=True),
    sa.Column("imdb_movies", sa.Integer, nullable=False),  # at the latest load
)

genre_year = sa.Table(
    "genre_year",
    metadata,
    sa.Column("genre_id", sa.SmallInteger, primary_key=True),
    sa.Column("year", sa.SmallInteger, primary_key=True),
    sa.Column("imdb_movies", sa.Integer, nullable=False),  # at the latest load
)

# The partitioned parent: every read goes through it, so IMDb and user movies list together.
movie = sa.Table("movie", metadata, *_movie_columns())
movie_imdb = sa.Table("movie_imdb", metadata, *_movie_columns())
movie_user = sa.Table("movie_user", metadata, *_movie_columns(generated=True))

movie_genre = sa.Table("movie_genre", metadata, *_movie_genre_columns())
movie_genre_user = sa.Table("movie_genre_user", metadata, *_movie_genre_columns(generated=True))

dataset_load = sa.Table(
    "dataset_load",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("basics_last_modified", sa.DateTime(timezone=True)),
    sa.Column("ratings_last_modified", sa.DateTime(timezone=True)),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("movies", sa.BigInteger, nullable=False),
    sa.Column("rated_movies", sa.BigInteger, nullable=False),
    sa.Column("genre_links", sa.BigInteger, nullable=False),
    sa.Column("skipped_rows", sa.BigInteger, nullable=False),
    sa.Column("seconds", sa.Numeric(10, 3), nullable=False),
    sa.Column("mean_rating", sa.Double),
)
