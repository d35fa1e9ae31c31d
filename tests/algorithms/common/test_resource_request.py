"""The trial's resource request (algorithms/common/algorithm.py ``GroupAlgorithm.default_resource_request``):
reward-model scorer actors get bundles of their own in the trial's placement group, and a real
``pairgrpo sweep`` with ``scorer: {kind: reward_model, actors: 1}`` finishes an iteration (it hung
before: the actors waited for resources the group lacked)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from pairgrpo_rllib.core import names


@pytest.mark.parametrize(
    ("actors", "num_cpus", "runners", "extra"), [(0, 1, 0, 0), (2, 1, 0, 2), (1, 0.5, 0, 1)]
)
def test_scorer_actors_have_bundles_in_the_trial(assets, llm_config, actors, num_cpus, runners, extra):
    plain = llm_config("GRPO", assets).env_runners(num_env_runners=runners)
    before = len(plain.algo_class.default_resource_request(plain).bundles)
    cfg = llm_config("GRPO", assets).env_runners(num_env_runners=runners)
    cfg.env_config = {
        **cfg.env_config,
        "scorer": {"kind": "reward_model", "path": assets["rm"], "actors": actors, "num_cpus": num_cpus},
    }
    bundles = cfg.algo_class.default_resource_request(cfg).bundles
    assert len(bundles) == before + extra
    assert all(b == {"CPU": num_cpus} for b in bundles[before:])


def llm_yaml(assets, **env) -> dict:
    """A one-iteration LLM experiment on the assets (G 2, the driver's rollout actor)."""
    return {
        "name": "small",
        "algorithm": ["GRPO"],
        "seeds": [0],
        "stop": {"iterations": 1},
        "environment": {
            "env": names.LLM_ENV,
            "env_config": {
                "prompts": {"path": str(assets["task"] / "sft_train.jsonl")},
                "max_prompt_tokens": 24,
                "max_new_tokens": 8,
                **env,
            },
        },
        "rl_module": {"model_config": {"name_or_path": assets["sft"]}},
        "env_runners": {"num_env_runners": 0},
        "training": {
            "group_size": 2,
            "train_batch_size_per_learner": 2 * 2 * 8,
            "minibatch_size": 1,
            "num_epochs": 1,
            "eval_interval": 0,
            "grad_cosine_every": 0,
        },
    }


def test_a_sweep_with_reward_model_scorer_actors_finishes(assets, tmp_path):
    exp = llm_yaml(assets, scorer={"kind": "reward_model", "path": assets["rm"], "actors": 1})
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(exp))
    out = subprocess.run(
        [sys.executable, "-m", "pairgrpo_rllib", "sweep", str(tmp_path / "x.yaml"), "--output", str(tmp_path / "r"), "--no-report"],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    results = list((tmp_path / "r").rglob("result.json"))
    assert len(results) == 1, text[-3000:]
    rows = [json.loads(line) for line in results[0].read_text().splitlines() if line.strip()]
    assert rows and rows[-1]["training_iteration"] == 1
