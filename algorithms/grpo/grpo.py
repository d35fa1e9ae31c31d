"""GRPO: group-relative advantages and the clipped surrogate with a KL penalty.

Paper: Shao et al. 2024 (DeepSeekMath) section 4; seed 004 eq. 1-2 (the form implemented).
Spec: ALGORITHMS.md "Advantages" (GRPO), "Clipped surrogate", "KL to the reference".

Implementation details
1. Advantages ``(r_i - mean) / std`` per group (population std, zero-spread groups get 0), computed on
   the driver from the members' returns before the batch is sharded (``GroupAlgorithm.prepare_batch``).
2. One advantage per member, broadcast over its steps; the surrogate's ratio is per step.
3. KL to the frozen initial policy; for continuous actions the exact per-state Gaussian KL
   (``kl_estimator="analytic"``, spec) instead of the k3 sample estimate, which gave NaN gradients on
   HalfCheetah (RLLIB_NOTES); ``k1/k2/k3/k3_is`` remain available with a log-ratio clamp.
4. No critic: the group mean is the baseline. Deviation from seed 000 on MuJoCo: none known.
"""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.algorithm import GroupAlgorithm
from pairgrpo_rllib.algorithms.common.config import GroupAlgorithmConfig


class GRPOConfig(GroupAlgorithmConfig):
    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or GRPO)


class GRPO(GroupAlgorithm):
    @classmethod
    def get_default_config(cls) -> GRPOConfig:
        return GRPOConfig()
