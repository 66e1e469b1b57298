#!/usr/bin/env bash
# Set everything up and run the main job: a whole local subnet (chain, miners, validators) on the
# embedded defaults, for a few epochs, then print a summary. Extra arguments go to `dmoe localnet`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/dmoe localnet --data-dir .data/localnet "$@"
