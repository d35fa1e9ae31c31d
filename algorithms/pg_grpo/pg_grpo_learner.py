"""PG-GRPO's loss: the preference ratio ``exp(beta_pg (log pi_theta - log pi_old))`` (``losses.pg_grpo_loss``)."""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.learner import (
    GroupLearner,
    kl_weight,
    shared_loss_options,
    surrogate_inputs,
)
from pairgrpo_rllib.losses import pg_grpo_loss


class PGGRPOLearner(GroupLearner):
    def policy_loss(self, config, t):
        return pg_grpo_loss(
            *surrogate_inputs(t),
            beta_pg=config.beta_pg,
            w1=kl_weight(config),
            clip=config.clip_low,
            **shared_loss_options(config, t),
        )
