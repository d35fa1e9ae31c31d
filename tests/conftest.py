"""Shared test setup. Lives inside tests/ (never at the repo root): see STYLE.md guardrail 3."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

# 2 shared cores: a second intra-op thread never helped and once made a run ~30x slower.
torch.set_num_threads(1)
