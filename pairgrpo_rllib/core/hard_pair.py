"""Hard-Pair-GRPO (Pair-GRPO §4.2): explicit target distributions and a KL fit.

Spec: ``docs/algorithms.md`` "Hard-Pair-GRPO". Pure torch.

For a preference pair ``(w, l)`` over a finite support S with old probabilities ``pi_old(.|S)``:
``pi_tar(w) = pi_old(w) + delta``, ``pi_tar(l) = pi_old(l) - delta``, every other member unchanged,
with ``delta = min(delta_t, pi_old(l) - eps_p)`` (and never below 0), ``delta_t = delta_0 gamma^t``.
The loss is ``KL(pi_theta || pi_tar) + alpha * max(0, KL(pi_theta || pi_old) - beta_tr)``.

Supports (the caller builds ``log pi(.|S)``):
* explicit distributions (bandits, per-state discrete actions): S is the whole action set and
  ``log pi(.|S)`` is the policy's log-softmax;
* sequences (LLM responses, trajectory segments): S is the sampled group and
  ``log pi(y_i | S) = log_softmax_i(l(y_i))`` (:func:`group_shares`), with ``l`` the mean step
  log-prob when ``length_norm`` (chosen: summed log-probs make the shares nearly one-hot);
* dataset pairs: S = {w, l}, a group of two.

Implementation details
1. Targets are built in log space from ``old_logp_S`` and only the two moved entries pass through
   ``exp``/``log``; an entry that does not move keeps its log-prob bit for bit. After the clamp the
   loser keeps at least ``eps_p``, so no target is 0, inf or NaN even when ``pi_old(l)`` underflows.
2. One target per pair; the fit KL is averaged over pairs (several pairs of one group each fit
   their own target against the same ``pi_theta(.|S)``).
3. With no pair in the batch (all ties) the fit term is an exact zero that still depends on the
   parameters, so a backward pass works and gives zero gradient.
"""

from __future__ import annotations

import math

import torch

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.advantages import step_groups
from pairgrpo_rllib.core.checks import check_positive, check_range
from pairgrpo_rllib.core.defaults import default
from pairgrpo_rllib.core.losses import Stats, sequence_logp, suffix_logp


def delta_schedule(
    t: int, delta0: float = default("delta0"), gamma: float = default("delta_gamma"), *, decay: bool = True
) -> float:
    """Step size ``delta_t = delta_0 * gamma^t`` (``t`` the 0-based iteration); ``delta_0`` if not ``decay``.

    Defaults ``delta_0 = 0.02``, ``gamma = 0.98`` (Pair-GRPO §5, ``core.defaults``).
    """
    check_range("delta0", delta0, 0.0, 1.0, closed=False)
    check_range("gamma", gamma, 0.0, 1.0)
    if t < 0:
        raise ValueError(f"t={t!r} must be a 0-based iteration index >= 0")
    return delta0 * gamma**t if decay else delta0


def delta_sum(
    t: int, delta0: float = default("delta0"), gamma: float = default("delta_gamma"), *, decay: bool = True
) -> float:
    """``sum_{s < t} delta_s = delta_0 (1 - gamma^t) / (1 - gamma)``: the mass moved in t unclamped steps."""
    if not decay or gamma == 1.0:
        return delta0 * t
    return delta0 * (1.0 - gamma**t) / (1.0 - gamma)


def unit_logp(
    logp: torch.Tensor, mask: torch.Tensor, n: int, g: int, credit: str, length_norm: bool
) -> torch.Tensor:
    """``l`` of each comparison unit, ``(M, G)``: what Hard-Pair's shares are a softmax of.

    Args:
        logp: ``(N*G, T)`` per-step log-probs, the members of each group consecutive.
        mask: ``(N*G, T)`` true on real steps.
        n, g: N groups of G members.
        credit: ``sequence``: whole members (M = N); ``step``: the members' suffixes from every
            time index (M = N * T, rows ordered as ``advantages.step_groups``; ours).
        length_norm: the mean instead of the sum of the step log-probs (chosen).

    Returns:
        ``(M, G)``; units that do not exist (a member that ended before step t) get -1e9, so that
        a softmax over the group gives them no mass.
    """
    if credit != "step":
        return sequence_logp(logp, mask, length_norm=length_norm).reshape(n, g)
    suffix = suffix_logp(logp, mask, length_norm=length_norm)
    units = step_groups(suffix.reshape(n, g, -1))
    valid = step_groups(mask.reshape(n, g, -1).bool())
    return torch.where(valid, units, torch.full_like(units, -1e9))


def group_shares(seq_logp: torch.Tensor) -> torch.Tensor:
    """Self-normalised log-shares ``log pi(y_i | S) = log_softmax_i(l(y_i))`` of a group.

    Args:
        seq_logp: ``(N, G)`` sequence log-probs ``l(y_i)`` of each group's members.

    Returns:
        ``(N, G)`` log-probabilities over each group (rows log-sum-exp to 0).
    """
    return torch.log_softmax(seq_logp, dim=-1)


