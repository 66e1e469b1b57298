#!/usr/bin/env bash
# The vLLM backend's checks in .venv-vllm (made by scripts/setup_vllm.sh): the tests marked
# `vllm` (VLLMEngine against the reference engine and the verifier, failed starts, and a real
# `dmoe miner --engine vllm` process). Extra arguments replace `-m vllm` (e.g. `tests` runs the
# whole suite in the vLLM environment). Fails when a check fails or nothing ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_vllm.sh
export PATH="$PWD/.venv-vllm/bin:$PATH"
# Tiny experts are built per library versions: keep this environment's apart from .venv's.
export DMOE_TEST_EXPERTS_DIR="${DMOE_TEST_EXPERTS_DIR:-${TMPDIR:-/tmp}/dmoe-tiny-experts-test-vllm}"
if [ "$#" -eq 0 ]; then
  set -- -m vllm
fi
set +e
python -m pytest -q -rs "$@"
rc=$?
if [ "$rc" -eq 1 ]; then
  # Two tests signal a starting vLLM miner and time its exit: on a loaded machine they can
  # miss. A failure must repeat to count.
  echo "[test_vllm] rerunning the failed tests once" >&2
  python -m pytest -q -rs --lf "$@"
  rc=$?
fi
set -e
if [ "$rc" -eq 5 ]; then
  echo "[test_vllm] pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
