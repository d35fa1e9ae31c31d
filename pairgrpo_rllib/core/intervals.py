"""Confidence intervals for rates and means (evaluation's win rates and Likert means).

* :func:`wilson_interval` - the Wilson score interval of a binomial proportion (k successes in n).
* :func:`bootstrap_mean_ci` - the percentile bootstrap of a mean over independent units; what the
  LLM evaluation uses for a win rate, whose per-prompt outcomes lie in [0, 1] (ties count half, both
  presentation orders and several samples averaged per prompt), so they are not binomial.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} is invalid: use a confidence level in (0, 1), e.g. 0.95")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def wilson_interval(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` of the proportion ``successes / n``."""
    if n <= 0:
        raise ValueError(f"n={n!r} is invalid: an interval needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes!r} is invalid: use a count in [0, n={n}]")
    z = _z(level)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean_ci(
    values: list[float], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its percentile bootstrap interval
    (``resamples`` resamples with replacement, seeded; one value gives a zero-width interval)."""
    if not values:
        raise ValueError("values is empty: a mean needs at least one value")
    _z(level)
    x = torch.as_tensor(values, dtype=torch.float64)
    mean = float(x.mean())
    if len(values) == 1:
        return mean, mean, mean
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randint(len(values), (int(resamples), len(values)), generator=g)
    means = x[idx].mean(dim=1)
    alpha = (1.0 - level) / 2.0
    low, high = torch.quantile(means, torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
    return mean, float(low), float(high)
