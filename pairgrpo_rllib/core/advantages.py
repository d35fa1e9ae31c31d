"""Group advantages of GRPO (GRPO-objective eq. 2) and their variants.

Spec: ``docs/algorithms.md`` section "Advantages". Pure torch, no framework imports.

Implementation details
1. Population std (divide by G), as GRPO-objective eq. 2 writes it, not the sample std some
   implementations use.
2. A group whose scores all agree (std below ``eps`` = 1e-8) gets advantage 0 for every member,
   under ``mean_std`` and ``mean`` alike (GRPO-objective: "0/0 := 0"); never NaN.
3. ``none`` returns the raw scores (no baseline, no scale): REINFORCE's signal. It is the only
   mode in which an all-equal group has non-zero advantages.
4. Groups may be given as rows of a ``(N, G)`` tensor or as a flat ``(N*G,)`` tensor with integer
   ``group_ids`` (any order, any group sizes), the form a sharded RLlib batch has.
5. Means and stds are computed in float64 and cast back: in float32 two scores one rounding step
   apart (``[1.0, 1.0 + 1.19e-7]``) have a spread above ``eps`` but a mean that rounds onto one of
   them, which gave advantages ``[0, 1.41]`` instead of ``[-1, 1]``.
6. Per-step credit (option ``credit="step"``, chosen for control tasks; DeepSeekMath section 4.1.3
   gives GRPO per-step advantages for process rewards): each step's score is the member's
   (discounted) reward-to-go ``R_{i,t} = sum_{t' >= t} gamma^(t'-t) r_{i,t'}`` (:func:`reward_to_go`),
   and the members of a group are compared time index by time index (:func:`step_groups`), so the
   action at step t is credited only with what follows it. Ours, not DeepSeekMath's process
   supervision: members share a state only at t = 0, so at t > 0 the group compares suffixes from
   different states (a time-indexed baseline).
7. In branch mode a member's reward-to-go stops at the segment end (no critic to bootstrap from), so
   late steps are credited over ever shorter horizons. Option ``lookahead`` (L, ours) runs each
   member L steps past its segment and adds their discounted return as a ``tail``
   (:func:`reward_to_go`); those steps are not trained on. Measured in docs/results/halfcheetah_study.md.
"""

from __future__ import annotations

import torch

from pairgrpo_rllib.core.checks import check_choice, check_positive
from pairgrpo_rllib.core.defaults import default
from pairgrpo_rllib.core.names import ADVANTAGE_NORMS

ZERO_SPREAD_EPS = 1e-8


def group_advantages(
    scores: torch.Tensor,
    norm: str = default("advantage_norm"),
    *,
    group_ids: torch.Tensor | None = None,
    eps: float = ZERO_SPREAD_EPS,
) -> torch.Tensor:
    """GRPO's group-relative advantages ``A_i = (r_i - mean(r)) / std(r)``.

    Args:
        scores: ``(N, G)`` scores, one group per row; or ``(M,)`` flat scores with ``group_ids``.
        norm: ``mean_std`` (default, GRPO-objective eq. 2), ``mean`` (shift only, Dr. GRPO / GRPO-objective
            section 3) or ``none`` (raw scores).
        group_ids: ``(M,)`` integer group label of each flat score; omit for the ``(N, G)`` form.
        eps: std below which a group counts as having no spread (its advantages are 0).

    Returns:
        Advantages with the shape of ``scores``, in its dtype.
    """
    check_choice("advantage_norm", norm, ADVANTAGE_NORMS)
    check_positive("eps", eps)
    if group_ids is None:
        if scores.dim() != 2:
            raise ValueError(
                f"scores has shape {tuple(scores.shape)}; pass (N, G) rows or flat scores with group_ids"
            )
    elif scores.dim() != 1 or group_ids.shape != scores.shape:
        raise ValueError(
            f"flat scores {tuple(scores.shape)} and group_ids {tuple(group_ids.shape)} must both be (M,)"
        )
    if norm == "none":
        return scores.clone()
    wide = scores.to(torch.float64)  # detail 5
    if group_ids is None:
        centred = wide - wide.mean(dim=-1, keepdim=True)
        std = wide.std(dim=-1, keepdim=True, correction=0)
    else:
        _, inverse = torch.unique(group_ids, return_inverse=True)
        n_groups = int(inverse.max()) + 1 if inverse.numel() else 0
        count = torch.zeros(n_groups, dtype=wide.dtype, device=wide.device).index_add_(
            0, inverse, torch.ones_like(wide)
        )
        total = torch.zeros_like(count).index_add_(0, inverse, wide)
        centred = wide - (total / count)[inverse]
        var = torch.zeros_like(count).index_add_(0, inverse, centred * centred) / count
        std = var.sqrt()[inverse]
    spread = std >= eps
    adv = centred / torch.where(spread, std, torch.ones_like(std)) if norm == "mean_std" else centred
    return torch.where(spread, adv, torch.zeros_like(adv)).to(scores.dtype)


