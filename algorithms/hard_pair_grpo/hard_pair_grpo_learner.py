"""Hard-Pair-GRPO's loss: ``KL(pi_theta || pi_tar)`` on the group support + the trust-region hinge."""

from __future__ import annotations

import torch

from pairgrpo_rllib.algorithms.common.learner import GroupLearner
from pairgrpo_rllib.core.distributions import masked_mean
from pairgrpo_rllib.core.hard_pair import group_shares, hard_pair_loss, unit_logp
from pairgrpo_rllib.core.kl import kl_penalty


class HardPairGRPOLearner(GroupLearner):
    def policy_loss(self, config, t):
        shares = group_shares(
            unit_logp(t.logp, t.mask, t.n_groups, t.group_size, config.credit, config.length_norm)
        )
        # KL(pi_theta || pi_old) over the visited states: exact for explicit distributions, else
        # the sampled estimate (docs/algorithms.md, Hard-Pair-GRPO).
        trust_region_kl = masked_mean(t.kl_to_old_or_sampled(), t.mask)
        ref_kl = None
        if config.kl_coeff > 0:
            # The optional penalty to pi_ref (never pi_old, whatever kl_anchor says), by the
            # configured estimator.
            if config.kl_estimator == "analytic":
                per_step = t.kl_to_ref
            else:
                # Padding is zeroed before any exp, so that it cannot give NaN gradients.
                real = lambda x: torch.where(t.mask, x, torch.zeros_like(x))  # noqa: E731
                per_step = kl_penalty(
                    real(t.logp),
                    real(t.ref_logp),
                    config.kl_estimator,
                    old_logp=real(t.old_logp),
                    log_ratio_clamp=config.log_ratio_clamp,
                )
            ref_kl = masked_mean(per_step, t.mask)
        return hard_pair_loss(
            shares,
            t.target_logp.to(shares.dtype),
            t.hard_pairs[:, 0],
            trust_region_kl=trust_region_kl,
            alpha=config.trust_region_alpha,
            beta_tr=config.trust_region_beta,
            trust_region=config.trust_region,
            ref_kl=ref_kl,
            kl_coeff=config.kl_coeff,
        )
