"""The causal-LM policy (algorithms/common/lm_module.py) with LoRA: adapters train, the reference is
the base, the engines serve the merged weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from pairgrpo_rllib.core import names
from pairgrpo_rllib.envs.llm.models import load_causal_lm


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_lora_trains_adapters_only_and_engines_serve_the_merged_weights(
    local_ray, assets, engine, llm_config, learner_of
):
    """LoRA (peft): base weights stay, adapters move; the reference is the base (adapters off); the
    rollout engine's log-probs equal the learner's after updates (vLLM gets the merged weights)."""
    lora = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    cfg = llm_config("GRPO", assets, lr=1e-2).environment(names.LLM_ENV, env_config={"engine": engine})
    algo = cfg.rl_module(model_config={"name_or_path": assets["sft"], "lora": lora}).build_algo()
    try:
        module = learner_of(algo).module[DEFAULT_MODULE_ID].unwrapped()
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
