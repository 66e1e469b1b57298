#!/usr/bin/env bash
# Create (or reuse) .venv in the checkout and install dmoe into it.
# torch==2.13.0 goes first: it resolves to the CPU wheel on disk, whereas an unpinned torch pulled
# in by another package would download a multi-GB CUDA build. Re-running is fast: a stamp records
# the hash of pyproject.toml and the install is skipped when it has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=.venv/.dmoe-installed
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
echo "[setup] installing into .venv (first run takes a few minutes)" >&2
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
.venv/bin/python -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" >&2 || true
# Found without importing it (importing before numpy is installed only prints a warning).
.venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)"
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
.venv/bin/python -c "import bittensor, transformers, aiohttp, pytest" >/dev/null
echo "$WANT" > "$STAMP"
