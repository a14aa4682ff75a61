#!/usr/bin/env bash
# Set everything up from scratch if needed, then run the whole test suite (offline-safe).
# Extra arguments go to pytest, e.g. scripts/test.sh -k parity
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
