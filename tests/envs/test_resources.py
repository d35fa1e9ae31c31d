"""GPUs asked for against those available, before Ray starts (envs/resources.py): the learners',
the rollout actors' and the scorer actors' requests on a machine without GPUs are refused with the
numbers, by ``validate()`` and by ``pairgrpo sweep`` (exit 2, no local Ray instance started)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from pairgrpo_rllib.core import names

pytestmark = pytest.mark.skipif(
    __import__("torch").cuda.device_count() > 0, reason="the machine has GPUs: nothing to refuse"
)

CASES = [
    ({"learners": {"num_gpus_per_learner": 1}}, "num_gpus_per_learner=1", "request 1 GPU(s) in all"),
    (
        {"env_runners": {"num_env_runners": 1, "num_gpus_per_env_runner": 1}},
        "num_gpus_per_env_runner=1",
        "1 env runner(s) request 1 GPU(s) in all",
    ),
    ({"scorer_gpus": 1}, "env_config.scorer.num_gpus=1", "2 scorer actor(s) request 2 GPU(s) in all"),
]


def _config(llm_config, assets, change):
    cfg = llm_config("GRPO", assets)
    if "learners" in change:
        cfg.learners(**change["learners"])
    if "env_runners" in change:
        cfg.env_runners(**change["env_runners"])
    if "scorer_gpus" in change:
        cfg.env_config = {
            **cfg.env_config,
            "scorer": {
                "kind": "reward_model",
                "path": assets["rm"],
                "actors": 2,
                "num_gpus": change["scorer_gpus"],
            },
        }
    return cfg


@pytest.mark.parametrize(("change", "field", "text"), CASES)
def test_gpus_this_machine_lacks_are_refused_with_the_numbers(
    assets, llm_config, monkeypatch, change, field, text
):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ValueError) as info:
        _config(llm_config, assets, change).validate()
    msg = str(info.value)
    assert msg.startswith(f"{field} is invalid: ") and text in msg and "has 0" in msg, msg
    assert "torch.cuda.device_count()" in msg and "\n" not in msg
    assert not ray.is_initialized()


def test_with_ray_address_the_count_is_left_to_the_cluster(assets, llm_config, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    from pairgrpo_rllib.envs.resources import available

    assert available("GPU")[0] is None
    _config(llm_config, assets, CASES[0][0]).validate()


def test_a_sweep_asking_for_a_learner_gpu_never_starts_ray(assets, tmp_path):
    exp = {
        "name": "gpu",
        "algorithm": ["GRPO"],
        "seeds": [0],
        "stop": {"iterations": 1},
        "environment": {
            "env": names.LLM_ENV,
            "env_config": {
                "prompts": {"path": str(assets["task"] / "sft_train.jsonl")},
                "scorer": {"kind": "truth"},
                "max_prompt_tokens": 24,
                "max_new_tokens": 8,
            },
        },
        "rl_module": {"model_config": {"name_or_path": assets["sft"]}},
        "env_runners": {"num_env_runners": 0},
        "learners": {"num_gpus_per_learner": 1},
        "training": {
            "group_size": 2,
            "train_batch_size_per_learner": 32,
            "minibatch_size": 1,
            "eval_interval": 0,
        },
    }
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(exp))
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run(
        [sys.executable, "-m", "pairgrpo_rllib", "sweep", str(tmp_path / "x.yaml"), "--output", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 2, text[-3000:]
    assert "num_gpus_per_learner=1 is invalid" in text and "has 0" in text, text[-3000:]
    assert "Started a local Ray instance" not in text
