-- The genre-year way chosen in Python (movies.query.genres): the API picks the way of a genre
-- query with a year filter from each genre's number of IMDb movies per year (the new table
-- genre_year, written by every load and filled here from the links), and sorts the candidate
-- links by their copy of the sort key, so each link carries its movie's votes and runtime (taken
-- here from the movies; a load writes them for its own links) and the link index holds them for
-- index-only reads. See movie_genre and genre_year in 01-schema.sql.
ALTER TABLE movie_genre ADD COLUMN votes integer, ADD COLUMN runtime_minutes integer;

UPDATE movie_genre AS l SET votes = m.votes, runtime_minutes = m.runtime_minutes
FROM movie AS m
WHERE m.id = l.movie_id AND m.source = l.source;

DROP INDEX movie_genre_year_bits_idx;
CREATE INDEX movie_genre_year_keys_idx
    ON movie_genre (genre_id, year, rating, movie_id) INCLUDE (genre_bits, votes, runtime_minutes);

CREATE TABLE genre_year (
    genre_id    smallint NOT NULL REFERENCES genre (id),
    year        smallint NOT NULL,
    imdb_movies integer NOT NULL,
    PRIMARY KEY (genre_id, year)
);

INSERT INTO genre_year (genre_id, year, imdb_movies)
SELECT genre_id, year, count(*) FROM movie_genre_imdb WHERE year IS NOT NULL GROUP BY 1, 2;