def expected_advantage_limit(
    rewards: torch.Tensor,
    probs: torch.Tensor,
    norm: str = default("advantage_norm"),
    eps: float = ZERO_SPREAD_EPS,
) -> torch.Tensor:
    """The G -> infinity limit of GRPO's advantage of each answer (GRPO-objective §2.1).

    With G i.i.d. draws from ``probs`` the group mean and population std converge to the mean
    and std of the reward under ``probs``, so answer ``o`` gets ``(r(o) - E r) / sigma``.

    Args:
        rewards: ``(..., K)`` deterministic reward of each of K answers.
        probs: ``(..., K)`` the sampling policy over the K answers (rows sum to 1).
        norm: as in :func:`group_advantages`.

    Returns:
        ``(..., K)`` advantage of each answer; 0 where sigma < eps (``mean_std``/``mean``).
    """
    check_choice("advantage_norm", norm, ADVANTAGE_NORMS)
    if norm == "none":
        return rewards.expand_as(probs).clone()
    mean = (probs * rewards).sum(dim=-1, keepdim=True)
    centred = rewards - mean
    std = (probs * centred * centred).sum(dim=-1, keepdim=True).sqrt()
    spread = std >= eps
    adv = centred / torch.where(spread, std, torch.ones_like(std)) if norm == "mean_std" else centred
    return torch.where(spread, adv, torch.zeros_like(adv))


def kl_penalized_scores(
    scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float
) -> torch.Tensor:
    """Option ``kl_in_reward``: ``r_i - beta * sum_t k1``, with ``k1 = log pi - log pi_ref``.

    Args:
        scores: ``(B,)`` score of each sequence.
        logp, ref_logp: ``(B, T)`` per-step log-probs of the sampling policy and the reference.
        mask: ``(B, T)`` true on real steps.
        beta: the KL coefficient (spec symbol beta).

    Returns:
        ``(B,)`` penalised scores, detached from ``logp`` (a reward is not differentiated).
    """
    check_positive("beta", beta, allow_zero=True)
    mask = mask.bool()
    k1 = torch.where(mask, logp.detach() - ref_logp.detach(), torch.zeros_like(logp))
    return scores - beta * k1.sum(dim=-1)


def reward_to_go(
    rewards: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    tail: torch.Tensor | None = None,
) -> torch.Tensor:
    """Discounted suffix sums ``R_t = sum_{t' >= t} gamma^(t' - t) r_t' + gamma^(T - t) tail`` over real steps.

    Args:
        rewards: ``(..., T)`` per-step rewards.
        mask: ``(..., T)`` true on real steps (padding contributes nothing).
        gamma: discount within a member, in ``(0, 1]``; 1 gives plain reward-to-go.
        tail: ``(...)`` optional value of what follows step ``T - 1`` (option ``lookahead``: the
            discounted return of the steps run past the segment, ``sum_k gamma^k r_{T+k}``). It is
            only defined for a row whose last step is real; a row that ended earlier must have tail 0.

    Returns:
        ``(..., T)`` reward-to-go in float64 (0 on padded steps after the last real one).
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma={gamma!r} must lie in (0, 1]")
    mask = mask.bool()
    r = torch.where(mask, rewards.to(torch.float64), torch.zeros((), dtype=torch.float64))
    out = torch.zeros_like(r)
    running = torch.zeros_like(r[..., 0])
    if tail is not None:
        tail = tail.to(torch.float64)
        if tail.shape != running.shape:
            raise ValueError(f"tail has shape {tuple(tail.shape)}; want {tuple(running.shape)} (one per row)")
        if bool(((tail != 0) & ~mask[..., -1]).any()):
            raise ValueError("tail is non-zero on a row whose last step is padding (that member had ended)")
        running = tail
    for t in range(r.shape[-1] - 1, -1, -1):
        running = r[..., t] + gamma * running
        out[..., t] = running
    return out


def step_groups(x: torch.Tensor) -> torch.Tensor:
    """``(N, G, T, ...)`` -> ``(N * T, G, ...)``: one group per (group, time index), row ``n * T + t``."""
    n, g, t = x.shape[:3]
    return x.transpose(1, 2).reshape(n * t, g, *x.shape[3:])


def from_step_groups(x: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`step_groups`: ``(N * T, G, ...)`` -> ``(N, G, T, ...)``."""
    t = x.shape[0] // n
    return x.reshape(n, t, *x.shape[1:]).transpose(1, 2)
