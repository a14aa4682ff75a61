#!/usr/bin/env bash
# Set everything up from scratch if needed, then run the whole test suite (offline-safe).
# Extra arguments go to pytest, e.g. scripts/test.sh -k parity
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
# The browser test drives Debian's Chromium (Playwright's own browser download cannot work here).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser test..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "warning: chromium is missing and cannot be installed without root; the browser test will be skipped" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
