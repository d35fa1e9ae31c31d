"""The GRPO family (and the data-set pair algorithms) on token batches: one step each, short seeded
learning, pair labels from an online annotator or a data set, sampler agreement and TIS, and
what is trained on not depending on the number of rollout actors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from pairgrpo_rllib.core import names
from pairgrpo_rllib.envs.llm import synthetic as S

FAMILY = ("GRPO", "Soft-Pair-GRPO", "Hard-Pair-GRPO", "PG-GRPO")


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


@pytest.mark.parametrize("name", FAMILY)
def test_every_family_algorithm_takes_one_step_on_tokens(local_ray, assets, name, llm_config, learner_of):
    algo = llm_config(name, assets).build_algo()
    try:
        learner = learner_of(algo)
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


@pytest.mark.parametrize("name", FAMILY)
def test_short_seeded_learning_raises_the_true_reward(local_ray, assets, name, llm_config):
    """From the SFT policy, with the learned reward model as the only signal (the truth scorer only
    evaluates): the expected true reward on held-out prompts rises (docs/results/llm_study.md has the numbers).
    Judged on the 150 prompts' paired differences (the same evaluation seeds before and after), with a
    margin for float kernels: a mean rise above 0.02 and a paired t above 3 (one seed at a fixed 0.05
    rise held on AVX-512 kernels and missed by 4e-17 on AVX2 for Hard-Pair-GRPO: 0.606 -> 0.656)."""
    algo = llm_config(
        name, assets, group_size=8, train_batch_size_per_learner=16 * 8 * 12, minibatch_size=4, lr=5e-5
    ).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        before = np.asarray(runner.evaluate(150))
        for _ in range(20):
            algo.train()
        rise = np.asarray(runner.evaluate(150)) - before  # per prompt, paired
        t = rise.mean() / (rise.std(ddof=1) / np.sqrt(rise.size))
        assert rise.mean() > 0.02 and t > 3, (before.mean(), rise.mean(), t)
    finally:
        algo.stop()


@pytest.mark.parametrize("name", ["Soft-Pair-GRPO", "Hard-Pair-GRPO"])
def test_pair_algorithms_learn_from_an_online_annotators_labels(local_ray, assets, name, llm_config):
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


@pytest.mark.parametrize("name", ["Soft-Pair-GRPO", "Hard-Pair-GRPO"])
def test_pair_algorithms_train_on_dataset_pairs_with_the_learners_pi_old(
    local_ray, assets, name, pair_config, learner_of
):
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
        module = learner_of(algo).module[DEFAULT_MODULE_ID].unwrapped()
        before = {k: v.clone() for k, v in module.lm.state_dict().items()}
        out = algo.train()
        assert math.isfinite(out["learners"][DEFAULT_MODULE_ID]["loss"])
        assert any(not torch.equal(before[k], v) for k, v in module.lm.state_dict().items())
    finally:
        algo.stop()
    with pytest.raises(ValueError, match="group_size"):
        pair_config(name, assets).training(pair_source="dataset", group_size=4).validate()


def test_sampler_agreement_is_logged_and_tis_uses_the_learners_log_probs(local_ray, assets, llm_config):
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


@pytest.mark.parametrize("name", ["DPO", "ORPO", "Soft-Pair-GRPO/dataset"])
def test_what_dataset_pair_algorithms_train_on_does_not_depend_on_the_rollout_actors(
    local_ray, assets, name, pair_config
):
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


def test_grpo_samples_the_same_prompts_and_group_numbers_with_any_number_of_actors(
    local_ray, assets, llm_config
):
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
