"""Closed-form stationary policies on a binary question (GRPO-objective; spec, last section).

Answers ``a`` and ``b``, ``a`` preferred, deterministic rewards (confidence margin 1), reference
``pi_ref(a) = p``. Each function returns ``pi(a)`` at the fixed point of the named algorithm. They
are written from the formulas alone, independently of the losses, so that the theory check
compares two separate computations.
"""

from __future__ import annotations

import math

from pairgrpo_rllib.core.hard_pair import hard_pair_closed_form


def grpo_g2(beta: float, p: float) -> float:
    """GRPO, G = 2, k3 penalty (GRPO-objective eq. 14): ``(1 - b + sqrt((1 - b)^2 + 4 b p)) / 2``."""
    return 0.5 * (1.0 - beta + math.sqrt((1.0 - beta) ** 2 + 4.0 * beta * p))


def grpo_large_g(beta: float, p: float) -> float:
    """GRPO, G -> infinity, k3 penalty (GRPO-objective eq. 15).

    ``(2 b^2 p + 1 + sqrt(1 + 4 b^2 p (1 - p))) / (2 (1 + b^2))``.
    """
    b2 = beta * beta
    return (2.0 * b2 * p + 1.0 + math.sqrt(1.0 + 4.0 * b2 * p * (1.0 - p))) / (2.0 * (1.0 + b2))


def grpo_g2_direct_kl(beta: float, p: float) -> float:
    """GRPO, G = 2, ``k3_is`` (direct KL, GRPO-objective §3): a tilted reference.

    ``p e^{1/(2b)} / (p e^{1/(2b)} + (1 - p) e^{-1/(2b)})``, evaluated as a logistic function of
    ``logit(p) + 1/b`` so that small ``b`` does not overflow.
    """
    z = math.log(p) - math.log1p(-p) + 1.0 / beta
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def soft_pair_all(beta: float, p: float, kl_estimator: str = "k3") -> float:
    """Soft-Pair-GRPO with ``pairs = all``, any G: the reward term is ``pi_theta(a) - pi_old(a)`` as
    for GRPO with G = 2, so the fixed point is eq. 14 (``k3``) or the direct-KL form (``k3_is``)."""
    return grpo_g2_direct_kl(beta, p) if kl_estimator == "k3_is" else grpo_g2(beta, p)


def hard_pair(
    p: float, iterations: int, delta0: float = 0.02, gamma: float = 0.98, eps_p: float = 1e-4
) -> float:
    """Hard-Pair-GRPO after ``iterations`` fits: ``min(p + delta0 (1 - gamma^T) / (1 - gamma), 1 - eps_p)``."""
    return hard_pair_closed_form(p, iterations, delta0, gamma, eps_p=eps_p)
