#!/usr/bin/env bash
# Regenerate tests/fixtures with the reference implementation (transformers 4.40.2) in a
# throwaway virtualenv. Development only: transformers is never a dependency of the project.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${REF_VENV:-/tmp/lfqa-reference-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0   # the CPU wheel first, so nothing pulls a CUDA build
  "$VENV/bin/pip" install -q "transformers==4.40.2" "numpy<2" safetensors
fi
"$VENV/bin/python" tools/make_fixtures.py
"$VENV/bin/python" tools/make_realm_openqa_fixture.py  # after: it reuses the vocabulary
