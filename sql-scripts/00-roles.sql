-- The two application roles, least privilege (02-privileges.sql grants what each may do):
--   movies_loader  owns the tables: loads, rebuilds movie_imdb beside the live one, swaps it in.
--   movies_api     reads everything it serves; inserts only movies created through the API.
--
-- Both are NOLOGIN here: SQL cannot read the environment, so the compose database gives them a
-- login and a password from .env in 03-logins.sh. Idempotent: it runs for every new database and
-- with the last migration an existing one lacked (movies.schema), and a role that already exists
-- (roles belong to the whole server, not one database) is kept.
-- Without CREATEROLE (the loader applying the schema) the IF NOT EXISTS skips the CREATE.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'movies_loader') THEN
        CREATE ROLE movies_loader NOLOGIN;
    END IF;
EXCEPTION
    -- two databases of one server applying the schema at the same moment
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'movies_api') THEN
        CREATE ROLE movies_api NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
