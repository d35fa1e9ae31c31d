"""The group batch: column names and how sampled groups become learner input.

Every column has leading dims ``(N, G, T)`` (N groups, G members, T padded steps) or ``(N, G)``:

=====================  ===================  ==============================================
column                 shape                meaning
=====================  ===================  ==============================================
``obs``                (N, G, T, obs_dim)   observations
``actions``            (N, G, T, act_dim)   actions (``(N, G, T)`` for discrete)
``action_logp``        (N, G, T)            log pi_old(a_t | s_t), recorded when sampling
``old_dist_inputs``    (N, G, T, D)         pi_old's distribution parameters per step
``loss_mask``          (N, G, T)            1.0 on real steps, 0.0 on padding
``rewards``            (N, G, T)            per-step rewards (scores are their sums)
``scores``             (N, G)               r_i: member return (the oracle's input)
``advantages``         (N, G) or (N, G, T)  A_i (per step with ``credit="step"``), from the driver
``grpo_advantages``    like ``advantages``  GRPO's advantages of the same batch (grad cosine only)
``pairs``              (N, P, 3)            (valid, winner, loser) preference pairs
``hard_pairs``         (N, K, P, 3)         Hard-Pair: the pairs it fits, ``(valid, w, l)``
``target_logp``        (N, K, P, G)         Hard-Pair: log pi_tar(.|S) per pair
=====================  ===================  ==============================================

K is the number of comparison units per group: 1 (``credit="sequence"``) or T (``credit="step"``,
one unit per time index: the members' suffixes from step t).

A batch row is a whole group, so RLlib's minibatching and sharding across learners never split a
group (Hard-Pair's shares need every member; RLLIB_NOTES: episode slicing splits groups).
"""

from __future__ import annotations

import numpy as np
import torch

OBS = "obs"
ACTIONS = "actions"
ACTION_LOGP = "action_logp"
OLD_DIST_INPUTS = "old_dist_inputs"
MASK = "loss_mask"
REWARDS = "rewards"
SCORES = "scores"
ADVANTAGES = "advantages"
GRPO_ADVANTAGES = "grpo_advantages"
PAIRS = "pairs"
TARGET_LOGP = "target_logp"
HARD_PAIRS = "hard_pairs"

# learner metrics used by the driver to keep the exact grad-norm variance over a run
GRAD_NORM_COUNT = "grad_norm_count"
GRAD_NORM_SUM = "grad_norm_sum"
GRAD_NORM_SQSUM = "grad_norm_sqsum"


def collate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate group batches along N, padding T to the longest."""
    if not parts:
        raise ValueError("no groups were sampled")
    t_max = max(p[MASK].shape[2] for p in parts)
    out: dict[str, np.ndarray] = {}
    for key in parts[0]:
        arrays = []
        for p in parts:
            a = p[key]
            if a.ndim >= 3 and key not in (PAIRS, HARD_PAIRS, TARGET_LOGP) and a.shape[2] < t_max:
                pad = [(0, 0)] * a.ndim
                pad[2] = (0, t_max - a.shape[2])
                a = np.pad(a, pad)
            arrays.append(a)
        out[key] = np.concatenate(arrays, axis=0)
    return out


def pairs_array(pairs: torch.Tensor, n_groups: int, max_pairs: int) -> np.ndarray:
    """``(P, 3)`` rows ``(group, winner, loser)`` -> ``(N, max_pairs, 3)`` rows ``(valid, winner, loser)``."""
    out = np.zeros((n_groups, max_pairs, 3), dtype=np.int64)
    fill = np.zeros(n_groups, dtype=np.int64)
    for grp, winner, loser in pairs.tolist():
        k = fill[grp]
        out[grp, k] = (1, winner, loser)
        fill[grp] += 1
    return out


def flat_pairs(pairs: torch.Tensor) -> torch.Tensor:
    """``(N, P, 3)`` ``(valid, winner, loser)`` -> ``(P', 3)`` ``(group, winner, loser)`` of the valid ones."""
    valid = pairs[..., 0] > 0
    group = torch.arange(pairs.shape[0], device=pairs.device).unsqueeze(-1).expand_as(valid)
    return torch.stack([group[valid], pairs[..., 1][valid], pairs[..., 2][valid]], dim=-1).long()
