"""Soft-Pair-GRPO: GRPO's loss driven by pairwise preferences only.

Paper: Pair-GRPO §4.1 (Theorem 1: its gradient has a positive inner product with GRPO's; exactly
GRPO's for G = 2). docs/algorithms.md: "Advantages" (pairwise) and "Where pairs come from".

Implementation details
1. The preference oracle labels every pair of a group (deterministic sign of the score difference,
   or Bradley-Terry labels with temperature tau: simulated noisy humans). The advantages see only the
   labels: ``pairs=all``: ``A_i = (wins - losses) / (G - 1)``; ``best_worst``/``disjoint``: +-1.
2. The loss is GRPO's (``GroupLearner.policy_loss``): only the advantages differ, so no formula is
   written twice.
"""

from __future__ import annotations

import numpy as np

from pairgrpo_rllib.algorithms.common.algorithm import GroupAlgorithm
from pairgrpo_rllib.algorithms.common.config import GroupAlgorithmConfig
from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.preferences import pairwise_advantages


class SoftPairGRPOConfig(GroupAlgorithmConfig):
    ALGORITHM = "Soft-Pair-GRPO"

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or SoftPairGRPO)


class SoftPairGRPO(GroupAlgorithm):
    @classmethod
    def get_default_config(cls) -> SoftPairGRPOConfig:
        return SoftPairGRPOConfig()

    def prepare_batch(self, batch, scores, labels, valid=None) -> None:
        # Missing members carry no labels (preference_labels), so their advantage is 0.
        adv, _ = pairwise_advantages(labels, self.config.pairs, generator=self.label_generator)
        batch[names.ADVANTAGES] = adv.numpy().astype(np.float32)
