"""Action distributions given by their inputs: log-probs, exact KLs, entropies, masked means. Pure torch.

A policy with an explicit per-state distribution hands the learner its *distribution inputs*
(RLlib's ``action_dist_inputs``):

* Box actions: a diagonal Gaussian, inputs ``concat(mean, log_std)`` of shape ``(..., 2 D)``;
* Discrete actions: a categorical, inputs ``(..., K)`` logits.

Every function keeps the leading dimensions, so ``(B, T, 2 D)`` inputs give ``(B, T)`` values.
A causal LM has the same structure per token (logits over the vocabulary), but it returns the
log-probs of the response tokens directly (a ``V``-wide tensor per token is too large to keep).
"""

from __future__ import annotations

import math

import torch

from pairgrpo_rllib.core.diagnostics import categorical_entropy, diag_gaussian_entropy
from pairgrpo_rllib.core.kl import categorical_kl, diag_gaussian_kl

_LOG_2PI = math.log(2.0 * math.pi)


def action_logp(dist_inputs: torch.Tensor, actions: torch.Tensor, gaussian: bool) -> torch.Tensor:
    """``log pi(a | s)`` of ``actions`` under the distribution given by ``dist_inputs``.

    Args:
        dist_inputs: ``(..., 2 D)`` Gaussian ``concat(mean, log_std)``, or ``(..., K)`` logits.
        actions: ``(..., D)`` real actions, or ``(...)`` integer actions.
        gaussian: which of the two.

    Returns:
        ``(...)`` log-probabilities (densities for Gaussians, summed over the D dimensions).
    """
    if gaussian:
        mean, log_std = dist_inputs.chunk(2, dim=-1)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z * z - log_std - 0.5 * _LOG_2PI).sum(-1)
    logp = torch.log_softmax(dist_inputs, dim=-1)
    return torch.gather(logp, -1, actions.long().unsqueeze(-1)).squeeze(-1)


def analytic_kl(p_inputs: torch.Tensor, q_inputs: torch.Tensor, gaussian: bool) -> torch.Tensor:
    """Exact per-state ``KL(p || q)`` of two action distributions given by their inputs, ``(...)``."""
    if gaussian:
        mp, lp = p_inputs.chunk(2, dim=-1)
        mq, lq = q_inputs.chunk(2, dim=-1)
        return diag_gaussian_kl(mp, lp, mq, lq)
    return categorical_kl(p_inputs, q_inputs)


def entropy(dist_inputs: torch.Tensor, gaussian: bool) -> torch.Tensor:
    """Per-state entropy of the distribution given by ``dist_inputs``, ``(...)`` nats."""
    if gaussian:
        return diag_gaussian_entropy(dist_inputs.chunk(2, dim=-1)[1])
    return categorical_entropy(dist_inputs)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the steps where ``mask`` is true (0 when none is); a scalar."""
    mask = mask.bool()
    return torch.where(mask, values, torch.zeros_like(values)).sum() / mask.sum().clamp(min=1)


def token_logp(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / temperature)[token]`` per position, without a ``V``-wide log-prob tensor.

    Args:
        logits: ``(..., V)`` next-token logits at the positions that predicted ``tokens``.
        tokens: ``(...)`` integer token ids.
        temperature: the sampler's temperature (its distribution is ``softmax(logits / temperature)``).

    Returns:
        ``(...)`` log-probabilities in float32 or wider (the logits' dtype if wider): bf16 logits are
        upcast first, since a log-prob ratio of two bf16 numbers carries only ~3 significant digits.
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature!r} must be > 0")
    x = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    if temperature != 1.0:
        x = x / temperature
    picked = torch.gather(x, -1, tokens.long().unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(x, dim=-1)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-position entropy of ``softmax(logits / temperature)``, ``(...)`` nats."""
    x = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    return categorical_entropy(x / temperature)
