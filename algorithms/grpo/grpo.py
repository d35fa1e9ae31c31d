"""GRPO: group-relative advantages and the clipped surrogate with a KL penalty.

Papers: DeepSeekMath §4 (GRPO); "What is the Alignment Objective of GRPO?" eq. 1-2 (the form
implemented). docs/algorithms.md: "Advantages" (GRPO), "Clipped surrogate", "KL to the reference".

Implementation details
1. Advantages ``(r_i - mean) / std`` per group (population std, zero-spread groups get 0), computed on
   the driver from the members' scores before the batch is sharded (``GroupAlgorithm.prepare_batch``).
2. One advantage per member, broadcast over its steps; the surrogate's ratio is per step
   (``GroupLearner.policy_loss`` -> ``core.losses.grpo_loss``).
3. KL to the frozen initial policy by the k3 estimator (GRPO's own). The MuJoCo configs choose the
   exact per-state Gaussian KL instead (``kl_estimator: analytic``, ours: k3 on 6-D Gaussians gave
   NaN gradients on HalfCheetah before the log-ratio clamp existed).
4. No critic: the group mean is the baseline.
"""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.algorithm import GroupAlgorithm
from pairgrpo_rllib.algorithms.common.config import GroupAlgorithmConfig


class GRPOConfig(GroupAlgorithmConfig):
    ALGORITHM = "GRPO"

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or GRPO)


class GRPO(GroupAlgorithm):
    @classmethod
    def get_default_config(cls) -> GRPOConfig:
        return GRPOConfig()
