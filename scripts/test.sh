#!/usr/bin/env bash
# The test command of the README: set up .venv if needed, then run the whole suite with `pytest`
# (not `python -m pytest`: that puts the repo root on sys.path, see the README, "Layout").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"  # GiB of KV cache for vLLM's CPU backend
exec "$ROOT/.venv/bin/pytest" "$@"
