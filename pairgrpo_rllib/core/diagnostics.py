"""Diagnostics every algorithm reports (Pair-GRPO §6.1.3 and its theorems). Pure torch.

* ``grad_norm`` per optimizer step (before clipping); the gradient-norm variance is its variance
  over a run (:class:`RunningMoments`).
* ``kl_ref`` per iteration; the KL std is its std over a run (:class:`RunningMoments`).
* ``grad_cosine_vs_grpo``: :func:`grad_cosine` of an algorithm's gradient and GRPO's on one batch.
* ``pair_accuracy``: share of pairs with ``l_theta(w) > l_theta(l)``.

Implementation details
1. Run statistics use Welford's update and Chan et al.'s merge, so learners on several workers can
   combine theirs exactly; variance is the population variance (``ddof=0``, numpy's default)
   unless ``ddof=1`` is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch


class RunningMoments:
    """Count, mean and variance of a stream of floats (Welford), mergeable and checkpointable."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0

    def update(self, value: float) -> None:
        value = float(value)
        if math.isnan(value):
            raise ValueError("RunningMoments.update got NaN; check the quantity before logging it")
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)

    def merge(self, other: RunningMoments) -> RunningMoments:
        """Combine two streams (Chan et al. 1979); returns self."""
        if other.count == 0:
            return self
        total = self.count + other.count
        delta = other.mean - self.mean
        self._m2 += other._m2 + delta * delta * self.count * other.count / total
        self.mean += delta * other.count / total
        self.count = total
        return self

    @classmethod
    def from_sums(cls, count: float, total: float, sq_total: float) -> RunningMoments:
        """The moments of ``count`` values given their sum and sum of squares (as learners log them)."""
        out = cls()
        if count > 0:
            out.count = int(count)
            out.mean = total / count
            out._m2 = max(0.0, sq_total - count * out.mean**2)
        return out

    def var(self, ddof: int = 0) -> float:
        if self.count - ddof <= 0:
            return float("nan")
        return self._m2 / (self.count - ddof)

    def std(self, ddof: int = 0) -> float:
        return math.sqrt(self.var(ddof))

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self._m2}

    @classmethod
    def from_state_dict(cls, state: dict[str, float]) -> RunningMoments:
        out = cls()
        out.count, out.mean, out._m2 = int(state["count"]), float(state["mean"]), float(state["m2"])
        return out


def _flat(grads: torch.Tensor | Iterable[torch.Tensor | None]) -> torch.Tensor:
    if isinstance(grads, torch.Tensor):
        return grads.reshape(-1)
    parts = [g.reshape(-1) for g in grads if g is not None]
    if not parts:
        raise ValueError("no gradients given; run backward() before taking gradient diagnostics")
    return torch.cat(parts)


def grad_norm(grads: torch.Tensor | Iterable[torch.Tensor | None]) -> float:
    """Global L2 norm of a gradient (a tensor or the ``.grad`` of several parameters)."""
    return float(torch.linalg.vector_norm(_flat(grads).double()))


def grad_cosine(
    grads_a: torch.Tensor | Sequence[torch.Tensor | None],
    grads_b: torch.Tensor | Sequence[torch.Tensor | None],
) -> float:
    """Cosine between two gradients of the same parameters; NaN if either is zero.

    Theorem 1 of Pair-GRPO (§4.1.2) predicts a positive value for Soft-Pair-GRPO against GRPO and exactly 1
    for G = 2 (where the two advantages coincide).
    """
    a, b = _flat(grads_a).double(), _flat(grads_b).double()
    if a.shape != b.shape:
        raise ValueError(f"gradients of different sizes: {a.numel()} vs {b.numel()}")
    na, nb = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(torch.dot(a, b) / (na * nb))


def pair_accuracy(seq_logp: torch.Tensor, pairs: torch.Tensor) -> float:
    """Share of pairs whose winner the policy already ranks higher: ``l_theta(w) > l_theta(l)``.

    Args:
        seq_logp: ``(N, G)`` sequence log-probs (or any per-member score of the policy).
        pairs: ``(P, 3)`` rows ``(group, winner, loser)``.

    Returns:
        A float in [0, 1]; NaN when there is no pair.
    """
    if pairs.shape[0] == 0:
        return float("nan")
    win = seq_logp[pairs[:, 0], pairs[:, 1]]
    lose = seq_logp[pairs[:, 0], pairs[:, 2]]
    return float((win > lose).double().mean())


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of categorical distributions, ``(..., K)`` logits -> ``(...)`` nats."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def diag_gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of diagonal Gaussians, ``(..., D)`` log-stds -> ``(...)`` nats."""
    return (log_std + 0.5 * math.log(2.0 * math.pi * math.e)).sum(dim=-1)
