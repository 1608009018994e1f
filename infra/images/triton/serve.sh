#!/bin/sh
# tritonserver as radflow runs it (pipelines/stack/triton.py): explicit model control, so
# only deploy decides what is served, and the model-repository API (load, unload, index)
# answers only requests carrying the admin key; inference stays open to the network the
# container is published on. Extra arguments are passed on (e.g. --load-model NAME).
#
# The key comes from RADFLOW_TRITON_ADMIN_KEY, or from the file named by
# RADFLOW_TRITON_ADMIN_KEY_FILE (a Compose or Kubernetes secret).
#
# At start it loads what deploy left in the repository, so a restart serves the approved
# versions (each model's config.pbtxt version_policy, rewritten by deploy, names them):
# every model with a version folder holding a file (a classifier's model.onnx, the
# preprocessing model.py), and every ensemble whose steps are all among those.
# RADFLOW_TRITON_LOAD_DEPLOYED=false turns that off (then pass --load-model yourself).
set -eu
if [ -z "${RADFLOW_TRITON_ADMIN_KEY:-}" ] && [ -n "${RADFLOW_TRITON_ADMIN_KEY_FILE:-}" ]; then
  RADFLOW_TRITON_ADMIN_KEY=$(cat "$RADFLOW_TRITON_ADMIN_KEY_FILE")
fi
: "${RADFLOW_TRITON_ADMIN_KEY:?set RADFLOW_TRITON_ADMIN_KEY or RADFLOW_TRITON_ADMIN_KEY_FILE: the key of the Triton model-repository API}"
REPO="${RADFLOW_TRITON_MODELS:-/models}"

# names of the models with a version folder that holds a file, one per line
servable() {
  for config in "$REPO"/*/config.pbtxt; do
    [ -f "$config" ] || continue
    model_dir=${config%/config.pbtxt}
    for version in "$model_dir"/[0-9]*; do
      if [ -d "$version" ] && [ -n "$(ls -A "$version")" ]; then
        basename "$model_dir"
        break
      fi
    done
  done
}

loads=""
if [ "${RADFLOW_TRITON_LOAD_DEPLOYED:-true}" = true ]; then
  ready=$(servable)
  for name in $ready; do
    loads="$loads --load-model $name"
  done
  for config in "$REPO"/*/config.pbtxt; do
    [ -f "$config" ] && grep -q 'platform: *"ensemble"' "$config" || continue
    complete=true
    for step in $(sed -n 's/.*model_name: *"\([^"]*\)".*/\1/p' "$config"); do
      printf '%s\n' "$ready" | grep -qx "$step" || complete=false
    done
    if [ "$complete" = true ]; then
      loads="$loads --load-model $(basename "${config%/config.pbtxt}")"
    fi
  done
fi

# $loads holds only model folder names (no spaces: Triton model names), split on purpose
# shellcheck disable=SC2086
exec tritonserver \
  --model-repository "$REPO" \
  --model-control-mode explicit \
  --disable-auto-complete-config \
  --exit-on-error true \
  --http-restricted-api "model-repository:radflow-admin-key=${RADFLOW_TRITON_ADMIN_KEY}" \
  --grpc-restricted-protocol "model-repository:radflow-admin-key=${RADFLOW_TRITON_ADMIN_KEY}" \
  $loads \
  "$@"
