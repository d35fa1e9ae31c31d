"""Intervals (core/intervals.py) on hand values: Wilson and the bootstrap mean CI."""

from __future__ import annotations

import pytest


def test_intervals_hand_values():
    from pairgrpo_rllib.core.intervals import bootstrap_mean_ci, wilson_interval

    lo, hi = wilson_interval(5, 10)  # p 0.5, z 1.96: centre 0.5, half 0.2634
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0, abs=1e-12)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)  # z^2 / (n + z^2)
    assert bootstrap_mean_ci([0.7] * 5) == pytest.approx((0.7, 0.7, 0.7))
    values = [1.0] * 200 + [0.0] * 200  # mean 0.5, normal half-width 1.96 * 0.5 / 20 = 0.049
    m, lo, hi = bootstrap_mean_ci(values, seed=3)
    assert m == 0.5 and 0.04 < 0.5 - lo < 0.06 and 0.04 < hi - 0.5 < 0.06
    assert bootstrap_mean_ci(values, seed=3) == (m, lo, hi)  # seeded
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci(values, level=1.5)
