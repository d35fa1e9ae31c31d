"""Shared test setup. Lives inside tests/ (never at the repo root: a root conftest puts the repo root on sys.path and makes two copies of every class; README, "Layout")."""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
# The project's commands (pairgrpo, ray, ruff, hadolint) sit next to the interpreter running the
# tests (.venv/bin): put them first on PATH, as an activated venv would, for the tests and their
# subprocesses alike.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

import torch  # noqa: E402

# 2 shared cores: a second intra-op thread never helped and once made a run ~30x slower.
torch.set_num_threads(1)
