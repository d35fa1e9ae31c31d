#!/usr/bin/env bash
# The main job on the embedded default: set up .venv if needed, then run it on this machine.
# Until RLlib training lands (issue 3) the main job is the stationary-policy check.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$ROOT/.venv/bin/pairgrpo" theory "$@"
