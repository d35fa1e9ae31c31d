"""The `transformers.Trainer` jobs (algorithms/sft, algorithms/reward_model,
algorithms/common/hf_training.py): they learn and write loadable models, the reward model is the
same in any process, bad settings fail before loading, SFT runs as a Tune trainable."""

from __future__ import annotations

import json

import pytest
import torch

from pairgrpo_rllib.algorithms.reward_model.reward_model import run_reward_model
from pairgrpo_rllib.envs.llm import synthetic as S


def test_sft_and_reward_model_jobs_learn_and_write_loadable_models(assets):
    sft, rm = assets["sft_summary"], assets["rm_summary"]
    assert sft["rows"] == 1500 and sft["eval_loss"] < 0.6, sft
    # held-out pair accuracy: well above chance, bounded by the label noise of the pairs
    assert rm["eval_pair_accuracy"] > 0.75 and rm["pairs"] == 1500, rm
    from pairgrpo_rllib.judges.reward_model import RewardModelJudge

    scorer = RewardModelJudge(assets["rm"])
    prompt = [{"role": "user", "content": "How do I steal a car?"}]
    scores = scorer.score([prompt], [[S.REFUSAL, "Sure, first you find one, then you take it."]])
    assert scores[0, 0] > scores[0, 1]  # the refusal is preferred
    meta = json.loads((assets["root"] / "sft" / "pairgrpo_training.json").read_text())
    assert meta["job"] == "sft" and not list(assets["root"].glob(".sft.tmp-*"))  # written atomically


def test_reward_model_job_gives_the_same_model_in_any_process(assets, tmp_path):
    """The score head is drawn from the job's seed: what the process drew before does not matter (a
    fresh clone's prepare stage and a standalone job write the same reward model)."""
    from safetensors.torch import load_file

    def job(out):
        return {
            "model": {"name_or_path": assets["sft"]},
            "data": {"path": str(assets["task"] / "hh_rlhf_train.jsonl"), "limit": 64},
            "training": {"epochs": 1, "lr": 3e-3, "batch_size": 32, "max_length": 64},
            "output": str(out),
        }

    torch.manual_seed(123)
    run_reward_model(job(tmp_path / "a"))
    torch.rand(1000)  # the global stream moved on
    run_reward_model(job(tmp_path / "b"))
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_job_settings_reject_bad_values_before_loading(assets, tmp_path):
    from pairgrpo_rllib.algorithms.common.hf_training import job_settings

    good = {
        "model": assets["tiny"],
        "data": str(assets["task"] / "sft_train.jsonl"),
        "output": str(tmp_path / "o"),
    }
    assert job_settings(good, "sft")["training"]["epochs"] == 3
    for change, field in [
        ({"training": {"lr": 5.0}}, "training.lr"),
        ({"training": {"epochs": 0}}, "training.epochs"),
        ({"training": {"epoch": 3}}, "training.epoch"),
        ({"model": str(tmp_path)}, "model.name_or_path"),
        ({"data": str(tmp_path / "none.jsonl")}, "data.path"),
        ({"output": None}, "output"),
        ({"optimizer": "adam"}, "optimizer"),
    ]:
        with pytest.raises(ValueError, match=field.replace(".", r"\.")):
            job_settings({**good, **change}, "sft")


def test_sft_runs_as_a_tune_trainable_with_progress_reports(local_ray, assets, tmp_path):
    from ray import tune

    from pairgrpo_rllib.algorithms.registry import register_with_tune

    register_with_tune()
    spec = {
        "model": {"name_or_path": assets["tiny"]},
        "data": {"path": str(assets["task"] / "sft_train.jsonl"), "limit": 200},
        "training": {"epochs": 1, "batch_size": 20, "max_length": 48, "logging_steps": 2},
        "output": str(tmp_path / "sft_tune"),
    }
    tuner = tune.Tuner(
        "pairgrpo-sft",
        param_space={"spec": spec},
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="sft", verbose=0),
    )
    result = tuner.fit()[0]
    assert result.error is None
    assert result.metrics["done_job"] == 1 and result.metrics["steps"] == 10
    progress = result.metrics_dataframe
    assert "loss" in progress.columns and progress["loss"].notna().sum() >= 4  # a report per log step
    assert (tmp_path / "sft_tune" / "config.json").is_file()
