-- Least privilege for the roles of 00-roles.sql, on the tables of 01-schema.sql.
--
--   movies_loader  owns every table: a load creates movie_imdb_next beside the live partition,
--                  DETACHes/ATTACHes partitions of movie and movie_genre and drops the old ones,
--                  which only an owner may do. It also needs CREATE on the schema.
--   movies_api     SELECT on what it serves; INSERT only into movie_user and movie_genre_user (and
--                  the id sequence). It cannot insert into movie_imdb, nor UPDATE, DELETE,
--                  TRUNCATE, ALTER or DROP anything. Its inserts name the partition: INSERT on the
--                  parent `movie` would also reach movie_imdb.
--
-- Reads through the parent `movie` check the parent's privileges only, so the partition a load
-- swaps in is readable at once; the default privilege below also makes every table the loader
-- creates readable directly.
--
-- Runs after 01-schema.sql on a new database, and after the last of the migrations an existing
-- one lacked (movies.schema), so the objects a migration creates get their owner and grants:
-- idempotent, and safe for every role that applies the schema. A superuser (compose init, the
-- embedded database, the tests) sets everything; the loader re-grants what it owns; the API role,
-- which may not change privileges, does nothing here.

DO $$
DECLARE
    owned_by_loader constant text[] := ARRAY[
        'genre', 'genre_year', 'movie', 'movie_imdb', 'movie_user', 'movie_genre',
        'movie_genre_imdb', 'movie_genre_user', 'dataset_load', 'schema_migration'
    ];
    relation text;
BEGIN
    IF NOT pg_has_role(current_user, 'movies_loader', 'MEMBER') THEN
        RETURN;
    END IF;

    IF pg_has_role(current_user, (SELECT nspowner FROM pg_namespace WHERE nspname = 'public'),
                   'USAGE') THEN
        -- PostgreSQL 15+ already keeps CREATE from PUBLIC; older servers do not.
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        GRANT USAGE, CREATE ON SCHEMA public TO movies_loader;
        GRANT USAGE ON SCHEMA public TO movies_api;
    END IF;

    FOREACH relation IN ARRAY owned_by_loader LOOP
        IF (SELECT relowner FROM pg_class WHERE oid = relation::regclass)
                <> 'movies_loader'::regrole THEN
            EXECUTE 'ALTER TABLE ' || quote_ident(relation) || ' OWNER TO movies_loader';
        END IF;
    END LOOP;
    IF (SELECT relowner FROM pg_class WHERE oid = 'movie_user_number'::regclass)
            <> 'movies_loader'::regrole THEN
        ALTER SEQUENCE movie_user_number OWNER TO movies_loader;
    END IF;

    GRANT SELECT ON genre, genre_year, movie, movie_imdb, movie_user, movie_genre,
        movie_genre_imdb, movie_genre_user, dataset_load, schema_migration TO movies_api;
    GRANT INSERT ON movie_user, movie_genre_user TO movies_api;
    GRANT USAGE ON SEQUENCE movie_user_number TO movies_api;
    ALTER DEFAULT PRIVILEGES FOR ROLE movies_loader IN SCHEMA public
        GRANT SELECT ON TABLES TO movies_api;
END
$$;
