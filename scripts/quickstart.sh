#!/usr/bin/env bash
# The main job on the embedded default: set up .venv if needed, then run a small local comparison of
# all five algorithms on HalfCheetah-v4 (local Ray, CPU, 800k steps each) and write its report.
# Extra arguments go to `pairgrpo sweep`, e.g. --set stop.env_steps=50000.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$ROOT/.venv/bin/pairgrpo" sweep tune_configs/quickstart.yaml --output results "$@"
