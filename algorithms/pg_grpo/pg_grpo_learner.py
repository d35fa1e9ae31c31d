"""PG-GRPO's loss: the preference ratio ``exp(beta_pg (log pi_theta - log pi_old))`` (``losses.pg_grpo_loss``)."""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.learner import GroupLearner
from pairgrpo_rllib.losses import pg_grpo_loss


class PGGRPOLearner(GroupLearner):
    def policy_loss(self, config, t):
        return pg_grpo_loss(
            t["logp"],
            t["old_logp"],
            t.get("ref_logp"),
            t["adv"],
            t["mask"],
            beta_pg=config.beta_pg,
            w1=config.kl_coeff,
            clip=config.clip_low,
            loss_agg=config.loss_agg,
            log_ratio_clamp=config.log_ratio_clamp,
            kl=t.get("kl"),
            max_len=t["max_len"],
        )
