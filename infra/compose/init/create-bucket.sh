#!/bin/sh
# One-shot (compose service bucket-init): MLflow's artifact bucket in MinIO (idempotent).
set -eu
MC_HOST_radflow="http://$(cat /run/secrets/minio_root_user):$(cat /run/secrets/minio_root_password)@minio:9000"
export MC_HOST_radflow
mc mb --ignore-existing radflow/mlflow
mc anonymous set none radflow/mlflow
echo "bucket-init: bucket mlflow ready"
