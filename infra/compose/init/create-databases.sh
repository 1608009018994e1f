#!/usr/bin/env bash
# One-shot (compose service stack-init): a role and a database per service, made so on
# every `docker compose up` (idempotent; a changed password file resets the password).
# Passwords are read from /run/secrets and passed to psql as variables, never as arguments.
set -euo pipefail
printf '*:*:*:postgres:%s\n' "$(cat /run/secrets/postgres_password)" > "$PGPASSFILE"
chmod 0600 "$PGPASSFILE"

ensure() {  # ensure ROLE DATABASE...: the role (password from /run/secrets/ROLE_db_password) owns each database
  local role=$1; shift
  psql -v ON_ERROR_STOP=1 -v role="$role" -v password="$(cat "/run/secrets/${role}_db_password")" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN PASSWORD :'password';
SQL
  for db in "$@"; do
    psql -v ON_ERROR_STOP=1 -v role="$role" -v db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
  done
}

ensure mlflow mlflow mlflow_auth
ensure orthanc orthanc
ensure airflow airflow
ensure radflow radflow
rm -f "$PGPASSFILE"
echo "stack-init: databases mlflow, mlflow_auth, orthanc, airflow, radflow ready"
