#!/bin/sh
# tritonserver as radflow runs it (pipelines/stack/triton.py): explicit model control, so
# only deploy decides what is served, and the model-repository API (load, unload, index)
# answers only requests carrying the admin key; inference stays open to the network the
# container is published on. Extra arguments are passed on (e.g. --load-model NAME).
set -eu
: "${RADFLOW_TRITON_ADMIN_KEY:?set RADFLOW_TRITON_ADMIN_KEY: the key of the Triton model-repository API}"
exec tritonserver \
  --model-repository "${RADFLOW_TRITON_MODELS:-/models}" \
  --model-control-mode explicit \
  --disable-auto-complete-config \
  --exit-on-error true \
  --http-restricted-api "model-repository:radflow-admin-key=${RADFLOW_TRITON_ADMIN_KEY}" \
  --grpc-restricted-protocol "model-repository:radflow-admin-key=${RADFLOW_TRITON_ADMIN_KEY}" \
  "$@"
