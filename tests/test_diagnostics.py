"""Diagnostics every algorithm reports (docs/algorithms.md "Diagnostics")."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, Normal

from pairgrpo_rllib.core.advantages import group_advantages
from pairgrpo_rllib.core.diagnostics import (
    RunningMoments,
    categorical_entropy,
    diag_gaussian_entropy,
    grad_cosine,
    grad_norm,
    pair_accuracy,
)
from pairgrpo_rllib.core.losses import grpo_loss
from pairgrpo_rllib.core.preferences import pairwise_advantages, preference_matrix

F64 = torch.float64


def _stream(values):
    m = RunningMoments()
    for v in values:
        m.update(v)
    return m


# --- RunningMoments ---------------------------------------------------------------------------


def test_running_moments_hand_case():
    # [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, population var 32/8 = 4 (std 2), sample var 32/7
    m = _stream([2, 4, 4, 4, 5, 5, 7, 9])
    assert m.count == 8
    assert m.mean == 5.0
    assert math.isclose(m.var(), 4.0, rel_tol=1e-12)
    assert math.isclose(m.std(), 2.0, rel_tol=1e-12)
    assert math.isclose(m.var(ddof=1), 32 / 7, rel_tol=1e-12)


@pytest.mark.parametrize("ddof", [0, 1])
def test_running_moments_match_numpy(ddof):
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.5, size=500) + 1e6  # a large offset: naive sum-of-squares would lose digits
    m = _stream(values.tolist())
    assert math.isclose(m.mean, float(values.mean()), rel_tol=1e-12)
    assert math.isclose(m.var(ddof), float(values.var(ddof=ddof)), rel_tol=1e-8)
    assert math.isclose(m.std(ddof), float(values.std(ddof=ddof)), rel_tol=1e-8)


def test_running_moments_too_few_values_give_nan():
    assert math.isnan(RunningMoments().var())
    single = _stream([3.0])
    assert single.var() == 0.0
    assert math.isnan(single.var(ddof=1))
    assert math.isnan(single.std(ddof=1))


def test_running_moments_merge_equals_one_stream():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=37).tolist(), (rng.normal(size=81) * 4 + 10).tolist()
    merged = _stream(a).merge(_stream(b))
    whole = _stream(a + b)
    assert merged.count == whole.count == 118
    assert math.isclose(merged.mean, whole.mean, rel_tol=1e-12)
    assert math.isclose(merged.var(), whole.var(), rel_tol=1e-10)
    assert math.isclose(merged.var(ddof=1), float(np.var(a + b, ddof=1)), rel_tol=1e-10)
    # merging with an empty stream, either way round, changes nothing
    m = _stream(a)
    assert m.merge(RunningMoments()) is m and m.count == 37
    empty_first = RunningMoments().merge(_stream(a))
    assert empty_first.count == 37
    assert math.isclose(empty_first.mean, float(np.mean(a)), rel_tol=1e-12)
    assert math.isclose(empty_first.var(), float(np.var(a)), rel_tol=1e-10)


def test_running_moments_state_dict_round_trip():
    m = _stream([1.5, -2.0, 7.25, 0.0])
    state = m.state_dict()
    assert set(state) == {"count", "mean", "m2"}
    restored = RunningMoments.from_state_dict(state)
    assert (restored.count, restored.mean, restored.var(), restored.var(1)) == (
        m.count,
        m.mean,
        m.var(),
        m.var(1),
    )
    # the restored stream continues exactly like the original
    m.update(3.0)
    restored.update(3.0)
    assert restored.state_dict() == m.state_dict()


def test_running_moments_reject_nan():
    m = _stream([1.0, 2.0])
    with pytest.raises(ValueError, match="RunningMoments.update got NaN"):
        m.update(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        m.update(torch.tensor(float("nan")))
    assert m.count == 2 and m.mean == 1.5  # the bad value left no trace


# --- gradient diagnostics ---------------------------------------------------------------------


def test_grad_norm_hand_cases():
    assert grad_norm(torch.tensor([3.0, 4.0])) == 5.0  # sqrt(9 + 16)
    # several parameters, one without a gradient: sqrt(1 + 4 + 4 + 16) = 5
    assert grad_norm([torch.tensor([[1.0, 2.0]]), None, torch.tensor([2.0, 4.0])]) == 5.0
    assert grad_norm(torch.zeros(3)) == 0.0


def test_grad_norm_of_parameters_after_backward():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor(0.5, requires_grad=True)
    (3.0 * w.sum() + 4.0 * b).backward()  # grads [3, 3] and 4: sqrt(9 + 9 + 16) = sqrt(34)
    assert math.isclose(grad_norm([w.grad, b.grad]), math.sqrt(34.0), rel_tol=1e-7)


def test_grad_cosine_hand_cases():
    # [1, 0] . [1, 1] / (1 * sqrt 2) = 1/sqrt(2)
    assert math.isclose(
        grad_cosine(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])), 1 / math.sqrt(2), rel_tol=1e-12
    )
    assert math.isclose(
        grad_cosine(torch.tensor([1.0, 2.0]), torch.tensor([-2.0, -4.0])), -1.0, rel_tol=1e-12
    )
    assert grad_cosine(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0])) == 0.0
    # lists of per-parameter gradients are flattened in order: [1, 0 | 0] vs [1, 1 | 0]
    got = grad_cosine(
        [torch.tensor([1.0, 0.0]), torch.tensor([0.0])], [torch.tensor([1.0, 1.0]), torch.tensor([0.0])]
    )
    assert math.isclose(got, 1 / math.sqrt(2), rel_tol=1e-12)
    assert math.isnan(grad_cosine(torch.zeros(2), torch.tensor([1.0, 1.0])))


def test_grad_cosine_soft_pair_vs_grpo_is_one_for_g2():
    # Theorem 1 at G = 2: the two advantages coincide, so the gradients do
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 2, generator=gen, dtype=F64)
    old = torch.randn(8, 3, generator=gen, dtype=F64) * 0.2 - 1.0
    ref = old + 0.1
    mask = torch.ones(8, 3, dtype=torch.bool)
    grads = []
    for adv in (group_advantages(scores), pairwise_advantages(preference_matrix(scores), "all")[0]):
        logits = (
            old + torch.randn(8, 3, generator=torch.Generator().manual_seed(1), dtype=F64) * 0.1
        ).requires_grad_(True)
        loss, _ = grpo_loss(logits, old, ref, adv.reshape(-1), mask)
        loss.backward()
        grads.append(logits.grad)
    assert math.isclose(grad_cosine(grads[0], grads[1]), 1.0, rel_tol=1e-9)


def test_gradient_diagnostic_errors():
    with pytest.raises(ValueError, match="no gradients given"):
        grad_norm([None, None])
    with pytest.raises(ValueError, match="different sizes: 2 vs 3"):
        grad_cosine(torch.ones(2), torch.ones(3))


# --- pair accuracy ----------------------------------------------------------------------------


def test_pair_accuracy_hand_case():
    seq_logp = torch.tensor([[-1.0, -2.0, -3.0], [-5.0, -4.0, -4.0]])
    pairs = torch.tensor([[0, 0, 2], [0, 2, 1], [0, 1, 0], [1, 1, 0], [1, 1, 2]])
    # -1 > -3 yes; -3 > -2 no; -2 > -1 no; -4 > -5 yes; -4 > -4 no (a tie is not a win) -> 2/5
    assert pair_accuracy(seq_logp, pairs) == 0.4
    assert math.isnan(pair_accuracy(seq_logp, torch.zeros(0, 3, dtype=torch.long)))


# --- entropies --------------------------------------------------------------------------------


def test_categorical_entropy_hand_values_and_torch():
    # uniform over 4: log 4; a one-hot distribution (p = exp(-1000) underflows to 0): 0, not NaN
    assert math.isclose(float(categorical_entropy(torch.zeros(4, dtype=F64))), math.log(4.0), rel_tol=1e-12)
    assert float(categorical_entropy(torch.tensor([0.0, -1000.0], dtype=F64))) == 0.0
    # [0.5, 0.25, 0.25]: 0.5 log 2 + 2 * 0.25 log 4 = 1.5 log 2 = 1.039721
    logits = torch.log(torch.tensor([0.5, 0.25, 0.25], dtype=F64)) + 3.0  # unnormalised
    assert math.isclose(float(categorical_entropy(logits)), 1.5 * math.log(2.0), rel_tol=1e-12)
    gen = torch.Generator().manual_seed(2)
    batch = torch.randn(3, 5, 6, generator=gen, dtype=F64) * 2
    got = categorical_entropy(batch)
    assert got.shape == (3, 5)
    torch.testing.assert_close(got, Categorical(logits=batch).entropy())


def test_diag_gaussian_entropy_hand_value_and_torch():
    # D = 2, unit std: 2 * 0.5 log(2 pi e) = log(2 pi e) = 2.837877
    assert math.isclose(float(diag_gaussian_entropy(torch.zeros(2, dtype=F64))), 2.8378771, abs_tol=1e-7)
    # std 2 in one dimension adds log 2
    got = float(diag_gaussian_entropy(torch.tensor([math.log(2.0), 0.0], dtype=F64)))
    assert math.isclose(got, 2.8378771 + math.log(2.0), abs_tol=1e-7)
    gen = torch.Generator().manual_seed(3)
    log_std = torch.randn(4, 3, generator=gen, dtype=F64)
    dist = Independent(Normal(torch.zeros(4, 3, dtype=F64), log_std.exp()), 1)
    torch.testing.assert_close(diag_gaussian_entropy(log_std), dist.entropy())
