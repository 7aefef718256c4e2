#!/bin/sh
# One-shot schema job for the Temporal server (runs in temporalio/admin-tools).
#
# Creates the `temporal` and `temporal_visibility` databases on PostgreSQL and brings their
# schemas up to the version this admin-tools image ships, with temporal-sql-tool's postgres12
# plugin. Safe to run again on an existing volume: an existing database is kept, and
# setup-schema/update-schema only apply what is missing.
#
# Environment (set in docker-compose.yml): POSTGRES_SEEDS, DB_PORT, POSTGRES_USER and
# SQL_PASSWORD (read by temporal-sql-tool itself).
set -eu

host="${POSTGRES_SEEDS:?POSTGRES_SEEDS is not set}"
port="${DB_PORT:-5432}"
user="${POSTGRES_USER:?POSTGRES_USER is not set}"
: "${SQL_PASSWORD:?SQL_PASSWORD is not set}"
schema_dir=/etc/temporal/schema/postgresql/v12
max_attempts="${MAX_ATTEMPTS:-30}"

attempt=1
until nc -z -w 5 "$host" "$port"; do
  if [ "$attempt" -ge "$max_attempts" ]; then
    echo "PostgreSQL at $host:$port is not reachable after $attempt attempts" >&2
    exit 1
  fi
  echo "Waiting for PostgreSQL at $host:$port ($attempt/$max_attempts) ..."
  attempt=$((attempt + 1))
  sleep 2
done

sql_tool() {
  temporal-sql-tool --plugin postgres12 --ep "$host" -p "$port" -u "$user" "$@"
}

setup_database() {
  database="$1"
  versioned_dir="$schema_dir/$2/versioned"
  echo "Setting up database $database from $versioned_dir"
  # `create` fails when the database exists (a restart on a kept volume); the next two
  # commands fail loudly on any real problem (credentials, connectivity).
  sql_tool --db "$database" create || echo "Database $database exists already; keeping it"
  sql_tool --db "$database" setup-schema -v 0.0
  sql_tool --db "$database" update-schema -d "$versioned_dir"
}

setup_database temporal temporal
setup_database temporal_visibility visibility
echo "Temporal schema setup complete"
