"""PG-GRPO's loss: GRPO's surrogate on the preference ratio ``exp(beta_pg (log pi_theta - log pi_old))``."""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.learner import GroupLearner, kl_weight, surrogate_inputs
from pairgrpo_rllib.core.losses import pg_grpo_loss


class PGGRPOLearner(GroupLearner):
    def policy_loss(self, config, t):
        tensors, options = surrogate_inputs(config, t)
        return pg_grpo_loss(*tensors, beta_pg=config.beta_pg, w1=kl_weight(config), **options)
