#!/usr/bin/env bash
# radflow's settings from files: for every RADFLOW_<NAME>_FILE in the environment (a
# Compose secret under /run/secrets, a mounted Kubernetes Secret), export RADFLOW_<NAME>
# with the file's content (trailing newline dropped), unless RADFLOW_<NAME> is set. Then
# the official image's entrypoint (waits for the database, runs the command).
set -euo pipefail
for name in $(compgen -e); do
  case "$name" in
    RADFLOW_*_FILE)
      target=${name%_FILE}
      path=${!name}
      if [ -z "${!target:-}" ]; then
        if [ ! -r "$path" ]; then
          echo "radflow: $name names $path, which is not a readable file" >&2
          exit 1
        fi
        export "$target=$(cat "$path")"
      fi
      ;;
  esac
done
exec /entrypoint "$@"
