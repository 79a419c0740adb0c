#!/usr/bin/env bash
# Compose database only: docker-entrypoint-initdb.d runs this once, on an empty volume. With
# MOVIES_REPLICATION_DB_PASSWORD set in .env it creates the login the db-replica services of the
# `scale` profile stream from (pg_basebackup -R) and lets it connect for replication; it may
# replicate, nothing else (no database privileges at all). Other paths apply only the *.sql files.
set -eo pipefail

# Behind pgbouncer the API's per-connection settings (the `options` startup parameter) are not
# passed on: the role carries the planner settings (movies.db.engine_options). The API sends its
# own statement timeout (MOVIES_STATEMENT_TIMEOUT_MS) with each transaction's first statement,
# which overrides the role's; this one is the backstop for anything else the role runs.
psql --no-psqlrc -v ON_ERROR_STOP=1 \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
ALTER ROLE movies_api SET statement_timeout = '5s';
ALTER ROLE movies_api SET max_parallel_workers_per_gather = 0;
ALTER ROLE movies_api SET random_page_cost = 1.1;
SQL

if [[ -z "${MOVIES_REPLICATION_DB_PASSWORD}" ]]; then
    echo "02-replication.sh: no MOVIES_REPLICATION_DB_PASSWORD, so no replication login"
    exit 0
fi
psql --no-psqlrc -v ON_ERROR_STOP=1 \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set replication_password="${MOVIES_REPLICATION_DB_PASSWORD}" <<'SQL'
CREATE ROLE movies_replicator WITH REPLICATION LOGIN PASSWORD :'replication_password';
SQL
# "all" in pg_hba.conf does not cover replication connections: they need a line of their own.
echo "host replication movies_replicator all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
psql --no-psqlrc -q --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -c "SELECT pg_reload_conf()" >/dev/null
echo "02-replication.sh: movies_replicator can stream from this server"
