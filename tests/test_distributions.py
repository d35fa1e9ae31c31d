"""Action distributions given by their inputs (core.distributions) and Hard-Pair's comparison units.

References: torch.distributions (an independent implementation) and hand-computed numbers.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from pairgrpo_rllib.core.distributions import action_logp, analytic_kl, entropy, masked_mean
from pairgrpo_rllib.core.hard_pair import unit_logp

F64 = torch.float64
GEN = torch.Generator().manual_seed(0)


def _gaussian(shape, d):
    mean = torch.randn(*shape, d, generator=GEN, dtype=F64)
    log_std = torch.randn(*shape, d, generator=GEN, dtype=F64) * 0.5
    return torch.cat([mean, log_std], -1), Independent(Normal(mean, log_std.exp()), 1)


def test_gaussian_log_prob_kl_and_entropy_match_torch_distributions():
    p_inputs, p = _gaussian((3, 5), 4)
    q_inputs, q = _gaussian((3, 5), 4)
    actions = torch.randn(3, 5, 4, generator=GEN, dtype=F64)
    assert torch.allclose(action_logp(p_inputs, actions, True), p.log_prob(actions))
    assert torch.allclose(analytic_kl(p_inputs, q_inputs, True), kl_divergence(p, q))
    assert torch.allclose(entropy(p_inputs, True), p.entropy())


def test_categorical_log_prob_kl_and_entropy_match_torch_distributions():
    logits_p = torch.randn(2, 6, 3, generator=GEN, dtype=F64)
    logits_q = torch.randn(2, 6, 3, generator=GEN, dtype=F64)
    p, q = Categorical(logits=logits_p), Categorical(logits=logits_q)
    actions = torch.randint(0, 3, (2, 6), generator=GEN)
    assert torch.allclose(action_logp(logits_p, actions, False), p.log_prob(actions))
    assert torch.allclose(analytic_kl(logits_p, logits_q, False), kl_divergence(p, q))
    assert torch.allclose(entropy(logits_p, False), p.entropy())


def test_standard_normal_log_density_by_hand():
    inputs = torch.zeros(1, 2, dtype=F64)  # mean 0, log_std 0, one dimension
    got = action_logp(inputs, torch.tensor([[1.0]], dtype=F64), True)
    assert float(got) == pytest.approx(-0.5 - 0.5 * math.log(2 * math.pi), abs=1e-12)


def test_masked_mean_ignores_padding_even_when_it_is_not_finite():
    values = torch.tensor([[1.0, 3.0, float("nan")], [5.0, float("inf"), 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert float(masked_mean(values, mask)) == pytest.approx(3.0)
    assert float(masked_mean(values, torch.zeros_like(mask))) == 0.0


def test_unit_logp_sequences_and_suffixes_by_hand():
    # N = 1 group of G = 2 members, T = 3; member 1 ends after 2 steps
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, 0.0]], dtype=F64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    seq = unit_logp(logp, mask, 1, 2, "sequence", False)
    assert seq.tolist() == [[-6.0, -9.0]]
    assert unit_logp(logp, mask, 1, 2, "sequence", True).tolist() == [[-2.0, -4.5]]
    step = unit_logp(logp, mask, 1, 2, "step", True)  # one unit per time index: (T, G)
    assert step.shape == (3, 2)
    assert step[0].tolist() == [-2.0, -4.5]  # suffixes from t = 0: the whole members
    assert step[1].tolist() == [-2.5, -5.0]
    assert step[2, 0] == -3.0 and step[2, 1] == -1e9  # member 1 has no suffix at t = 2
