"""KL divergences: the sampled estimators of GRPO's penalty and the analytic ones.

Spec: ``docs/algorithms.md`` "KL to the reference" and the Hard-Pair trust region.
Pure torch.

Per step ``u = log pi_ref(a) - log pi_theta(a)``:

* ``k3`` (GRPO, GRPO-objective ``D_i``): ``e^u - u - 1``. Its stationary effect is the reverse KL.
* ``k3_is`` (GRPO-objective §3): ``(pi_theta / pi_old) (e^u - u - 1)`` with the gradient flowing
  through the ratio; its expectation under ``pi_old`` is ``KL(pi_theta || pi_ref)``.
* ``k1``: ``-u``; ``k2``: ``u^2 / 2``.

Implementation details
1. ``log_ratio_clamp`` clamps ``u`` (and the importance log-ratio of ``k3_is``) to ``[-c, c]``
   before ``exp``: continuous log-densities differ by hundreds of nats early in training and
   ``exp`` overflows (docs/rllib_notes.md: NaN gradients by iteration 2 on HalfCheetah without it).
   A clamped step has zero gradient through ``u``, as with PPO's ratio clipping.
2. Analytic KLs are ``KL(p || q)`` in that direction, summed over the event dimension.
"""

from __future__ import annotations

import torch

from pairgrpo_rllib.core.checks import check_choice, check_positive
from pairgrpo_rllib.core.names import KL_ESTIMATORS


def kl_penalty(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    estimator: str = "k3",
    *,
    old_logp: torch.Tensor | None = None,
    log_ratio_clamp: float | None = None,
) -> torch.Tensor:
    """Per-step KL penalty ``D`` of GRPO towards the anchor policy.

    Args:
        logp: ``(B, T)`` log pi_theta of the taken actions (differentiable).
        ref_logp: ``(B, T)`` log-probs of the anchor (pi_ref, or pi_old with ``kl_anchor=old``).
        estimator: ``k1``, ``k2``, ``k3`` (default) or ``k3_is``.
        old_logp: ``(B, T)`` log pi_old of the actions; required by ``k3_is``.
        log_ratio_clamp: clamp log-ratios to ``[-c, c]`` before ``exp`` (``None``: no clamp).

    Returns:
        ``(B, T)`` penalty per step (padded steps are the caller's to mask).
    """
    check_choice("kl_estimator", estimator, KL_ESTIMATORS)
    u = ref_logp - logp
    if log_ratio_clamp is not None:
        check_positive("kl_log_ratio_clamp", log_ratio_clamp)
        u = u.clamp(-log_ratio_clamp, log_ratio_clamp)
    if estimator == "k1":
        return -u
    if estimator == "k2":
        return 0.5 * u * u
    k3 = torch.expm1(u) - u
    if estimator == "k3":
        return k3
    if old_logp is None:
        raise ValueError("kl_estimator='k3_is' needs old_logp (the sampling policy's log-probs)")
    log_is = logp - old_logp
    if log_ratio_clamp is not None:
        log_is = log_is.clamp(-log_ratio_clamp, log_ratio_clamp)
    return torch.exp(log_is) * k3


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q)`` of categorical distributions given by (unnormalised) logits.

    Args:
        logits_p, logits_q: ``(..., K)`` logits (or log-probs) of p and q.

    Returns:
        ``(...)`` KL in nats, >= 0.
    """
    logp = torch.log_softmax(logits_p, dim=-1)
    logq = torch.log_softmax(logits_q, dim=-1)
    return (logp.exp() * (logp - logq)).sum(dim=-1)


def diag_gaussian_kl(
    mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor, log_std_q: torch.Tensor
) -> torch.Tensor:
    """``KL(p || q)`` of diagonal Gaussians, summed over the action dimension.

    ``sum_d [log s_q - log s_p + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2]``.

    Args:
        mean_p, log_std_p, mean_q, log_std_q: ``(..., D)``.

    Returns:
        ``(...)`` KL in nats, >= 0.
    """
    var_ratio = torch.exp(2.0 * (log_std_p - log_std_q))
    mahal = ((mean_p - mean_q) * torch.exp(-log_std_q)) ** 2
    return 0.5 * (var_ratio + mahal - 1.0).sum(dim=-1) - (log_std_p - log_std_q).sum(dim=-1)


def sampled_kl(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sampled estimate of ``KL(pi_theta || pi_old)`` from actions drawn by ``pi_old``.

    Mean of ``rho log rho - rho + 1`` with ``rho = pi_theta / pi_old`` (unbiased under pi_old);
    Hard-Pair-GRPO's trust region where no explicit per-state distribution is at hand.

    Args:
        logp, old_logp: ``(B, T)`` (or any shape) log-probs of the sampled actions.
        mask: same shape, true on real steps; ``None`` means all.

    Returns:
        Scalar estimate (0 when no step is real).
    """
    log_rho = logp - old_logp
    if mask is not None:
        mask = mask.bool()
        log_rho = torch.where(mask, log_rho, torch.zeros_like(log_rho))
    rho = torch.exp(log_rho)
    per_step = rho * log_rho - rho + 1.0
    if mask is None:
        return per_step.mean()
    return (per_step * mask).sum() / mask.sum().clamp(min=1)
