"""Hard-Pair-GRPO: fit an explicit target distribution that moves delta_t from the loser to the winner.

Paper: Pair-GRPO §4.2 (its formulas were lost from the text we have; docs/algorithms.md,
"Hard-Pair-GRPO", gives them as a public reading of arXiv 2605.06375 has them).

Implementation details
1. Pairs: ``best_worst`` by default (the "critical preference pair", chosen reading), from the
   oracle's labels.
2. Support S = the sampled group; shares ``pi(y_i|S) = softmax_i(l(y_i))`` with ``l`` the mean step
   log-prob (``length_norm``, chosen: summed log-probs of 1000-step trajectories are one-hot).
   With ``credit="step"`` (ours) every time index t is a support of its own: the members' suffixes
   from t, paired by the labels of their reward-to-go (``core.hard_pair.unit_logp``).
3. Targets built on the driver from pi_old's recorded log-probs (``core.hard_pair.hard_pair_targets``):
   ``delta = min(delta_t, pi_old(l|S) - eps_p)``, ``delta_t = delta_0 gamma^t`` (t = iteration).
4. Loss ``KL(pi_theta(.|S) || pi_tar) + alpha max(0, KL(pi_theta || pi_old) - beta_tr)``
   (``hard_pair_grpo_learner``); the trust-region KL is the exact per-state KL where the module has
   explicit distributions (Gaussian, categorical), else the sampled estimate.
5. ``kl_coeff`` (GRPO's penalty to pi_ref, by ``kl_estimator``) defaults to 0, as in the paper.
"""

from __future__ import annotations

import numpy as np
import torch

from pairgrpo_rllib.algorithms.common.algorithm import GroupAlgorithm
from pairgrpo_rllib.algorithms.common.config import GroupAlgorithmConfig
from pairgrpo_rllib.algorithms.hard_pair_grpo.hard_pair_grpo_learner import HardPairGRPOLearner
from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.hard_pair import delta_schedule, group_shares, hard_pair_targets, unit_logp
from pairgrpo_rllib.core.preferences import pair_slots, pairs_to_rows, select_pairs


class HardPairGRPOConfig(GroupAlgorithmConfig):
    ALGORITHM = "Hard-Pair-GRPO"

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or HardPairGRPO)

    def get_default_learner_class(self):

        return HardPairGRPOLearner


class HardPairGRPO(GroupAlgorithm):
    @classmethod
    def get_default_config(cls) -> HardPairGRPOConfig:
        return HardPairGRPOConfig()

    def prepare_batch(self, batch, scores, labels, valid=None) -> None:
        cfg = self.config
        m, g = scores.shape
        n = batch[names.MASK].shape[0]
        pairs = select_pairs(labels, cfg.pairs, generator=self.label_generator)
        old = torch.as_tensor(batch[names.ACTION_LOGP], dtype=torch.float64).reshape(n * g, -1)
        mask = torch.as_tensor(batch[names.MASK]).reshape(n * g, -1) > 0
        old_shares = group_shares(unit_logp(old, mask, n, g, cfg.credit, cfg.length_norm))
        delta_t = delta_schedule(self.iteration, cfg.delta0, cfg.delta_gamma, decay=cfg.delta_decay)
        target, delta = hard_pair_targets(old_shares, pairs, delta_t, eps_p=cfg.eps_p)
        max_pairs = max(1, g * (g - 1) // 2)
        tgt = torch.zeros((m, max_pairs, g), dtype=torch.float32)
        if pairs.shape[0]:
            tgt[pairs[:, 0], pair_slots(pairs[:, 0], m)] = target.to(torch.float32)
        # Rows are regrouped per batch group (K = M / N units each) so that sharding keeps them whole.
        batch[names.HARD_PAIRS] = pairs_to_rows(pairs, m, max_pairs).numpy().reshape(n, m // n, max_pairs, 3)
        batch[names.TARGET_LOGP] = tgt.numpy().reshape(n, m // n, max_pairs, g)
        batch[names.ADVANTAGES] = np.zeros((m, g), dtype=np.float32)  # unused by the fit
        self.metrics.log_value(names.DELTA_T, delta_t, window=1)
        self.metrics.log_value(names.DELTA_MEAN, float(delta.mean()) if delta.numel() else 0.0, window=1)
