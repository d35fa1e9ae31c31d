"""PG-GRPO: GRPO with a preference ratio and shift-only advantages.

Paper: seed 003 section 3. Spec: ALGORITHMS.md "PG-GRPO".

Implementation details
1. Ratio ``p = exp(beta_pg (log pi_theta - log pi_old))``, clipped symmetrically with ``clip_low``;
   ``beta_pg = 0.1`` (chosen: DPO's usual temperature).
2. Advantages ``A_i = r_i - mean(r)`` (``advantage_norm="mean"``, the seed's words), configurable.
3. KL penalty ``w1 * D`` with ``w1 = kl_coeff``. With ``beta_pg = 1`` this is GRPO with ``mean``.
"""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.algorithm import GroupAlgorithm
from pairgrpo_rllib.algorithms.common.config import GroupAlgorithmConfig


class PGGRPOConfig(GroupAlgorithmConfig):
    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or PGGRPO)
        self.advantage_norm = "mean"

    def get_default_learner_class(self):
        from pairgrpo_rllib.algorithms.pg_grpo.pg_grpo_learner import PGGRPOLearner

        return PGGRPOLearner


class PGGRPO(GroupAlgorithm):
    @classmethod
    def get_default_config(cls) -> PGGRPOConfig:
        return PGGRPOConfig()
