"""Hard-Pair-GRPO: fit an explicit target distribution that moves delta_t from the loser to the winner.

Paper: seed 000 section 4.2 (formulas from a public reading of arXiv 2605.06375; spec
ALGORITHMS.md "Hard-Pair-GRPO").

Implementation details
1. Pairs: ``best_worst`` by default (the "critical preference pair"), from the oracle's labels.
2. Support S = the sampled group; shares ``pi(y_i|S) = softmax_i(l(y_i))`` with ``l`` the mean step
   log-prob (``length_norm``, chosen: summed log-probs of 1000-step trajectories are one-hot).
3. Targets built on the driver from pi_old's recorded log-probs (``hard_pair.hard_pair_targets``):
   ``delta = min(delta_t, pi_old(l|S) - eps_p)``, ``delta_t = delta_0 gamma^t`` (t = iteration).
4. Loss ``KL(pi_theta(.|S) || pi_tar) + alpha max(0, KL(pi_theta || pi_old) - beta_tr)``; the
   trust-region KL is the exact per-state Gaussian (or categorical) KL averaged over visited states.
5. ``kl_coeff`` (GRPO's penalty to pi_ref) defaults to 0, as in the paper.
"""

from __future__ import annotations

import numpy as np
import torch

from pairgrpo_rllib import constants as C
from pairgrpo_rllib.algorithms.common import batch as B
from pairgrpo_rllib.algorithms.common.algorithm import GroupAlgorithm
from pairgrpo_rllib.algorithms.common.config import GroupAlgorithmConfig
from pairgrpo_rllib.hard_pair import delta_schedule, group_shares, hard_pair_targets
from pairgrpo_rllib.losses import sequence_logp
from pairgrpo_rllib.preferences import select_pairs


class HardPairGRPOConfig(GroupAlgorithmConfig):
    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or HardPairGRPO)
        self.pairs = "best_worst"
        self.kl_coeff = 0.0

    def get_default_learner_class(self):
        from pairgrpo_rllib.algorithms.hard_pair_grpo.hard_pair_grpo_learner import HardPairGRPOLearner

        return HardPairGRPOLearner


class HardPairGRPO(GroupAlgorithm):
    @classmethod
    def get_default_config(cls) -> HardPairGRPOConfig:
        return HardPairGRPOConfig()

    def prepare_batch(self, batch, scores, labels) -> None:
        cfg = self.config
        n, g = scores.shape
        pairs = select_pairs(labels, cfg.pairs, generator=self._label_gen)
        old = torch.as_tensor(batch[B.ACTION_LOGP], dtype=torch.float64).reshape(n * g, -1)
        mask = torch.as_tensor(batch[B.MASK]).reshape(n * g, -1) > 0
        old_shares = group_shares(sequence_logp(old, mask, length_norm=cfg.length_norm).reshape(n, g))
        delta_t = delta_schedule(self.iteration, cfg.delta0, cfg.delta_gamma, decay=cfg.delta_decay)
        target, delta = hard_pair_targets(old_shares, pairs, delta_t, eps_p=cfg.eps_p)
        max_pairs = max(1, g * (g - 1) // 2)
        batch[B.HARD_PAIRS] = B.pairs_array(pairs, n, max_pairs)
        tgt = np.zeros((n, max_pairs, g), dtype=np.float32)
        fill = np.zeros(n, dtype=np.int64)
        for row, (grp, _, _) in enumerate(pairs.tolist()):
            tgt[grp, fill[grp]] = target[row].numpy()
            fill[grp] += 1
        batch[B.TARGET_LOGP] = tgt
        batch[B.ADVANTAGES] = np.zeros((n, g), dtype=np.float32)  # unused by the fit
        self.metrics.log_value(C.DELTA_T, delta_t, window=1)
        self.metrics.log_value(C.DELTA_MEAN, float(delta.mean()) if delta.numel() else 0.0, window=1)
