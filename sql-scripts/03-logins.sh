#!/usr/bin/env bash
# Compose database only: docker-entrypoint-initdb.d runs this once, on an empty volume, after the
# *.sql files. It gives the NOLOGIN roles of 00-roles.sql a login and their passwords from .env
# (SQL files cannot read the environment). Other paths apply only the *.sql files.
#
# Re-run it to change the passwords after editing .env:
#   docker compose up -d db && docker compose exec db /docker-entrypoint-initdb.d/03-logins.sh
set -eo pipefail

if [[ -z "${MOVIES_LOADER_DB_PASSWORD}" || -z "${MOVIES_API_DB_PASSWORD}" ]]; then
    echo "03-logins.sh: set MOVIES_LOADER_DB_PASSWORD and MOVIES_API_DB_PASSWORD" >&2
    exit 1
fi

# psql quotes :'name' as a string literal: a password cannot break out of the statement.
psql --no-psqlrc -v ON_ERROR_STOP=1 \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set loader_password="${MOVIES_LOADER_DB_PASSWORD}" \
    --set api_password="${MOVIES_API_DB_PASSWORD}" <<'SQL'
ALTER ROLE movies_loader LOGIN PASSWORD :'loader_password';
ALTER ROLE movies_api LOGIN PASSWORD :'api_password';
SQL
echo "03-logins.sh: movies_loader and movies_api can log in"
