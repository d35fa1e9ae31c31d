"""Hard-Pair-GRPO: fit an explicit target distribution that moves delta_t from the loser to the winner.

Paper: seed 000 section 4.2 (formulas from a public reading of arXiv 2605.06375; spec
ALGORITHMS.md "Hard-Pair-GRPO").

Implementation details
1. Pairs: ``best_worst`` by default (the "critical preference pair"), from the oracle's labels.
2. Support S = the sampled group; shares ``pi(y_i|S) = softmax_i(l(y_i))`` with ``l`` the mean step
   log-prob (``length_norm``, chosen: summed log-probs of 1000-step trajectories are one-hot).
   With ``credit="step"`` every time index t is a support of its own: the members' suffixes from t,
   paired by the labels of their reward-to-go (``learner.unit_logp``).
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
from pairgrpo_rllib.algorithms.common.learner import unit_logp
from pairgrpo_rllib.hard_pair import delta_schedule, group_shares, hard_pair_targets
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

    def prepare_batch(self, batch, scores, labels, valid=None) -> None:
        cfg = self.config
        m, g = scores.shape
        n = batch[B.MASK].shape[0]
        pairs = select_pairs(labels, cfg.pairs, generator=self._label_gen)
        old = torch.as_tensor(batch[B.ACTION_LOGP], dtype=torch.float64).reshape(n * g, -1)
        mask = torch.as_tensor(batch[B.MASK]).reshape(n * g, -1) > 0
        old_shares = group_shares(unit_logp(old, mask, n, g, cfg.credit, cfg.length_norm))
        delta_t = delta_schedule(self.iteration, cfg.delta0, cfg.delta_gamma, decay=cfg.delta_decay)
        target, delta = hard_pair_targets(old_shares, pairs, delta_t, eps_p=cfg.eps_p)
        max_pairs = max(1, g * (g - 1) // 2)
        tgt = np.zeros((m, max_pairs, g), dtype=np.float32)
        fill = np.zeros(m, dtype=np.int64)
        for row, (unit, _, _) in enumerate(pairs.tolist()):
            tgt[unit, fill[unit]] = target[row].numpy()
            fill[unit] += 1
        # Rows are regrouped per batch group (K = M / N units each) so that sharding keeps them whole.
        batch[B.HARD_PAIRS] = B.pairs_array(pairs, m, max_pairs).reshape(n, m // n, max_pairs, 3)
        batch[B.TARGET_LOGP] = tgt.reshape(n, m // n, max_pairs, g)
        batch[B.ADVANTAGES] = np.zeros((m, g), dtype=np.float32)  # unused by the fit
        self.metrics.log_value(C.DELTA_T, delta_t, window=1)
        self.metrics.log_value(C.DELTA_MEAN, float(delta.mean()) if delta.numel() else 0.0, window=1)
