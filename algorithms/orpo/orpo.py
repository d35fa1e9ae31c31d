"""ORPO: odds-ratio preference optimisation on the dataset's pairs (a baseline of the Pair-GRPO paper).

Paper: Hong et al., "ORPO: Monolithic Preference Optimization without Reference Model"
(docs/references.md). docs/algorithms.md: "ORPO".

Implementation details
1. ``NLL(y_w) + lambda * (-log sigmoid(log odds(y_w) - log odds(y_l)))``, odds from the mean token
   log-prob (``core.losses.orpo_loss``), lambda 0.1.
2. No reference model in the loss (the module keeps its frozen copy for the ``kl_ref`` diagnostic).
3. Offline: pairs come from the dataset in a seeded order (``common/offline_pairs.py``).
"""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.offline_pairs import (
    OfflinePairAlgorithm,
    OfflinePairConfig,
    OfflinePairLearner,
)
from pairgrpo_rllib.core.losses import orpo_loss


class ORPOConfig(OfflinePairConfig):
    ALGORITHM = "ORPO"
    OWN_OPTIONS = ("orpo_lambda",)

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or ORPO)

    def get_default_learner_class(self):
        return ORPOLearner


class ORPO(OfflinePairAlgorithm):
    @classmethod
    def get_default_config(cls) -> ORPOConfig:
        return ORPOConfig()


class ORPOLearner(OfflinePairLearner):
    def policy_loss(self, config, t):
        (lw, ll), (mw, ml) = self.split(t.logp), self.split(t.mask)
        return orpo_loss(lw, mw, ll, ml, lam=config.orpo_lambda)
