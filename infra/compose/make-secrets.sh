#!/usr/bin/env bash
# Writes every secret infra/compose.yaml reads into infra/compose/secrets/ (mode 0600),
# random (hex, so that URLs need no escaping); an existing file is kept, so rerunning
# after adding a secret fills in only what is missing. Hospital IT may instead put the
# files there from its own secret store. Never commit them (the folder ignores them).
# Usage: infra/compose/make-secrets.sh [FOLDER]
set -euo pipefail
dir=${1:-"$(dirname "$0")/secrets"}
mkdir -p "$dir"
umask 077

rand() { od -An -N"${1:-24}" -tx1 /dev/urandom | tr -d ' \n'; }
put() {  # put NAME VALUE: write unless present
  [ -s "$dir/$1" ] || printf '%s\n' "$2" > "$dir/$1"
}
get() { tr -d '\n' < "$dir/$1"; }

for name in postgres_password mlflow_db_password orthanc_db_password airflow_db_password \
            radflow_db_password redis_password minio_root_password orthanc_password \
            mlflow_admin_password mlflow_pipeline_password triton_admin_key \
            airflow_admin_password airflow_api_secret_key mlflow_flask_secret_key; do
  put "$name" "$(rand)"
done
put airflow_jwt_secret "$(rand 64)"  # Airflow warns under 64 bytes
put minio_root_user radflow
# Fernet key: 32 random bytes, URL-safe base64
put airflow_fernet_key "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_')"

put redis.conf "requirepass $(get redis_password)"
put airflow_broker_url "redis://:$(get redis_password)@redis:6379/0"
put airflow_db_url "postgresql+psycopg2://airflow:$(get airflow_db_password)@postgres:5432/airflow"
put airflow_result_backend "db+postgresql+psycopg2://airflow:$(get airflow_db_password)@postgres:5432/airflow"
put radflow_db_url "postgresql+psycopg2://radflow:$(get radflow_db_password)@postgres:5432/radflow"
put mlflow_db_url "postgresql://mlflow:$(get mlflow_db_password)@postgres:5432/mlflow"
put orthanc_registered_users.json "{\"radflow\": \"$(get orthanc_password)\"}"
[ -s "$dir/mlflow_basic_auth.ini" ] || cat > "$dir/mlflow_basic_auth.ini" <<INI
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = postgresql://mlflow:$(get mlflow_db_password)@postgres:5432/mlflow_auth
admin_username = admin
admin_password = $(get mlflow_admin_password)
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# a login's password (scrypt) is checked once a minute per worker, not at every request: a
# password changed or a user deleted may still be accepted by another worker for 60 s
auth_cache_ttl_seconds = 60
INI
[ -s "$dir/mlflow_s3_credentials" ] || cat > "$dir/mlflow_s3_credentials" <<INI
[default]
aws_access_key_id = $(get minio_root_user)
aws_secret_access_key = $(get minio_root_password)
INI
chmod 0600 "$dir"/*
echo "secrets in $dir: $(ls "$dir" | wc -l) files"
