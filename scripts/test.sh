#!/usr/bin/env bash
# Set everything up and run the checks: ruff (lint + format) and the default pytest suite.
# Extra arguments go to pytest. Fails when any check fails, and when pytest collects no tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
set +e
python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
