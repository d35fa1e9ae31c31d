"""The rollout actor (envs/llm/runner.py) on a real local Ray: its log-probs equal the learner's,
groups are numbered by the driver, a checkpoint restores the prompt position and weights, and a
trial's seed moves the prompt order, the sampling and the labels."""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from pairgrpo_rllib.core import names
from pairgrpo_rllib.envs.llm.models import load_causal_lm


def test_sampler_log_probs_equal_the_learners_before_and_after_an_update(
    local_ray, assets, llm_config, learner_of
):
    """The engine's per-token log-probs of its own samples equal the learner's recomputation (fp32,
    1e-4), and after a training step and weight sync the runner generates from the new weights."""
    algo = llm_config("GRPO", assets).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        learner = learner_of(algo)
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


def test_groups_are_numbered_by_the_driver_and_reproducible(local_ray, assets, llm_config):
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


def test_checkpoint_restore_continues_with_the_next_prompts_and_serves_the_saved_weights(
    local_ray, assets, tmp_path, llm_config, learner_of
):
    algo = llm_config("GRPO", assets).build_algo()
    try:
        algo.train()
        algo.train()
        path = algo.save_to_path(str(tmp_path / "ckpt"))
        weights = {
            k: v.clone()
            for k, v in learner_of(algo).module[DEFAULT_MODULE_ID].unwrapped().lm.state_dict().items()
        }
        nxt = algo.env_runner_group.local_env_runner.sample_groups(3, first=algo._groups_drawn)
    finally:
        algo.stop()
    fresh = llm_config("GRPO", assets).build_algo()
    try:
        fresh.restore_from_path(path)
        assert fresh._groups_drawn == 6  # two iterations of 3 groups
        restored = learner_of(fresh).module[DEFAULT_MODULE_ID].unwrapped()
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


def test_a_trials_seed_changes_prompt_order_sampling_and_labels(local_ray, assets, llm_config):
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