def hard_pair_targets(
    old_logp_S: torch.Tensor, pairs: torch.Tensor, delta_t: float, *, eps_p: float = default("eps_p")
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target distribution of each pair.

    Args:
        old_logp_S: ``(N, K)`` normalised ``log pi_old(.|S)`` of each group / state.
        pairs: ``(P, 3)`` rows ``(group, winner, loser)`` (``preferences.select_pairs``).
        delta_t: the step size of this iteration (:func:`delta_schedule`).
        eps_p: the smallest probability the loser keeps (1e-4, chosen).

    Returns:
        ``(target_logp, delta)``: ``(P, K)`` log pi_tar per pair and ``(P,)`` the delta applied.
    """
    check_range("delta_t", delta_t, 0.0, 1.0)
    check_range("eps_p", eps_p, 0.0, 0.5, closed=False)
    old = old_logp_S.detach()
    group, win, lose = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    rows = torch.arange(pairs.shape[0], device=old.device)
    target = old[group].clone()
    p_win = target[rows, win].exp()
    p_lose = target[rows, lose].exp()
    delta = torch.clamp(torch.clamp(p_lose - eps_p, min=0.0), max=delta_t)
    moved = delta > 0
    # Where delta == 0 the entries keep their exact log-probs (no exp/log round trip).
    new_win = torch.log(p_win + delta)
    new_lose = torch.log(torch.clamp(p_lose - delta, min=eps_p))
    target[rows, win] = torch.where(moved, new_win, target[rows, win])
    target[rows, lose] = torch.where(moved, new_lose, target[rows, lose])
    return target, delta


def hard_pair_loss(
    logp_S: torch.Tensor,
    target_logp: torch.Tensor,
    pair_groups: torch.Tensor,
    *,
    trust_region_kl: torch.Tensor | None = None,
    alpha: float = default("trust_region_alpha"),
    beta_tr: float = default("trust_region_beta"),
    trust_region: bool = True,
    ref_kl: torch.Tensor | None = None,
    kl_coeff: float = default("kl_coeff", "Hard-Pair-GRPO"),
) -> tuple[torch.Tensor, Stats]:
    """``mean_pairs KL(pi_theta(.|S) || pi_tar) + alpha max(0, KL(pi_theta || pi_old) - beta_tr) [+ kl_coeff KL_ref]``.

    Args:
        logp_S: ``(N, K)`` normalised ``log pi_theta(.|S)`` (differentiable).
        target_logp: ``(P, K)`` from :func:`hard_pair_targets`.
        pair_groups: ``(P,)`` the group (row of ``logp_S``) of each pair.
        trust_region_kl: ``KL(pi_theta || pi_old)``, exact per state where the distribution is
            explicit (``kl.categorical_kl``, ``kl.diag_gaussian_kl`` averaged over states) or the
            sampled ``kl.sampled_kl``; required when ``trust_region``. A scalar is one trust region
            for the whole batch (the paper's); a ``(N,)`` tensor is one trust region per context
            (question, prompt), each hinged on its own and the penalties averaged.
        alpha: hinge weight (0.5, paper). beta_tr: trust-region threshold (0.01, paper).
        trust_region: ``False`` drops the hinge (the seed's ablation "no trust-region constraint").
        ref_kl: scalar penalty towards pi_ref (e.g. mean k3), weighted by ``kl_coeff`` (default 0).

    Returns:
        ``(loss, stats)`` with ``fit_kl``, ``trust_region_kl``, ``trust_region_penalty``, ``num_pairs``.
    """
    check_positive("alpha", alpha, allow_zero=True)
    check_positive("beta_tr", beta_tr, allow_zero=True)
    check_positive("kl_coeff", kl_coeff, allow_zero=True)
    n_pairs = target_logp.shape[0]
    if n_pairs > 0:
        theta = logp_S[pair_groups]
        fit = (theta.exp() * (theta - target_logp.detach())).sum(dim=-1).mean()
    else:
        fit = logp_S.sum() * 0.0
    loss = fit
    zero = fit.detach() * 0.0
    penalty = zero
    if trust_region:
        if trust_region_kl is None:
            raise ValueError(
                "hard_pair_loss with trust_region=True needs trust_region_kl = KL(pi_theta || pi_old)"
            )
        penalty = alpha * torch.clamp(trust_region_kl - beta_tr, min=0.0).mean()
        loss = loss + penalty
    if kl_coeff > 0:
        if ref_kl is None:
            raise ValueError("hard_pair_loss with kl_coeff > 0 needs ref_kl")
        loss = loss + kl_coeff * ref_kl
    stats = {
        names.LOSS: loss.detach(),
        names.FIT_KL: fit.detach(),
        names.TRUST_REGION_KL: trust_region_kl.detach().mean() if trust_region_kl is not None else zero,
        names.TRUST_REGION_PENALTY: penalty.detach(),
        names.NUM_PAIRS: torch.tensor(float(n_pairs)),
    }
    return loss, stats


def hard_pair_closed_form(
    p: float,
    t: int,
    delta0: float = default("delta0"),
    gamma: float = default("delta_gamma"),
    *,
    eps_p: float = default("eps_p"),
    decay: bool = True,
) -> float:
    """``pi_T(a) = min(p + delta_0 (1 - gamma^T) / (1 - gamma), 1 - eps_p)`` for a binary question.

    Valid with the fit solved each iteration and the hinge not binding (spec, last section): every
    iteration moves ``delta_t`` from b to a until ``pi(b)`` reaches ``eps_p``.
    """
    if not 0.0 < p < 1.0 or math.isnan(p):
        raise ValueError(f"pref={p!r} must lie in (0, 1)")
    return min(p + delta_sum(t, delta0, gamma, decay=decay), 1.0 - eps_p) if p < 1.0 - eps_p else p
