"""DPO: direct preference optimisation on the dataset's pairs (a baseline of the Pair-GRPO paper).

Paper: Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward
Model" (docs/references.md). docs/algorithms.md: "DPO".

Implementation details
1. ``-log sigmoid(beta [(log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x))])``
   with sequence log-probs summed over response tokens (``core.losses.dpo_loss``), beta 0.1.
2. pi_ref is the frozen starting policy (the SFT model in the pipeline), kept in the module.
3. Offline: pairs come from the dataset in a seeded order (``common/offline_pairs.py``).
"""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common.offline_pairs import (
    OfflinePairAlgorithm,
    OfflinePairConfig,
    OfflinePairLearner,
)
from pairgrpo_rllib.core.losses import dpo_loss, sequence_logp


class DPOConfig(OfflinePairConfig):
    ALGORITHM = "DPO"
    OWN_OPTIONS = ("dpo_beta",)

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or DPO)

    def get_default_learner_class(self):
        return DPOLearner


class DPO(OfflinePairAlgorithm):
    @classmethod
    def get_default_config(cls) -> DPOConfig:
        return DPOConfig()


class DPOLearner(OfflinePairLearner):
    def policy_loss(self, config, t):
        seq = sequence_logp(t.logp, t.mask)
        ref = sequence_logp(t.ref_logp, t.mask)
        (chosen, rejected), (ref_chosen, ref_rejected) = self.split(seq), self.split(ref)
        return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=config.dpo_beta)
