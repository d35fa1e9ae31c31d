"""The LLM settings (envs/llm/settings.py): bad configs fail before Ray naming the field, a judge
without scores cannot be the eval scorer, vLLM requests fail early where vLLM cannot serve, and
several prompt sources are concatenated."""

from __future__ import annotations

import json

import pytest

from pairgrpo_rllib.core import names
from pairgrpo_rllib.envs.llm import data as D


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
def test_bad_llm_configs_fail_before_ray_naming_the_field(assets, tmp_path, change, field, llm_config):
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


@pytest.mark.parametrize("kind", ["annotator", "generative"])
def test_a_judge_without_scores_is_rejected_as_eval_scorer(assets, kind, llm_config):
    """Training's periodic evaluation averages scores; a judge that gives labels only cannot serve."""
    cfg = llm_config("Soft-Pair-GRPO", assets)
    cfg.env_config["scorer"] = {"kind": "annotator"}  # set: environment() would merge the path in
    path = {"path": assets["sft"]} if kind == "generative" else {}
    cfg.env_config["eval_scorer"] = {"kind": kind, **path}
    with pytest.raises(ValueError, match=r"env_config\.eval_scorer"):
        cfg.training(eval_interval=5).validate()


def test_vllm_requests_fail_early_where_vllm_cannot_serve(assets, tmp_path, monkeypatch, llm_config):
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


def test_several_prompt_sources_are_concatenated(local_ray, assets, llm_config):
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
