"""``GroupLearner``: the TorchLearner of the GRPO family. Thin by design (STYLE habit 3).

It gathers columns of a group batch, calls the math layer, logs stats. The batch does not say where
it came from (MuJoCo group runner, bandit, LLM rollout actors): every column is ``(N, G, T, ...)``
with N groups, G members, T padded steps (see ``pairgrpo_rllib.algorithms.common.batch``).

Algorithms override one hook, :meth:`policy_loss`, which maps the flattened ``(N*G, T)`` tensors to
``(loss, stats)``; GRPO and Soft-Pair-GRPO share GRPO's (only their advantages differ, and those are
computed on the driver before the batch is sharded).
"""

from __future__ import annotations

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from pairgrpo_rllib import constants as C
from pairgrpo_rllib.advantages import step_groups
from pairgrpo_rllib.algorithms.common import batch as B
from pairgrpo_rllib.algorithms.common.rl_module import REF_DIST_INPUTS
from pairgrpo_rllib.diagnostics import categorical_entropy, diag_gaussian_entropy, pair_accuracy
from pairgrpo_rllib.kl import categorical_kl, diag_gaussian_kl
from pairgrpo_rllib.losses import grpo_loss, sequence_logp, suffix_logp


def action_logp(dist_inputs: torch.Tensor, actions: torch.Tensor, gaussian: bool) -> torch.Tensor:
    """Log-prob of ``actions`` under the policy given by ``dist_inputs`` (leading dims preserved)."""
    if gaussian:
        mean, log_std = dist_inputs.chunk(2, dim=-1)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z * z - log_std - 0.5 * torch.log(torch.tensor(2 * torch.pi, dtype=z.dtype))).sum(-1)
    logp = torch.log_softmax(dist_inputs, dim=-1)
    return torch.gather(logp, -1, actions.long().unsqueeze(-1)).squeeze(-1)


def analytic_kl(p_inputs: torch.Tensor, q_inputs: torch.Tensor, gaussian: bool) -> torch.Tensor:
    """Exact per-state ``KL(p || q)`` of two action distributions given by their inputs."""
    if gaussian:
        mp, lp = p_inputs.chunk(2, dim=-1)
        mq, lq = q_inputs.chunk(2, dim=-1)
        return diag_gaussian_kl(mp, lp, mq, lq)
    return categorical_kl(p_inputs, q_inputs)


def entropy(dist_inputs: torch.Tensor, gaussian: bool) -> torch.Tensor:
    if gaussian:
        return diag_gaussian_entropy(dist_inputs.chunk(2, dim=-1)[1])
    return categorical_entropy(dist_inputs)


def unit_logp(
    logp: torch.Tensor, mask: torch.Tensor, n: int, g: int, credit: str, length_norm: bool
) -> torch.Tensor:
    """``l`` of each comparison unit, ``(M, G)``: whole members (``sequence``, M = N) or the
    members' suffixes from every time index (``step``, M = N * T; rows as ``step_groups``).

    Units that do not exist (a member that ended before step t) get -1e9, so that a softmax over
    the group (Hard-Pair's shares) gives them no mass.
    """
    if credit != "step":
        return sequence_logp(logp, mask, length_norm=length_norm).reshape(n, g)
    suffix = suffix_logp(logp, mask, length_norm=length_norm)
    units = step_groups(suffix.reshape(n, g, -1))
    valid = step_groups(mask.reshape(n, g, -1).bool())
    return torch.where(valid, units, torch.full_like(units, -1e9))


def surrogate_inputs(t: dict) -> tuple:
    """The positional tensors every surrogate loss takes: logp, old_logp, ref_logp, adv, mask."""
    return t["logp"], t["old_logp"], t.get("ref_logp"), t["adv"], t["mask"]


def shared_loss_options(config, t: dict) -> dict:
    """Options GRPO's and PG-GRPO's losses share (aggregation, clamp, precomputed KL, T_max)."""
    return {
        "loss_agg": config.loss_agg,
        "log_ratio_clamp": config.log_ratio_clamp,
        "kl": t.get("kl"),
        "max_len": t["max_len"],
    }


def flat_advantages(adv: torch.Tensor, n: int, g: int) -> torch.Tensor:
    """``(N, G)`` per member -> ``(N*G,)``; ``(N, G, T)`` per step -> ``(N*G, T)``."""
    return adv.reshape(n * g, *adv.shape[2:])


def kl_weight(config) -> float:
    """beta in the loss; 0 with ``kl_in_reward``, where the penalty already sits in the scores."""
    return 0.0 if config.kl_in_reward else config.kl_coeff


