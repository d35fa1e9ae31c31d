"""The family's learner (algorithms/common/learner.py) on a causal LM: its loss equals the pure
function, two data-parallel learners stay in sync, token_mean is the global token mean."""

from __future__ import annotations

import math

import numpy as np
import ray
import torch
import torch.distributed as dist
from ray.rllib.core import DEFAULT_MODULE_ID

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.losses import grpo_loss
from pairgrpo_rllib.envs.llm.models import load_causal_lm


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
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]
    ).numpy()


def test_learner_loss_on_tokens_equals_the_pure_function(local_ray, assets, llm_config, learner_loss):
    algo = llm_config("GRPO", assets, kl_coeff=0.1).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        loss, fwd, t = learner_loss(algo, runner.sample_groups(3, first=0))
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


def test_two_learners_train_a_language_model_in_sync(assets, llm_config):
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


def test_token_mean_with_two_learners_is_the_global_token_mean(assets, llm_config, learner_of):
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
            whole = _shard_gradient(learner_of(one), batch, 1)
            # each half's own token mean, averaged: what the shards would give without the shared count
            halves = [
                _shard_gradient(learner_of(one), {k: v[:2] for k, v in batch.items()}, 1),
                _shard_gradient(learner_of(one), {k: v[2:] for k, v in batch.items()}, 1),
            ]
        finally:
            one.stop()
        two = (
            cfg.copy(copy_frozen=False)
            .learners(num_learners=2)
            .training(train_batch_size_per_learner=4 * 12 * 2)
        )
        algo = two.build_algo()
        try:
            grads = [
                r.get()
                for r in algo.learner_group.foreach_learner(lambda lrn: _shard_gradient(lrn, batch, 2))
            ]
        finally:
            algo.stop()
    finally:
        ray.shutdown()
    assert len(grads) == 2
    averaged = (grads[0] + grads[1]) / 2
    assert np.allclose(averaged, whole, rtol=1e-4, atol=1e-7)
    assert not np.allclose((halves[0] + halves[1]) / 2, whole, rtol=1e-2, atol=1e-6)  # the test can tell
