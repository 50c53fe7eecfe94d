#!/usr/bin/env bash
# Creates (or reuses) the project-local virtual environment with the pinned torch wheel, and
# prints nothing else. Usage: scripts/venv.sh [--test]   (--test adds transformers)
# SCULPT_VENV overrides the location (default .venv in the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SCULPT_VENV:-.venv}
PY=${PYTHON:-python3}
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[venv] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
want=$(sed -n 's/^torch==//p' scripts/requirements/torch.txt)
have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)
if [[ "${have%%+*}" != "$want" ]]; then
  echo "[venv] installing torch==$want (about 3 GB with its CUDA libraries)" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements/torch.txt
fi
if [[ "${1:-}" == --test ]] && ! "$VENV/bin/python" -c 'import transformers' 2>/dev/null; then
  echo "[venv] installing the test requirements" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements/torch.txt -r scripts/requirements/test.txt
fi
