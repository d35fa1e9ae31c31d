"""GRPO group advantages (docs/algorithms.md "Advantages"): hand cases, invariances, slow reference loops."""

import math

import pytest
import torch

from pairgrpo_rllib.core.advantages import (
    expected_advantage_limit,
    from_step_groups,
    group_advantages,
    kl_penalized_scores,
    reward_to_go,
    step_groups,
)
from pairgrpo_rllib.core.checks import check_choice, check_positive, check_range

F64 = torch.float64


def _reference_group_advantages(scores, group_ids, norm, eps=1e-8):
    """Plain Python loop over groups: population std, zero-spread groups get 0."""
    out = [0.0] * len(scores)
    for gid in set(group_ids):
        idx = [k for k, g in enumerate(group_ids) if g == gid]
        vals = [scores[k] for k in idx]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        for k in idx:
            if norm == "none":
                out[k] = scores[k]
            elif std < eps:
                out[k] = 0.0
            elif norm == "mean_std":
                out[k] = (scores[k] - mean) / std
            else:
                out[k] = scores[k] - mean
    return out


# --- hand cases -------------------------------------------------------------------------------


def test_group_advantages_hand_case_mean_std():
    # r = [1, 2, 3, 6]: mean 3, centred [-2, -1, 0, 3], var (4+1+0+9)/4 = 3.5, std sqrt(3.5) = 1.870829
    adv = group_advantages(torch.tensor([[1.0, 2.0, 3.0, 6.0]], dtype=F64))
    expected = torch.tensor([[-1.0690450, -0.5345225, 0.0, 1.6035675]], dtype=F64)
    torch.testing.assert_close(adv, expected, atol=1e-7, rtol=0)


def test_group_advantages_hand_case_population_std_not_sample_std():
    # r = [0, 1]: mean 0.5, population std 0.5 -> [-1, 1] (the sample std 0.7071 would give -0.7071, 0.7071)
    adv = group_advantages(torch.tensor([[0.0, 1.0]]))
    assert adv.tolist() == [[-1.0, 1.0]]


def test_group_advantages_hand_case_mean_and_none():
    r = torch.tensor([[1.0, 2.0, 6.0]])
    # mean 3 -> centred [-2, -1, 3]
    assert group_advantages(r, "mean").tolist() == [[-2.0, -1.0, 3.0]]
    # none: the raw scores, a copy
    out = group_advantages(r, "none")
    assert out.tolist() == [[1.0, 2.0, 6.0]]
    out[0, 0] = 100.0
    assert r[0, 0] == 1.0


