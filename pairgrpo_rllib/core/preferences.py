"""Preference oracles and pairwise advantages (Soft-Pair-GRPO, Pair-GRPO §4.1).

Spec: ``docs/algorithms.md`` sections "Notation" and "Advantages". Pure torch.

A group's preferences are an antisymmetric label matrix ``s`` of shape ``(N, G, G)``:
``s[n, i, j] = +1`` if ``y_i`` is preferred to ``y_j``, ``-1`` if ``y_j`` is preferred, ``0`` for no
preference (ties of the deterministic oracle, and the diagonal). Pair algorithms see only ``s``,
never the scores it came from.

Implementation details
1. ``bradley_terry`` draws one label per unordered pair with ``P(i > j) = sigmoid((r_i - r_j)/tau)``
   (Christiano et al. 2017's simulated labeller): every pair gets a label, ties included.
2. ``best_worst`` picks the member with the most wins minus losses (Copeland score, computed from
   the labels only) and the one with the fewest; ties are broken at random. The pair is oriented by
   its own label, so a noisy label can make the "worst" the winner, and a tie gives no pair.
3. ``disjoint`` pairs a random permutation of the group two by two; with odd G the last member is
   left out (advantage 0).
4. Randomness comes from ``generator`` (a ``torch.Generator``); ``None`` uses torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from pairgrpo_rllib.core.checks import check_choice, check_positive
from pairgrpo_rllib.core.defaults import default
from pairgrpo_rllib.core.names import PAIR_MODES

Judge = Callable[[Any, Any], float]
"""A pairwise judge: ``judge(y_i, y_j)`` returns ``P(y_i preferred to y_j)`` in ``[0, 1]``."""


def _antisymmetric(upper: torch.Tensor) -> torch.Tensor:
    """Keep the strict upper triangle of ``(N, G, G)`` and mirror it with a minus sign."""
    triu = torch.triu(upper, diagonal=1)
    return triu - triu.transpose(-1, -2)


def preference_matrix(
    scores: torch.Tensor,
    oracle: str = default("preference_oracle"),
    *,
    temperature: float = default("preference_temperature"),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Label every pair of each group from the members' scores.

    Args:
        scores: ``(N, G)`` one group per row.
        oracle: ``deterministic`` (``sign(r_i - r_j)``, ties 0) or ``bradley_terry`` (a label drawn
            with probability ``sigmoid((r_i - r_j) / temperature)``).
        temperature: tau of the Bradley-Terry labeller, > 0.
        generator: random source for ``bradley_terry``.

    Returns:
        ``(N, G, G)`` antisymmetric labels in {-1, 0, +1}, dtype of ``scores``.
    """
    check_choice("preference_oracle", oracle, ("deterministic", "bradley_terry"))
    if scores.dim() != 2:
        raise ValueError(f"scores has shape {tuple(scores.shape)}; expected (N, G) with one group per row")
    diff = scores.unsqueeze(-1) - scores.unsqueeze(-2)  # diff[n, i, j] = r_i - r_j
    if oracle == "deterministic":
        return torch.sign(diff)
    check_positive("preference_temperature", temperature)
    p_win = torch.sigmoid(diff / temperature)
    u = torch.rand(p_win.shape, generator=generator, dtype=p_win.dtype, device=p_win.device)
    labels = torch.where(u < p_win, torch.ones_like(p_win), -torch.ones_like(p_win))
    return _antisymmetric(labels)


