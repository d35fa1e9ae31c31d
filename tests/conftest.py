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


# ---- the LLM path (tests/envs/llm, tests/algorithms, tests/app, ...) -------------------------------------
# Plain helpers are served by fixtures that return them: with --import-mode=importlib a test file cannot
# import another file under tests/ by name.


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    """The whole preparation, through the real jobs: a tiny model, the synthetic task's files, SFT on
    the chosen responses, a Bradley-Terry reward model on the pairs (~20 s here). Built once for the
    session and shared: no test writes into these folders (they copy first)."""
    from pairgrpo_rllib.algorithms.reward_model.reward_model import run_reward_model
    from pairgrpo_rllib.algorithms.sft.sft import run_sft
    from pairgrpo_rllib.envs.llm import synthetic as S
    from pairgrpo_rllib.envs.llm.models import make_tiny

    root = tmp_path_factory.mktemp("llm")
    tiny = make_tiny(root / "tiny", seed=0)
    files = S.write_task(root / "task", n_train=1500, n_test=150, seed=0)
    task = root / "task"
    sft = run_sft(
        {
            "model": {"name_or_path": str(tiny)},
            "data": {"path": str(task / "sft_train.jsonl")},
            "eval_data": {"path": str(task / "sft_test.jsonl")},
            "training": {"epochs": 6, "lr": 3e-3, "batch_size": 32, "max_length": 48},
            "output": str(root / "sft"),
        }
    )
    rm = run_reward_model(
        {
            "model": {"name_or_path": str(root / "sft")},
            "data": {"path": str(task / "hh_rlhf_train.jsonl")},
            "eval_data": {"path": str(task / "hh_rlhf_test.jsonl")},
            "training": {"epochs": 4, "lr": 3e-3, "batch_size": 32, "max_length": 64},
            "output": str(root / "rm"),
        }
    )
    return {
        "tiny": str(tiny),
        "sft": str(root / "sft"),
        "rm": str(root / "rm"),
        "task": task,
        "files": files,
        "root": root,
        "sft_summary": sft,
        "rm_summary": rm,
    }


@pytest.fixture(scope="module")
def local_ray():
    """A 2-CPU local Ray per test file (some tests shut it down to start one with 4 CPUs)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _llm_config(name: str, assets, **training):
    from pairgrpo_rllib.algorithms.registry import algorithm_config
    from pairgrpo_rllib.core import names

    opts = dict(
        group_size=4,
        train_batch_size_per_learner=4 * 12 * 3,  # 3 prompts x G 4 x 12 tokens
        minibatch_size=1,
        num_epochs=1,
        lr=1e-3,
        eval_interval=0,
        grad_cosine_every=0,
    )
    opts.update(training)
    return (
        algorithm_config(name)
        .environment(
            names.LLM_ENV,
            env_config={
                "prompts": {"path": str(assets["task"] / "sft_train.jsonl")},
                "eval_prompts": {"path": str(assets["task"] / "eval_prompts.jsonl")},
                "scorer": {"kind": "reward_model", "path": assets["rm"]},
                "eval_scorer": {"kind": "truth"},
                "max_prompt_tokens": 24,
                "max_new_tokens": 12,
            },
        )
        .rl_module(model_config={"name_or_path": assets["sft"]})
        .env_runners(num_env_runners=0)
        .training(**opts)
        .debugging(seed=0)
    )


def _pair_config(name: str, assets, **training):
    cfg = _llm_config(name, assets, **training)
    cfg.env_config = {k: v for k, v in cfg.env_config.items() if k != "scorer"}  # offline: no scorer
    cfg.env_config["pairs"] = {"path": str(assets["task"] / "hh_rlhf_train.jsonl")}
    return cfg.training(group_size=2, train_batch_size_per_learner=8 * 2 * 12, minibatch_size=4)


def _learner(algo):
    return algo.learner_group._learner


def _learner_loss(algo, batch):
    """The learner's loss on a sampled batch, computed as in an update: ``(loss, fwd, tensors)``."""
    from ray.rllib.core import DEFAULT_MODULE_ID

    from pairgrpo_rllib.core import names

    for key in (names.EPISODE_RETURNS, names.ENV_STEPS, names.TRUNCATED_RESPONSES):
        batch.pop(key, None)
    batch = algo.learner_batch(batch)
    learner = _learner(algo)
    module = learner.module[DEFAULT_MODULE_ID].unwrapped()
    t = {k: torch.as_tensor(v) for k, v in batch.items()}
    fwd = module.forward_train(t)
    loss = learner.compute_loss_for_module(
        module_id=DEFAULT_MODULE_ID, config=algo.config, batch=t, fwd_out=fwd
    )
    return loss, fwd, t


@pytest.fixture(scope="session")
def llm_config():
    """``llm_config(name, assets, **training)``: an LLM algorithm config on the assets (3 prompts x G 4
    x 12 tokens per iteration, a local rollout actor, seed 0)."""
    return _llm_config


@pytest.fixture(scope="session")
def pair_config():
    """``pair_config(name, assets, **training)``: ``llm_config`` for the data set's pairs (no scorer, G 2)."""
    return _pair_config


@pytest.fixture(scope="session")
def learner_of():
    """``learner_of(algo)``: the algorithm's local learner."""
    return _learner


@pytest.fixture(scope="session")
def learner_loss():
    """``learner_loss(algo, batch)``: the learner's loss on a sampled batch, as in an update."""
    return _learner_loss
