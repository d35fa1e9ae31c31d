"""``GroupLearner``: the TorchLearner of the GRPO family. Thin by design (STYLE habit 3).

``compute_loss_for_module`` does three things: fill the typed contract
(``core.contract.GroupTensors``: batch columns flattened to ``(N*G, T)``, plus the module's
``policy_terms``), call the algorithm's :meth:`GroupLearner.policy_loss` hook (a call into the math
layer), and log the stats. The batch does not say where it came from (MuJoCo group runner, bandit,
LLM rollout actors): every column is ``(N, G, T, ...)`` (``core.names``).

GRPO and Soft-Pair-GRPO share GRPO's loss (only their advantages differ, and those are computed on
the driver before the batch is sharded); PG-GRPO and Hard-Pair-GRPO override the hook.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import torch
import torch.distributed as dist
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.contract import GroupTensors
from pairgrpo_rllib.core.defaults import grpo_reference
from pairgrpo_rllib.core.diagnostics import grad_cosine, pair_accuracy
from pairgrpo_rllib.core.distributions import masked_mean
from pairgrpo_rllib.core.losses import grpo_loss, sequence_logp
from pairgrpo_rllib.core.preferences import rows_to_pairs
from pairgrpo_rllib.envs.llm.weight_sync.collective import LearnerEnd


def kl_weight(config) -> float:
    """beta in the loss; 0 with ``kl_in_reward``, where the penalty already sits in the scores."""
    return 0.0 if config.kl_in_reward else config.kl_coeff


def surrogate_inputs(config, t: GroupTensors) -> tuple[tuple, dict]:
    """The clipped surrogate's arguments (``core.losses.grpo_loss`` and the losses built on it):
    the tensors ``(logp, old_logp, anchor_logp, adv, mask)`` and the options, among them the KL
    penalty's: the anchor's log-probs, or the exact per-step KL when ``kl_estimator="analytic"``
    (then the estimator is never reached)."""
    anchor_logp, exact = t.anchor(config.kl_anchor)
    analytic = config.kl_estimator == "analytic"
    if analytic and exact is None:
        raise ValueError(
            "kl_estimator='analytic' needs a module with explicit per-step distributions; "
            "use a sampled estimator (k3) for this module"
        )
    options = {
        "clip_low": config.clip_low,
        "clip_high": config.clip_high,
        "kl": exact if analytic else None,
        "kl_estimator": "k3" if analytic else config.kl_estimator,
        "log_ratio_clamp": config.log_ratio_clamp,
        "loss_agg": config.loss_agg,
        "max_len": t.max_len,
        "token_count": t.token_count,
        "is_weights": t.is_weights,
    }
    return (t.logp, t.old_logp, anchor_logp, t.adv, t.mask), options


class GroupLearner(LearnerEnd, TorchLearner):
    """Loss of GRPO (and Soft-Pair-GRPO: same loss, pairwise advantages)."""

    # ---- the hook algorithms override ----------------------------------------------------
    def policy_loss(self, config, t: GroupTensors) -> tuple[torch.Tensor, dict]:
        """GRPO's clipped surrogate with a KL penalty (``core.losses.grpo_loss``)."""
        tensors, options = surrogate_inputs(config, t)
        return grpo_loss(*tensors, beta=kl_weight(config), **options)

    # ---- the contract ------------------------------------------------------------------------
    def group_tensors(self, module_id, batch, fwd_out) -> GroupTensors:
        """The batch and the module's outputs as ``GroupTensors`` (members flattened to rows)."""
        module = self.module[module_id].unwrapped()
        n, g, t_len = batch[names.MASK].shape

        def members(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(n * g, *x.shape[2:])

        terms = {k: members(v) for k, v in module.policy_terms(batch, fwd_out).items()}
        hard_pairs = target = None
        if names.HARD_PAIRS in batch:
            rows = batch[names.HARD_PAIRS].flatten(0, 1)  # (N, K, P, 3) -> (N*K, P, 3): a row per unit
            hard_pairs = rows_to_pairs(rows)
            target = batch[names.TARGET_LOGP].flatten(0, 1)[rows[..., 0] > 0].to(terms["logp"].dtype)
        # tis_cap: the learner's own recomputation of pi_old (and the truncated weights) when present
        old = batch[names.LEARNER_OLD_LOGP] if names.LEARNER_OLD_LOGP in batch else batch[Columns.ACTION_LOGP]
        mask = members(batch[names.MASK]).bool()
        return GroupTensors(
            n_groups=n,
            group_size=g,
            old_logp=members(old),
            is_weights=members(batch[names.IS_WEIGHTS]) if names.IS_WEIGHTS in batch else None,
            mask=mask,
            adv=members(batch[names.ADVANTAGES]),
            pairs=rows_to_pairs(batch[names.PAIRS]) if names.PAIRS in batch else None,
            hard_pairs=hard_pairs,
            target_logp=target,
            token_count=self._shared_token_count(module_id, mask),
            **terms,
        )

    def _shared_token_count(self, module_id, mask: torch.Tensor) -> torch.Tensor | None:
        """``token_mean`` over the whole minibatch when data-parallel learners each hold a shard:
        the real steps of all shards (one all-reduce) / the number of learners, so that the gradients
        the learners average are those of ``sum_i sum_t / sum_i T_i`` (docs/algorithms.md). None on
        a single learner or for the other aggregations (equal shards of whole groups make their
        per-shard means average to the global one)."""
        config = self.config.get_config_for_module(module_id)
        if config.loss_agg != "token_mean" or not dist.is_initialized() or dist.get_world_size() < 2:
            return None
        count = mask.sum().to(torch.float64)
        dist.all_reduce(count)
        return count / dist.get_world_size()

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        t = self.group_tensors(module_id, batch, fwd_out)
        loss, stats = self.policy_loss(config, t)
        stats = dict(stats)
        if not getattr(config, "OFFLINE", False):
            # a sampled KL estimate needs samples of pi_theta; dataset responses are not (DPO, ORPO)
            stats[names.KL_REF] = t.kl_ref_mean()
        if t.entropy is not None:
            stats[names.ENTROPY] = masked_mean(t.entropy, t.mask)
        if t.pairs is not None and t.pairs.shape[0]:
            seq = sequence_logp(t.logp.detach(), t.mask, length_norm=config.length_norm)
            stats[names.PAIR_ACCURACY] = torch.tensor(pair_accuracy(seq.reshape(t.n_groups, -1), t.pairs))
        # Mean over every minibatch update of the iteration (MeanStats without a window is cleared
        # each time the learner reduces its metrics, once per update() call), not the last minibatch.
        self.metrics.log_dict(
            {k: float(v) if torch.is_tensor(v) else v for k, v in stats.items()}, key=module_id, reduce="mean"
        )
        self.metrics.log_value((module_id, names.NUM_MINIBATCH_UPDATES), 1, reduce="sum")
        return loss

    def postprocess_gradients_for_module(self, *, module_id, config=None, module_gradients_dict):
        grads = [g for g in module_gradients_dict.values() if g is not None]
        norm = (
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            if grads
            else torch.zeros(())
        )
        value = float(norm)
        # Per optimizer step, before clipping; count/sum/sum of squares let the driver keep the
        # exact variance over the whole run (diagnostics.RunningMoments).
        self.metrics.log_value((module_id, names.GRAD_NORM), value, reduce="mean")
        self.metrics.log_value((module_id, names.GRAD_NORM_COUNT), 1, reduce="sum")
        self.metrics.log_value((module_id, names.GRAD_NORM_SUM), value, reduce="sum")
        self.metrics.log_value((module_id, names.GRAD_NORM_SQSUM), value * value, reduce="sum")
        return super().postprocess_gradients_for_module(
            module_id=module_id, config=config, module_gradients_dict=module_gradients_dict
        )

    def _policy_module(self):
        """The (single) policy module, unwrapped from data-parallel wrappers."""
        return self.module[next(iter(self.module.keys()))].unwrapped()

    def update_obs_stats(self, count: float, mean, m2) -> None:
        """Merge a batch's observation moments into the module's normaliser (all learners alike)."""
        for module_id in self.module.keys():
            norm = getattr(self.module[module_id].unwrapped(), "obs_norm", None)
            if norm is not None:
                norm.merge(count, mean, m2)

    def ref_action_logp(self, batch_np: dict):
        """``log pi_ref`` of the sampled actions, ``(N, G, T)`` (for ``kl_in_reward``)."""
        module = self._policy_module()
        return module.batch_reference_logp({k: torch.as_tensor(v) for k, v in batch_np.items()}).numpy()

    @torch.no_grad()
    def recompute_logp(self, batch_np: dict):
        """The learner's log-probs of the batch's tokens with the current weights (= pi_old before the
        update), ``(N, G, T)``: what the sampler's should equal (LLM runs)."""
        module = self._policy_module()
        return module.policy_logp({k: torch.as_tensor(v) for k, v in batch_np.items()}).numpy()

    @torch.no_grad()
    def kl_new_old(self, batch_np: dict) -> float:
        """Mean KL(pi_new || pi_old) over the batch's real steps, with the weights after the update:
        how far the iteration moved the policy (what the trust region and ``kl_anchor: old`` act on)."""
        module_id = next(iter(self.module.keys()))
        module = self.module[module_id].unwrapped()
        batch = {k: torch.as_tensor(v) for k, v in batch_np.items()}
        t = self.group_tensors(module_id, batch, module.forward_train(batch))
        return float(masked_mean(t.kl_to_old_or_sampled(), t.mask))

    # ---- Theorem 1 diagnostic ---------------------------------------------------------------
    def grad_cosine_vs_grpo(self, batch_np: dict) -> float:
        """Cosine between this algorithm's gradient and GRPO's on the same batch (no update).

        GRPO's advantages of the same units come with the batch (``grpo_advantages``, computed by
        the driver like every other advantage).
        """
        module_id = next(iter(self.module.keys()))
        module = self.module[module_id].unwrapped()
        config = self.config.get_config_for_module(module_id)
        # GRPO with GRPO's defaults: this algorithm's own default differences undone (Hard-Pair's
        # kl_coeff 0 -> 0.04; PG-GRPO's advantages come from the driver with GRPO's norm).
        reference = SimpleNamespace(**{**vars(config), **grpo_reference(getattr(config, "ALGORITHM", None))})
        batch = {k: torch.as_tensor(v) for k, v in batch_np.items()}
        params = [p for p in module.parameters() if p.requires_grad]

        def grads(use_grpo: bool):
            t = self.group_tensors(module_id, batch, module.forward_train(batch))
            if use_grpo:
                grpo_adv = batch[names.GRPO_ADVANTAGES].reshape(t.adv.shape).to(t.logp.dtype)
                loss, _ = GroupLearner.policy_loss(self, reference, dataclasses.replace(t, adv=grpo_adv))
            else:
                loss, _ = self.policy_loss(config, t)
            return torch.autograd.grad(loss, params, allow_unused=True)

        return grad_cosine(grads(False), grads(True))