class GroupLearner(TorchLearner):
    """Loss of GRPO (and Soft-Pair-GRPO: same loss, pairwise advantages)."""

    # ---- the hook algorithms override ----------------------------------------------------
    def policy_loss(self, config, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """GRPO's clipped surrogate with a KL penalty (``losses.grpo_loss``)."""
        return grpo_loss(
            *surrogate_inputs(t),
            clip_low=config.clip_low,
            clip_high=config.clip_high,
            beta=kl_weight(config),
            kl_estimator=config.kl_estimator if config.kl_estimator != "analytic" else "k3",
            **shared_loss_options(config, t),
        )

    # ---- shared plumbing -----------------------------------------------------------------
    def gather(self, module_id, config, batch, fwd_out) -> dict[str, torch.Tensor]:
        """Flatten the group batch to ``(N*G, T)`` tensors and compute log-probs and KLs."""
        module = self.module[module_id].unwrapped()
        gaussian = module.actor.log_std is not None
        n, g, t_len = batch[B.MASK].shape
        flat = lambda x: x.reshape(n * g, t_len, *x.shape[3:])  # noqa: E731
        dist_inputs = flat(fwd_out[Columns.ACTION_DIST_INPUTS])
        actions = flat(batch[Columns.ACTIONS])
        mask = flat(batch[B.MASK]).bool()
        out = {
            "n": n,
            "g": g,
            "gaussian": gaussian,
            "dist_inputs": dist_inputs,
            "logp": action_logp(dist_inputs, actions, gaussian),
            "old_logp": flat(batch[Columns.ACTION_LOGP]),
            "adv": flat_advantages(batch[B.ADVANTAGES], n, g),
            "mask": mask,
            "max_len": t_len,
            "batch": batch,
            "flat": flat,
        }
        anchor_inputs = (
            flat(fwd_out[REF_DIST_INPUTS]) if config.kl_anchor == "ref" else flat(batch[B.OLD_DIST_INPUTS])
        )
        if config.kl_estimator == "analytic":
            out["kl"] = analytic_kl(dist_inputs, anchor_inputs, gaussian)
        else:
            out["ref_logp"] = action_logp(anchor_inputs, actions, gaussian)
        # Always report KL to pi_ref (exact, per visited state), whatever the loss uses.
        ref_kl = analytic_kl(dist_inputs.detach(), flat(fwd_out[REF_DIST_INPUTS]), gaussian)
        out["kl_ref_exact"] = (ref_kl * mask).sum() / mask.sum().clamp(min=1)
        return out

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        t = self.gather(module_id, config, batch, fwd_out)
        loss, stats = self.policy_loss(config, t)
        mask = t["mask"]
        ent = entropy(t["dist_inputs"].detach(), t["gaussian"])
        stats = dict(stats)
        stats[C.KL_REF] = t["kl_ref_exact"]
        stats[C.ENTROPY] = (ent * mask).sum() / mask.sum().clamp(min=1)
        if B.PAIRS in batch:
            seq = sequence_logp(t["logp"].detach(), mask, length_norm=config.length_norm).reshape(
                t["n"], t["g"]
            )
            pairs = B.flat_pairs(batch[B.PAIRS])
            if pairs.shape[0]:
                stats[C.PAIR_ACCURACY] = torch.tensor(pair_accuracy(seq, pairs))
        self.metrics.log_dict(
            {k: v.detach() if torch.is_tensor(v) else v for k, v in stats.items()}, key=module_id, window=1
        )
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
        # exact variance over the whole run (diagnostics.RunningMoments.merge).
        self.metrics.log_value((module_id, C.GRAD_NORM), value, window=1)
        self.metrics.log_value((module_id, B.GRAD_NORM_COUNT), 1, reduce="sum")
        self.metrics.log_value((module_id, B.GRAD_NORM_SUM), value, reduce="sum")
        self.metrics.log_value((module_id, B.GRAD_NORM_SQSUM), value * value, reduce="sum")
        return super().postprocess_gradients_for_module(
            module_id=module_id, config=config, module_gradients_dict=module_gradients_dict
        )

    def update_obs_stats(self, count: float, mean, m2) -> None:
        """Merge a batch's observation moments into the module's normaliser (all learners alike)."""
        for module_id in self.module.keys():
            norm = getattr(self.module[module_id].unwrapped(), "obs_norm", None)
            if norm is not None:
                norm.merge(count, mean, m2)

    def ref_action_logp(self, batch_np: dict):
        """``log pi_ref`` of the sampled actions, ``(N, G, T)`` (for ``kl_in_reward``)."""
        module = self.module[next(iter(self.module.keys()))].unwrapped()
        with torch.no_grad():
            inputs = module.ref_actor(module._obs({Columns.OBS: torch.as_tensor(batch_np[B.OBS])}))
            return action_logp(
                inputs, torch.as_tensor(batch_np[Columns.ACTIONS]), module.actor.log_std is not None
            ).numpy()

    # ---- Theorem 1 diagnostic ---------------------------------------------------------------
    def grad_cosine_vs_grpo(self, batch_np: dict) -> float:
        """Cosine between this algorithm's gradient and GRPO's on the same batch (no update).

        GRPO's advantages of the same units come with the batch (``grpo_advantages``, computed by
        the driver like every other advantage).
        """
        from pairgrpo_rllib.diagnostics import grad_cosine

        module_id = next(iter(self.module.keys()))
        module = self.module[module_id].unwrapped()
        config = self.config.get_config_for_module(module_id)
        batch = {k: torch.as_tensor(v) for k, v in batch_np.items()}
        params = [p for p in module.actor.parameters() if p.requires_grad]

        def grads(use_grpo: bool):
            fwd = module.forward_train(batch)
            t = self.gather(module_id, config, batch, fwd)
            if use_grpo:
                t["adv"] = flat_advantages(batch[B.GRPO_ADVANTAGES], t["n"], t["g"]).to(t["logp"].dtype)
                loss, _ = GroupLearner.policy_loss(self, config, t)
            else:
                loss, _ = self.policy_loss(config, t)
            return torch.autograd.grad(loss, params, allow_unused=True)

        return grad_cosine(grads(False), grads(True))
