"""PG-GRPO: GRPO with a preference ratio and shift-only advantages.

Paper: PG-GRPO §3. docs/algorithms.md: "PG-GRPO".

Implementation details
1. Ratio ``p = exp(beta_pg (log pi_theta - log pi_old))``, clipped to ``[1 - clip_low, 1 + clip_high]``
   (the note writes one symmetric epsilon: the defaults); ``beta_pg = 0.1`` (chosen: DPO's usual
   temperature).
2. Advantages ``A_i = r_i - mean(r)`` (``advantage_norm="mean"``, the note's words), configurable.
3. KL penalty ``w1 * D`` with ``w1 = kl_coeff`` and ``D`` by ``kl_estimator`` (the note: k3).
   With ``beta_pg = 1`` this is GRPO with ``advantage_norm="mean"``.
"""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.algorithm import GroupAlgorithm
from pairgrpo_rllib.algorithms.common.config import GroupAlgorithmConfig
from pairgrpo_rllib.algorithms.pg_grpo.pg_grpo_learner import PGGRPOLearner


class PGGRPOConfig(GroupAlgorithmConfig):
    ALGORITHM = "PG-GRPO"

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or PGGRPO)

    def get_default_learner_class(self):

        return PGGRPOLearner


class PGGRPO(GroupAlgorithm):
    @classmethod
    def get_default_config(cls) -> PGGRPOConfig:
        return PGGRPOConfig()
