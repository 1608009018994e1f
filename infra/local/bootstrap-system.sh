#!/usr/bin/env bash
# Installs the Debian packages radflow's local stack needs, when they are missing:
#   orthanc + orthanc-dicomweb (the PACS), dcmtk (a real DICOM client for tests), dicom3tools (dciodvfy, validates written DICOM),
#   postgresql (server binaries, so tests can start a throwaway server when none runs),
#   redis-server (the Celery broker of `stack up --executor celery`; tests start a throwaway one when none runs),
#   chromium + chromium-driver (headless browser: the worklist page's browser test).
# Quick and silent when everything is present. Needs root (or sudo) to install.
set -euo pipefail

missing=()
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || missing+=(orthanc)
ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so* >/dev/null 2>&1 || missing+=(orthanc-dicomweb)
command -v storescu >/dev/null 2>&1 || missing+=(dcmtk)
command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)

[ ${#missing[@]} -eq 0 ] && exit 0

echo "radflow: installing Debian packages: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "radflow: apt-get not found. Install these packages with your system's package manager: ${missing[*]}" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo"
  else
    echo "radflow: need root to install ${missing[*]}. Run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
# Keep package scripts from starting system-wide services: radflow runs its own instances.
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian orthanc package starts a system Orthanc on 8042/4242 when it can; radflow's
# stack runs its own, so stop that one if it was started (ignore failures: no systemd here).
$SUDO service orthanc stop >/dev/null 2>&1 || true
echo "radflow: installed ${missing[*]}"