@pytest.mark.parametrize("norm", ["mean_std", "mean"])
def test_zero_spread_group_gives_exact_zero(norm):
    r = torch.tensor([[0.7, 0.7, 0.7], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    adv = group_advantages(r, norm)
    assert not torch.isnan(adv).any()
    assert adv[0].tolist() == [0.0, 0.0, 0.0]
    assert adv[2].tolist() == [0.0, 0.0, 0.0]
    assert adv[1].abs().sum() > 0
    # the flat form too
    flat = group_advantages(r.reshape(-1), norm, group_ids=torch.arange(3).repeat_interleave(3))
    assert flat.reshape(3, 3)[0].tolist() == [0.0, 0.0, 0.0]
    assert not torch.isnan(flat).any()


def test_zero_spread_none_keeps_raw_scores():
    # 'none' is the one mode where an all-equal group keeps non-zero advantages (implementation detail 3)
    assert group_advantages(torch.tensor([[0.5, 0.5]]), "none").tolist() == [[0.5, 0.5]]


def test_group_advantages_keeps_dtype_and_shape():
    r = torch.randn(3, 5, dtype=F64)
    adv = group_advantages(r)
    assert adv.dtype == F64 and adv.shape == (3, 5)


# --- invariances ------------------------------------------------------------------------------


@pytest.mark.parametrize("a,b", [(2.5, -3.0), (0.01, 100.0), (1000.0, 0.5)])
def test_mean_std_invariant_to_affine_reward_change(a, b):
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(6, 5, generator=gen, dtype=F64)
    torch.testing.assert_close(group_advantages(a * r + b), group_advantages(r), atol=1e-9, rtol=1e-9)


def test_mean_is_shift_invariant_but_scales_with_reward():
    gen = torch.Generator().manual_seed(1)
    r = torch.randn(4, 6, generator=gen, dtype=F64)
    torch.testing.assert_close(group_advantages(r + 7.0, "mean"), group_advantages(r, "mean"))
    torch.testing.assert_close(group_advantages(3.0 * r, "mean"), 3.0 * group_advantages(r, "mean"))


def test_mean_std_advantages_have_zero_mean_and_unit_population_std():
    gen = torch.Generator().manual_seed(2)
    adv = group_advantages(torch.randn(8, 7, generator=gen, dtype=F64))
    torch.testing.assert_close(adv.mean(-1), torch.zeros(8, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(adv.std(-1, correction=0), torch.ones(8, dtype=F64), atol=1e-12, rtol=0)


# --- flat form with group_ids -----------------------------------------------------------------


@pytest.mark.parametrize("norm", ["mean_std", "mean", "none"])
def test_flat_form_equals_row_form_in_any_order(norm):
    gen = torch.Generator().manual_seed(3)
    n, g = 5, 4
    r = torch.randn(n, g, generator=gen, dtype=F64)
    r[2] = 1.5  # a zero-spread group in the mix
    rows = group_advantages(r, norm)
    perm = torch.randperm(n * g, generator=gen)
    flat_scores = r.reshape(-1)[perm]
    flat_ids = torch.arange(n).repeat_interleave(g)[perm] * 10 + 3  # non-contiguous labels
    flat = group_advantages(flat_scores, norm, group_ids=flat_ids)
    torch.testing.assert_close(flat, rows.reshape(-1)[perm], atol=1e-12, rtol=0)


@pytest.mark.parametrize("norm", ["mean_std", "mean", "none"])
def test_flat_form_unequal_group_sizes_matches_python_loop(norm):
    gen = torch.Generator().manual_seed(4)
    sizes = [2, 5, 3, 1, 4]
    ids = torch.cat([torch.full((s,), k) for k, s in enumerate(sizes)])
    scores = torch.randn(ids.numel(), generator=gen, dtype=F64)
    scores[ids == 4] = -0.25  # zero spread
    perm = torch.randperm(ids.numel(), generator=gen)
    scores, ids = scores[perm], ids[perm]
    got = group_advantages(scores, norm, group_ids=ids)
    ref = _reference_group_advantages(scores.tolist(), ids.tolist(), norm)
    torch.testing.assert_close(got, torch.tensor(ref, dtype=F64), atol=1e-12, rtol=0)
    if norm != "none":
        # the singleton group (size 1) and the constant one have no spread
        assert got[ids == 3].tolist() == [0.0]
        assert got[ids == 4].abs().max() == 0.0


def test_row_form_matches_python_loop():
    gen = torch.Generator().manual_seed(5)
    r = torch.randn(6, 3, generator=gen, dtype=F64)
    ids = torch.arange(6).repeat_interleave(3)
    ref = _reference_group_advantages(r.reshape(-1).tolist(), ids.tolist(), "mean_std")
    torch.testing.assert_close(
        group_advantages(r).reshape(-1), torch.tensor(ref, dtype=F64), atol=1e-12, rtol=0
    )


# --- the G -> infinity limit ------------------------------------------------------------------


def test_expected_advantage_limit_hand_case():
    # E r = 0.8*1 + 0.2*0 = 0.8; var = 0.8*0.2^2 + 0.2*0.8^2 = 0.032 + 0.128 = 0.16, std 0.4
    # A = [(1 - 0.8)/0.4, (0 - 0.8)/0.4] = [0.5, -2]
    rewards = torch.tensor([1.0, 0.0], dtype=F64)
    probs = torch.tensor([0.8, 0.2], dtype=F64)
    torch.testing.assert_close(
        expected_advantage_limit(rewards, probs), torch.tensor([0.5, -2.0], dtype=F64), atol=1e-12, rtol=0
    )
    # mean: shift only -> [0.2, -0.8]; none: the rewards
    torch.testing.assert_close(
        expected_advantage_limit(rewards, probs, "mean"),
        torch.tensor([0.2, -0.8], dtype=F64),
        atol=1e-12,
        rtol=0,
    )
    assert expected_advantage_limit(rewards, probs, "none").tolist() == [1.0, 0.0]


def test_expected_advantage_limit_zero_spread_and_batch():
    # probability 1 on one answer: sigma = 0 -> advantage 0, not NaN
    out = expected_advantage_limit(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert out.tolist() == [0.0, 0.0]
    # (..., K) batch: each row on its own; row 2: E r = 0.5, std 0.5 -> [1, -1]
    rewards = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64)
    probs = torch.tensor([[0.8, 0.2], [0.5, 0.5]], dtype=F64)
    torch.testing.assert_close(
        expected_advantage_limit(rewards, probs),
        torch.tensor([[0.5, -2.0], [1.0, -1.0]], dtype=F64),
        atol=1e-12,
        rtol=0,
    )


def test_large_sampled_group_approaches_the_limit():
    gen = torch.Generator().manual_seed(6)
    rewards = torch.tensor([1.0, 0.0, 0.3], dtype=F64)
    probs = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
    answers = torch.multinomial(probs, 200_000, replacement=True, generator=gen)
    adv = group_advantages(rewards[answers].unsqueeze(0)).squeeze(0)
    limit = expected_advantage_limit(rewards, probs)
    for k in range(3):
        sampled = adv[answers == k][0]
        assert abs(float(sampled) - float(limit[k])) < 0.02


# --- kl_in_reward -----------------------------------------------------------------------------


def test_kl_penalized_scores_hand_case():
    scores = torch.tensor([1.0, 2.0], dtype=F64)
    logp = torch.tensor([[-1.0, -2.0], [-1.0, float("nan")]], dtype=F64, requires_grad=True)
    ref_logp = torch.tensor([[-1.5, -1.5], [-2.0, float("-inf")]], dtype=F64)
    mask = torch.tensor([[True, True], [True, False]])
    # k1 = logp - ref: row 0 [0.5, -0.5] sums to 0; row 1 [1.0] (pad ignored) sums to 1
    # beta = 0.1: [1 - 0.1*0, 2 - 0.1*1] = [1.0, 1.9]
    out = kl_penalized_scores(scores, logp, ref_logp, mask, beta=0.1)
    torch.testing.assert_close(out, torch.tensor([1.0, 1.9], dtype=F64), atol=1e-12, rtol=0)
    assert not out.requires_grad  # a reward is not differentiated
    assert kl_penalized_scores(scores, logp, ref_logp, mask, beta=0.0).tolist() == [1.0, 2.0]


# --- validation -------------------------------------------------------------------------------


def test_validation_errors_name_the_field():
    r = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="advantage_norm='zscore'"):
        group_advantages(r, "zscore")
    with pytest.raises(ValueError, match="eps"):
        group_advantages(r, eps=0.0)
    with pytest.raises(ValueError, match="scores has shape"):
        group_advantages(torch.zeros(6))
    with pytest.raises(ValueError, match="group_ids"):
        group_advantages(torch.zeros(6), group_ids=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="advantage_norm"):
        expected_advantage_limit(torch.zeros(2), torch.ones(2) / 2, "std")
    with pytest.raises(ValueError, match="beta"):
        kl_penalized_scores(torch.zeros(1), torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), beta=-0.1)


def test_validation_helpers():
    assert check_choice("pairs", "all", ("all", "best_worst")) == "all"
    with pytest.raises(ValueError, match=r"pairs='some'.*'all', 'best_worst'"):
        check_choice("pairs", "some", ("all", "best_worst"))
    assert check_positive("beta", 0.0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="beta=0.0 is invalid: use a finite number > 0"):
        check_positive("beta", 0.0)
    with pytest.raises(ValueError, match="beta=-1 is invalid: use a finite number >= 0"):
        check_positive("beta", -1, allow_zero=True)
    with pytest.raises(ValueError, match="beta=nan"):
        check_positive("beta", float("nan"), allow_zero=True)
    assert check_range("gamma", 1.0, 0.0, 1.0) == 1.0
    with pytest.raises(ValueError, match=r"gamma=1.0 is invalid: use a finite number in \(0, 1\)"):
        check_range("gamma", 1.0, 0.0, 1.0, closed=False)
    with pytest.raises(ValueError, match=r"gamma=1.5 is invalid: use a finite number in \[0, 1\]"):
        check_range("gamma", 1.5, 0.0, 1.0)


def test_float32_near_tie_keeps_both_signs():
    # Two float32 scores one rounding step apart: the spread (8.4e-8) is above eps, so the group
    # counts as spread; the advantages must still be -1 and +1, not 0 and 1.41 (detail 5).
    scores = torch.tensor([[1.0, 1.0 + 1.19e-7]], dtype=torch.float32)
    assert torch.equal(group_advantages(scores), torch.tensor([[-1.0, 1.0]]))
    flat = group_advantages(scores.reshape(-1), group_ids=torch.tensor([0, 0]))
    assert torch.equal(flat, torch.tensor([-1.0, 1.0]))
    assert flat.dtype == torch.float32


# ---- per-step credit (credit="step") ---------------------------------------------------------------


def test_reward_to_go_hand_case():
    r = torch.tensor([[1.0, 2.0, 3.0, 9.0]])
    m = torch.tensor([[True, True, True, False]])  # the 9 is padding
    assert reward_to_go(r, m).tolist() == [[6.0, 5.0, 3.0, 0.0]]
    # gamma 0.5: 3; 2 + 1.5 = 3.5; 1 + 1.75 = 2.75
    assert reward_to_go(r, m, 0.5).tolist() == [[2.75, 3.5, 3.0, 0.0]]


def test_reward_to_go_matches_a_reference_loop_and_starts_at_the_discounted_return():
    gen = torch.Generator().manual_seed(3)
    r = torch.randn(3, 4, 7, generator=gen, dtype=F64)
    m = torch.rand(3, 4, 7, generator=gen) < 0.8
    got = reward_to_go(r, m, 0.9)
    for idx in [(0, 0), (1, 2), (2, 3)]:
        for t in range(7):
            want = sum(0.9 ** (k - t) * float(r[idx][k]) for k in range(t, 7) if m[idx][k])
            assert math.isclose(float(got[idx][t]), want, rel_tol=1e-12, abs_tol=1e-12)
    assert torch.allclose(reward_to_go(r, m)[..., 0], (r * m).sum(-1))
    with pytest.raises(ValueError, match="gamma"):
        reward_to_go(r, m, 0.0)


def test_reward_to_go_with_a_tail_equals_the_longer_reward_to_go_cut_back():
    # lookahead: a member run H + L steps, trained on H; the tail is the L steps' discounted return
    gen = torch.Generator().manual_seed(5)
    r = torch.randn(2, 3, 9, generator=gen, dtype=F64)
    full = torch.ones_like(r, dtype=torch.bool)
    h, gamma = 6, 0.9
    tail = reward_to_go(r[..., h:], full[..., h:], gamma)[..., 0]
    got = reward_to_go(r[..., :h], full[..., :h], gamma, tail)
    assert torch.allclose(got, reward_to_go(r, full, gamma)[..., :h], rtol=1e-12, atol=1e-12)
    # hand case: rewards [1, 2], tail 4, gamma 0.5 -> R_1 = 2 + 0.5*4 = 4, R_0 = 1 + 0.5*4 = 3
    assert reward_to_go(torch.tensor([[1.0, 2.0]]), torch.ones(1, 2), 0.5, torch.tensor([4.0])).tolist() == [
        [3.0, 4.0]
    ]
    # a member that ended inside its segment has no lookahead
    ended = full[..., :h].clone()
    ended[0, 0, -1] = False
    with pytest.raises(ValueError, match="tail is non-zero"):
        reward_to_go(r[..., :h], ended, gamma, tail)
    with pytest.raises(ValueError, match="tail has shape"):
        reward_to_go(r[..., :h], full[..., :h], gamma, tail[0])


def test_step_groups_put_one_time_index_per_group_and_invert():
    x = torch.arange(2 * 3 * 4).reshape(2, 3, 4)  # (N, G, T)
    s = step_groups(x)
    assert s.shape == (8, 3)
    # row n*T + t holds the G members at time t of group n
    assert s[1 * 4 + 2].tolist() == [x[1, 0, 2], x[1, 1, 2], x[1, 2, 2]]
    assert torch.equal(from_step_groups(s, 2), x)
    y = torch.randn(2, 3, 4, 5)
    assert torch.equal(from_step_groups(step_groups(y), 2), y)
