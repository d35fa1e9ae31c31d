"""PG-GRPO's loss: GRPO's surrogate on the preference ratio ``exp(beta_pg (log pi_theta - log pi_old))``."""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.learner import GroupLearner, kl_weight, penalty_inputs
from pairgrpo_rllib.core.losses import pg_grpo_loss


class PGGRPOLearner(GroupLearner):
    def policy_loss(self, config, t):
        kw = penalty_inputs(config, t)
        return pg_grpo_loss(
            t.logp,
            t.old_logp,
            kw.pop("ref_logp"),
            t.adv,
            t.mask,
            beta_pg=config.beta_pg,
            w1=kl_weight(config),
            clip_low=config.clip_low,
            clip_high=config.clip_high,
            **kw,
        )
