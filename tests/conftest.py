"""Shared test setup. Lives inside tests/ (never at the repo root: a root conftest puts the repo root on sys.path and makes two copies of every class; README, "Layout")."""

import os
import random
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
# The project's commands (pairgrpo, ray, ruff, hadolint) sit next to the interpreter running the
# tests (.venv/bin): put them first on PATH, as an activated venv would, for the tests and their
# subprocesses alike.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

import torch  # noqa: E402

# 2 shared cores: a second intra-op thread never helped and once made a run ~30x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def task_prompts() -> tuple[list[list[dict]], list[str]]:
    """18 prompts of the synthetic task as conversations (12 helpful: color and repeat; 6 harmful)
    and their evaluation subsets."""
    from pairgrpo_rllib.envs.llm import synthetic as S

    rng = random.Random(0)
    helpful = [S.make_prompt("color", rng) for _ in range(6)] + [
        S.make_prompt("repeat", rng) for _ in range(6)
    ]
    harmful = [S.make_prompt("harmful", rng) for _ in range(6)]
    prompts = [[{"role": "user", "content": q}] for q in helpful + harmful]
    return prompts, ["helpful"] * 12 + ["harmless"] * 6
