-- Genre ids drawn for nothing: each load added its genre names with INSERT ... ON CONFLICT DO
-- NOTHING, which draws an identity value for every name already there (~28 a load; the seed of
-- the old idempotent script did the same at each change of it). The loader now inserts only the
-- missing names; this sets the sequence back so the next new genre takes max(id) + 1, within the
-- 63 ids that genre bits (movie_genre.genre_bits) cover and far from smallint's end.
SELECT setval(pg_get_serial_sequence('genre', 'id'), coalesce(max(id), 0) + 1, false) FROM genre;
