#!/usr/bin/env bash
# Is the engine correct and fast on this machine? One command, GPU when present, CPU otherwise:
#
#   bash scripts/gpu_check.sh [--quick]
#
# 1. scripts/check_engine.py      engine = `generate` token for token on ten architectures in
#                                 bfloat16 and float32; sampled and greedy task requests; the
#                                 validator's reference on every answer (false positives)
# 2. scripts/bench_score_memory.py  memory a maximum-size /v1/score request adds (<= 1 GB)
# 3. scripts/bench_miner.py       engine vs static batch vs naive (and vLLM when installed and
#                                 bench_miner offers it)
# 4. scripts/calibrate_verify.py  the verifier's false-positive and detection rates (full run only)
# Prints a summary table and writes bench_results/gpu_check.json. --quick: small runs (~5 min on
# a 2-core CPU). Exits non-zero when a check fails.
set -uo pipefail
cd "$(dirname "$0")/.."
QUICK=""
if [ "${1:-}" = "--quick" ]; then QUICK="--quick"; fi
bash scripts/setup.sh || exit 1
PY=.venv/bin/python
DEVICE="$($PY -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
echo "[gpu_check] device: $DEVICE ${QUICK:+(quick)}"
mkdir -p bench_results
RCS=""
step() {  # step NAME COMMAND...: run, remember the exit status
  local name=$1
  shift
  echo "[gpu_check] $name: $*"
  "$@"
  RCS="$RCS $name=$?"
}

step check_engine $PY scripts/check_engine.py --device "$DEVICE" $QUICK
step score_memory $PY scripts/bench_score_memory.py --device "$DEVICE" $QUICK
MINER_ARGS=(--device "$DEVICE")
if [ -n "$QUICK" ]; then
  MINER_ARGS+=(--quick --size test --experts-dir "${TMPDIR:-/tmp}/dmoe-tiny-experts-test")
else
  MINER_ARGS+=(--levels 1,8,32,64)
fi
if $PY -c "import vllm" 2>/dev/null && $PY scripts/bench_miner.py --help | grep -q -- "--vllm"; then
  MINER_ARGS+=(--vllm)
else
  echo "[gpu_check] vLLM column skipped (vllm not installed or bench_miner has no --vllm)"
fi
step bench_miner $PY scripts/bench_miner.py "${MINER_ARGS[@]}"
if [ -z "$QUICK" ]; then
  step calibrate_verify $PY scripts/calibrate_verify.py --n 1200
fi
# shellcheck disable=SC2086
$PY scripts/gpu_summary.py --device "$DEVICE" $QUICK $RCS