def judge_preference_matrix(
    groups: Sequence[Sequence[Any]],
    judge: Judge,
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Label every pair of each group with a pluggable judge (the ``judge`` oracle).

    Args:
        groups: N groups of G responses each (any objects the judge understands).
        judge: ``judge(y_i, y_j) -> P(y_i > y_j)`` in ``[0, 1]``; called once per unordered pair.
        sample: draw each label with the judge's probability (a noisy judge) instead of
            thresholding it at 0.5 (exactly 0.5 gives no preference).
        generator: random source when ``sample``.

    Returns:
        ``(N, G, G)`` antisymmetric labels in {-1, 0, +1}.
    """
    if not groups:
        raise ValueError("groups is empty; pass at least one group of >= 2 responses")
    size = len(groups[0])
    if size < 2 or any(len(g) != size for g in groups):
        raise ValueError(f"every group needs the same size >= 2; got sizes {[len(g) for g in groups]}")
    probs = torch.full((len(groups), size, size), 0.5, dtype=torch.float64)
    for n, group in enumerate(groups):
        for i in range(size):
            for j in range(i + 1, size):
                p = float(judge(group[i], group[j]))
                if not 0.0 <= p <= 1.0:
                    raise ValueError(
                        f"judge returned {p!r} for group {n}, pair ({i}, {j}); it must return P(y_i > y_j) in [0, 1]"
                    )
                probs[n, i, j] = p
    if sample:
        u = torch.rand(probs.shape, generator=generator, dtype=probs.dtype)
        labels = torch.where(u < probs, torch.ones_like(probs), -torch.ones_like(probs))
    else:
        labels = torch.sign(probs - 0.5)
    return _antisymmetric(labels).to(dtype)


def select_pairs(
    prefs: torch.Tensor, mode: str = "all", *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The preference pairs an update uses, oriented winner first.

    Args:
        prefs: ``(N, G, G)`` antisymmetric labels.
        mode: ``all`` (every pair with a strict preference), ``best_worst`` (one per group) or
            ``disjoint`` (G // 2 random disjoint pairs per group).
        generator: random source for ``disjoint`` pairing and ``best_worst`` tie-breaks.

    Returns:
        ``(P, 3)`` long tensor of ``(group, winner, loser)`` rows; pairs without a strict
        preference are dropped.
    """
    check_choice("pairs", mode, PAIR_MODES)
    n, g, g2 = prefs.shape
    if g != g2 or g < 2:
        raise ValueError(f"prefs has shape {tuple(prefs.shape)}; expected (N, G, G) with G >= 2")
    device = prefs.device
    if mode == "all":
        i, j = torch.triu_indices(g, g, offset=1, device=device)
        first = i.repeat(n)
        second = j.repeat(n)
        group = torch.arange(n, device=device).repeat_interleave(i.numel())
    elif mode == "best_worst":
        copeland = prefs.sum(dim=-1).to(torch.float64)
        # Integer scores: a jitter in [0, 0.5) breaks ties at random without reordering anything else.
        jitter = torch.rand(copeland.shape, generator=generator, dtype=torch.float64).to(device) * 0.5
        first = (copeland + jitter).argmax(dim=-1)
        # The worst is drawn among the *other* members: when every Copeland score is equal (a cyclic
        # tournament of noisy labels, odd G) the same jitter would pick the best again, a self-pair
        # that gets dropped. When the scores differ the best never has the lowest one, so nothing changes.
        low = (copeland - jitter).scatter(-1, first.unsqueeze(-1), float("inf"))
        second = low.argmin(dim=-1)
        group = torch.arange(n, device=device)
    else:
        perm = torch.stack([torch.randperm(g, generator=generator) for _ in range(n)]).to(device)
        half = g // 2
        first = perm[:, 0 : 2 * half : 2].reshape(-1)
        second = perm[:, 1 : 2 * half : 2].reshape(-1)
        group = torch.arange(n, device=device).repeat_interleave(half)
    label = prefs[group, first, second]
    keep = label != 0
    winner = torch.where(label > 0, first, second)[keep]
    loser = torch.where(label > 0, second, first)[keep]
    return torch.stack([group[keep], winner, loser], dim=-1).long()


def pairwise_advantages(
    prefs: torch.Tensor, mode: str = "all", *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-Pair-GRPO's advantages: only pairwise labels, never score magnitudes.

    * ``all``: ``A_i = (1 / (G - 1)) * sum_{j != i} s_ij`` (wins minus losses, as a rate).
    * ``best_worst`` / ``disjoint``: ``+1`` for each pair's winner, ``-1`` for its loser, 0 else.

    For G = 2 all three equal GRPO's ``A_i = sign(r_i - r_j)`` (GRPO-objective §2.1).

    Args:
        prefs: ``(N, G, G)`` antisymmetric labels from :func:`preference_matrix`.
        mode: see :func:`select_pairs`.

    Returns:
        ``(adv, pairs)``: ``(N, G)`` advantages in the dtype of ``prefs`` and the ``(P, 3)`` pairs.
    """
    pairs = select_pairs(prefs, mode, generator=generator)
    n, g, _ = prefs.shape
    if mode == "all":
        adv = prefs.sum(dim=-1) / (g - 1)
    else:
        adv = torch.zeros((n, g), dtype=prefs.dtype, device=prefs.device)
        adv[pairs[:, 0], pairs[:, 1]] += 1.0
        adv[pairs[:, 0], pairs[:, 2]] -= 1.0
    return adv, pairs


def pair_slots(groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Position of each pair among the pairs of its group, in the given order: ``(P,)`` -> ``(P,)``.

    Rows ``(group, slot)`` place every pair in a fixed-width ``(N, P_max, ...)`` layout.
    """
    order = torch.argsort(groups, stable=True)
    counts = torch.bincount(groups, minlength=n_groups)
    starts = torch.cumsum(counts, 0) - counts
    slots = torch.empty_like(groups)
    slots[order] = torch.arange(groups.numel(), device=groups.device) - starts[groups[order]]
    return slots


def pairs_to_rows(pairs: torch.Tensor, n_groups: int, max_pairs: int) -> torch.Tensor:
    """Pairs as fixed-width rows per group, so that a batch row holds a whole group's pairs.

    Args:
        pairs: ``(P, 3)`` rows ``(group, winner, loser)`` (:func:`select_pairs`).
        n_groups: N, the number of rows.
        max_pairs: P_max, the width (``G (G - 1) / 2`` holds every pair of a group).

    Returns:
        ``(N, P_max, 3)`` int64 rows ``(valid, winner, loser)``; unused slots are all 0.
    """
    pairs = pairs.long()
    out = torch.zeros((n_groups, max_pairs, 3), dtype=torch.int64)
    if pairs.shape[0] == 0:
        return out
    slots = pair_slots(pairs[:, 0], n_groups)
    if int(slots.max()) >= max_pairs:
        raise ValueError(f"a group has more than max_pairs={max_pairs} pairs")
    out[pairs[:, 0], slots] = torch.stack([torch.ones_like(slots), pairs[:, 1], pairs[:, 2]], dim=-1)
    return out


def rows_to_pairs(rows: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pairs_to_rows`: ``(N, P_max, 3)`` ``(valid, w, l)`` -> ``(P, 3)`` ``(group, w, l)``."""
    valid = rows[..., 0] > 0
    group = torch.arange(rows.shape[0], device=rows.device).unsqueeze(-1).expand_as(valid)
    return torch.stack([group[valid], rows[..., 1][valid], rows[..., 2][valid]], dim=-1).long()
