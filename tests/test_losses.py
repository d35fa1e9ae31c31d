"""Policy losses (docs/algorithms.md "Clipped surrogate", "KL to the reference", PG-GRPO, DPO, ORPO)."""

import math

import pytest
import torch

from pairgrpo_rllib.core import names as C
from pairgrpo_rllib.core.advantages import group_advantages
from pairgrpo_rllib.core.losses import (
    aggregate,
    clipped_surrogate,
    dpo_loss,
    grpo_loss,
    orpo_loss,
    pg_grpo_loss,
    sequence_logp,
    suffix_logp,
)

F64 = torch.float64
LOG = math.log
NAN, NEG_INF = float("nan"), float("-inf")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --- sequence_logp ----------------------------------------------------------------------------


def test_sequence_logp_hand_case():
    logp = torch.tensor([[-1.0, -2.0, NAN], [-0.5, -0.5, -2.0], [NEG_INF, NAN, 0.0]], dtype=F64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    # sums: -1 - 2 = -3; -0.5 - 0.5 - 2 = -3; no real step: 0
    assert sequence_logp(logp, mask).tolist() == [-3.0, -3.0, 0.0]
    # means: -3/2, -3/3, 0 (length clamped at 1)
    assert sequence_logp(logp, mask, length_norm=True).tolist() == [-1.5, -1.0, 0.0]


# --- clipped_surrogate ------------------------------------------------------------------------


def test_clipped_surrogate_hand_case_asymmetric_clip():
    # clip range [1 - 0.2, 1 + 0.28] = [0.8, 1.28]
    ratios = [1.5, 1.1, 0.5, 0.5, 1.5, 1.25, 0.75, 2.0]
    advs = [2.0, 2.0, 2.0, -1.0, -1.0, 1.0, -1.0, 0.0]
    # rho A vs clip(rho) A, min:
    # 1.5*2=3.0 vs 1.28*2=2.56 -> 2.56 (clipped) | 1.1*2=2.2 vs 2.2 -> 2.2 | 0.5*2=1.0 vs 0.8*2=1.6 -> 1.0
    # 0.5*-1=-0.5 vs 0.8*-1=-0.8 -> -0.8 (clipped) | 1.5*-1=-1.5 vs 1.28*-1=-1.28 -> -1.5
    # 1.25*1=1.25 vs 1.25 -> 1.25 (inside 1.28: not clipped, a symmetric 0.2 would clip it)
    # 0.75*-1=-0.75 vs 0.8*-1=-0.8 -> -0.8 (clipped) | A = 0 -> 0
    expected_c = [2.56, 2.2, 1.0, -0.8, -1.5, 1.25, -0.8, 0.0]
    expected_clipped = [True, False, False, True, False, False, True, False]
    logp = torch.tensor([[LOG(r) for r in ratios]], dtype=F64)
    old = torch.zeros_like(logp)
    c, ratio, clipped = clipped_surrogate(
        logp, old, torch.tensor([advs], dtype=F64), clip_low=0.2, clip_high=0.28
    )
    torch.testing.assert_close(c, torch.tensor([expected_c], dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(ratio, torch.tensor([ratios], dtype=F64), atol=1e-12, rtol=0)
    assert clipped.tolist() == [expected_clipped]
    # symmetric 0.2: the 1.25 entry is now clipped to 1.2
    c_sym, _, clipped_sym = clipped_surrogate(logp, old, torch.tensor([advs], dtype=F64))
    assert math.isclose(float(c_sym[0, 5]), 1.2, abs_tol=1e-12) and bool(clipped_sym[0, 5])


def test_clipped_surrogate_per_sequence_advantage_broadcasts():
    logp = torch.log(torch.tensor([[1.5, 0.9], [1.1, 0.5]], dtype=F64))
    c, _, clipped = clipped_surrogate(logp, torch.zeros_like(logp), torch.tensor([1.0, -1.0], dtype=F64))
    # A = +1: min(1.5, 1.2) = 1.2 (clipped), 0.9; A = -1: -1.1, min(-0.5, -0.8) = -0.8 (clipped)
    torch.testing.assert_close(c, torch.tensor([[1.2, 0.9], [-1.1, -0.8]], dtype=F64), atol=1e-12, rtol=0)
    assert clipped.tolist() == [[True, False], [False, True]]


def test_clipped_branch_has_zero_gradient():
    logp = torch.log(torch.tensor([[1.5, 0.9]], dtype=F64)).requires_grad_(True)
    c, _, clipped = clipped_surrogate(logp, torch.zeros_like(logp).detach(), torch.tensor([1.0], dtype=F64))
    c.sum().backward()
    # clipped step: d/dlogp of 1.2 * A = 0; unclipped: d(rho A)/dlogp = rho = 0.9
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 0.9]], dtype=F64), atol=1e-12, rtol=0)
    assert clipped.tolist() == [[True, False]]


def test_clipped_surrogate_ratio_scale():
    # log-ratio log 4 scaled by 0.5: rho = exp(0.5 log 4) = 2; A = 1 -> min(2, 1.2) = 1.2
    logp = torch.tensor([[LOG(4.0)]], dtype=F64)
    c, ratio, clipped = clipped_surrogate(
        logp, torch.zeros_like(logp), torch.tensor([1.0], dtype=F64), ratio_scale=0.5
    )
    assert math.isclose(float(ratio), 2.0, rel_tol=1e-12)
    assert math.isclose(float(c), 1.2, rel_tol=1e-12) and bool(clipped)


def test_clipped_surrogate_matches_python_loop():
    gen = _gen(0)
    logp = torch.randn(4, 6, generator=gen, dtype=F64) * 0.3
    old = torch.randn(4, 6, generator=gen, dtype=F64) * 0.3
    adv = torch.randn(4, generator=gen, dtype=F64)
    c, _, clipped = clipped_surrogate(logp, old, adv, clip_low=0.1, clip_high=0.3)
    for b in range(4):
        for t in range(6):
            rho = math.exp(float(logp[b, t] - old[b, t]))
            a = float(adv[b])
            clip_term = min(max(rho, 0.9), 1.3) * a
            assert math.isclose(float(c[b, t]), min(rho * a, clip_term), rel_tol=1e-12, abs_tol=1e-12)
            assert bool(clipped[b, t]) == (clip_term < rho * a)
    assert 0 < clipped.sum() < clipped.numel()  # both branches are exercised


# --- aggregate --------------------------------------------------------------------------------

VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, NAN], [7.0, 7.0, 7.0]], dtype=F64)
MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)  # lengths 3, 1, 0


def test_aggregate_hand_cases():
    # seq_mean_token_mean: (mean[1,2,3] + mean[4]) / 2 = (2 + 4) / 2 = 3 (the empty row is left out)
    assert float(aggregate(VALUES, MASK, "seq_mean_token_mean")) == 3.0
    # token_mean: (1 + 2 + 3 + 4) / 4 = 2.5
    assert float(aggregate(VALUES, MASK, "token_mean")) == 2.5
    # seq_mean_token_sum_norm, T_max = padded width 3: (6/3 + 4/3) / 2 = 10/6
    assert math.isclose(float(aggregate(VALUES, MASK, "seq_mean_token_sum_norm")), 10 / 6, rel_tol=1e-12)
    # ... with max_len = 5: (6/5 + 4/5) / 2 = 1.0
    assert math.isclose(
        float(aggregate(VALUES, MASK, "seq_mean_token_sum_norm", max_len=5)), 1.0, rel_tol=1e-12
    )
    # default mode is seq_mean_token_mean
    assert float(aggregate(VALUES, MASK)) == 3.0


def test_aggregate_weights_hand_cases():
    w = torch.tensor([1.0, 3.0, 5.0], dtype=F64)  # the weight of the empty row must not count
    # seq_mean_token_mean: (1*2 + 3*4) / (1 + 3) = 14/4 = 3.5
    assert float(aggregate(VALUES, MASK, "seq_mean_token_mean", weights=w)) == 3.5
    # token_mean: (1*6 + 3*4) / (1*3 + 3*1) = 18/6 = 3.0
    assert float(aggregate(VALUES, MASK, "token_mean", weights=w)) == 3.0
    # seq_mean_token_sum_norm: (1*6/3 + 3*4/3) / 4 = (2 + 4) / 4 = 1.5
    assert math.isclose(
        float(aggregate(VALUES, MASK, "seq_mean_token_sum_norm", weights=w)), 1.5, rel_tol=1e-12
    )


def test_token_mean_over_learner_shards_is_the_global_token_mean():
    # VALUES/MASK as two learner shards: rows 0 | rows 1, 2 (3 + 1 real steps). Each shard divides by
    # the whole count / 2 learners = 2; the mean of the shards' losses is the global token mean 2.5
    # ((1 + 2 + 3) / 2 + 4 / 2) / 2 = 2.5, where the mean of per-shard means is (2 + 4) / 2 = 3.
    shards = [(VALUES[:1], MASK[:1]), (VALUES[1:], MASK[1:])]
    shared = [float(aggregate(v, m, "token_mean", token_count=2.0)) for v, m in shards]
    assert sum(shared) / 2 == float(aggregate(VALUES, MASK, "token_mean")) == 2.5
    assert sum(float(aggregate(v, m, "token_mean")) for v, m in shards) / 2 == 3.0


def test_aggregate_modes_differ_on_unequal_lengths_and_agree_on_equal_ones():
    full = torch.ones(2, 3, dtype=torch.bool)
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=F64)
    values = [float(aggregate(v, full, m)) for m in C.LOSS_AGGS]
    assert values == [3.5, 3.5, 3.5]  # all real, T_max = T: every mode is the plain mean 21/6


@pytest.mark.parametrize("mode", list(C.LOSS_AGGS))
def test_aggregate_matches_python_loop(mode):
    gen = _gen(1)
    b, t = 5, 7
    values = torch.randn(b, t, generator=gen, dtype=F64)
    lengths = [7, 3, 1, 0, 5]
    mask = torch.tensor([[k < n for k in range(t)] for n in lengths])
    values[~mask] = NAN  # garbage in the padding
    weights = torch.rand(b, generator=gen, dtype=F64) + 0.1
    got = aggregate(values, mask, mode, weights=weights, max_len=9)
    rows = [[float(values[i, k]) for k in range(lengths[i])] for i in range(b)]
    ws = weights.tolist()
    if mode == "token_mean":
        ref = sum(w * sum(r) for w, r in zip(ws, rows)) / sum(w * len(r) for w, r in zip(ws, rows))
    else:
        pairs = [(w, r) for w, r in zip(ws, rows) if r]
        denom = (lambda r: len(r)) if mode == "seq_mean_token_mean" else (lambda r: 9)
        ref = sum(w * sum(r) / denom(r) for w, r in pairs) / sum(w for w, _ in pairs)
    assert math.isclose(float(got), ref, rel_tol=1e-12)


# --- grpo_loss --------------------------------------------------------------------------------


def _hand_batch():
    # seq 0 (A = +1): ratios 1.5, 0.9; seq 1 (A = -1): ratio 1.1, then padding
    old = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]], dtype=F64)
    logp = (old + torch.log(torch.tensor([[1.5, 0.9], [1.1, 1.0]], dtype=F64))).requires_grad_(True)
    # u = ref - logp = [-0.2, 0.4], [0.1] -> k1 = -u = [0.2, -0.4], [-0.1]
    ref = logp.detach() + torch.tensor([[-0.2, 0.4], [0.1, 0.0]], dtype=F64)
    adv = torch.tensor([1.0, -1.0], dtype=F64)
    mask = torch.tensor([[True, True], [True, False]])
    return logp, old, ref, adv, mask


def test_grpo_loss_hand_case_seq_mean_token_mean():
    logp, old, ref, adv, mask = _hand_batch()
    loss, stats = grpo_loss(logp, old, ref, adv, mask, beta=0.1, kl_estimator="k1")
    # c: seq 0 -> min(1.5, 1.2) = 1.2 and 0.9, mean 1.05; seq 1 -> -1.1; policy obj (1.05 - 1.1)/2 = -0.025
    # k1 per seq: (0.2 - 0.4)/2 = -0.1 and -0.1 -> -0.1; J = -0.025 - 0.1 * -0.1 = -0.015; loss = 0.015
    assert math.isclose(float(loss.detach()), 0.015, abs_tol=1e-12)
    assert math.isclose(float(stats[C.POLICY_LOSS]), 0.025, abs_tol=1e-12)
    assert math.isclose(float(stats[C.LOSS]), 0.015, abs_tol=1e-12)
    # kl_ref: (0.2 - 0.4 - 0.1) / 3 real steps = -0.1; clip_fraction: 1 of 3; ratio_mean (1.5 + 0.9 + 1.1)/3
    assert math.isclose(float(stats[C.KL_REF]), -0.1, abs_tol=1e-12)
    assert math.isclose(float(stats[C.CLIP_FRACTION]), 1 / 3, abs_tol=1e-7)  # a float32 count ratio
    assert math.isclose(float(stats[C.RATIO_MEAN]), 3.5 / 3, abs_tol=1e-12)
    loss.backward()
    # d loss / d logp: [0,0] clipped: 0 policy, kl +0.1 * (1/2)(1/2) -> +0.025
    # [0,1]: -(0.9 * 1/4 - 0.1 * 1/4) = -0.2; [1,0]: -(-1.1 * 1/2 - 0.1 * 1/2) = 0.6; padding 0
    torch.testing.assert_close(
        logp.grad, torch.tensor([[0.025, -0.2], [0.6, 0.0]], dtype=F64), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize(
    "loss_agg,expected",
    [
        # token_mean: policy (1.2 + 0.9 - 1.1)/3 = 1/3; kl (0.2 - 0.4 - 0.1)/3 = -0.1; J = 1/3 + 0.01
        ("token_mean", -(1 / 3 + 0.01)),
        # sum_norm, T_max = 2: policy (2.1/2 - 1.1/2)/2 = 0.25; kl (-0.2/2 - 0.1/2)/2 = -0.075; J = 0.2575
        ("seq_mean_token_sum_norm", -0.2575),
    ],
)
def test_grpo_loss_hand_case_other_aggregations(loss_agg, expected):
    logp, old, ref, adv, mask = _hand_batch()
    loss, _ = grpo_loss(logp, old, ref, adv, mask, beta=0.1, kl_estimator="k1", loss_agg=loss_agg)
    assert math.isclose(float(loss.detach()), expected, abs_tol=1e-12)


def test_grpo_loss_beta_zero_needs_no_reference_and_precomputed_kl():
    logp, old, ref, adv, mask = _hand_batch()
    loss, stats = grpo_loss(logp, old, None, adv, mask, beta=0.0)
    assert math.isclose(float(loss.detach()), 0.025, abs_tol=1e-12)
    assert float(stats[C.KL_REF]) == 0.0
    # a precomputed per-step KL (e.g. analytic Gaussian) replaces the estimator; padding is masked
    kl = torch.tensor([[0.3, 0.1], [0.5, NAN]], dtype=F64)
    loss_kl, stats_kl = grpo_loss(logp, old, None, adv, mask, beta=0.1, kl=kl)
    # kl per seq: 0.2 and 0.5 -> 0.35; loss = 0.025 + 0.1 * 0.35 = 0.06
    assert math.isclose(float(loss_kl.detach()), 0.06, abs_tol=1e-12)
    assert math.isclose(float(stats_kl[C.KL_REF]), 0.3, abs_tol=1e-12)


@pytest.mark.parametrize("kl_estimator", ["k1", "k2", "k3", "k3_is"])
@pytest.mark.parametrize("loss_agg", list(C.LOSS_AGGS))
def test_masked_entries_get_exactly_zero_gradient_with_garbage_padding(kl_estimator, loss_agg):
    gen = _gen(2)
    logp = torch.randn(3, 5, generator=gen, dtype=F64) * 0.3 - 1.0
    old = logp + torch.randn(3, 5, generator=gen, dtype=F64) * 0.3
    ref = logp + torch.randn(3, 5, generator=gen, dtype=F64) * 0.3
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    # pad tokens: -inf and NaN log-probs under every policy
    logp[1, 2], logp[1, 3], logp[2, 1:] = NEG_INF, NAN, NEG_INF
    old[1, 2:], old[2, 1], old[2, 2:] = NAN, NEG_INF, NAN
    ref[1, 2:], ref[2, 1:] = NEG_INF, NAN
    logp.requires_grad_(True)
    adv = torch.tensor([1.0, -0.5, 2.0], dtype=F64)
    loss, stats = grpo_loss(
        logp, old, ref, adv, mask, beta=0.04, kl_estimator=kl_estimator, loss_agg=loss_agg
    )
    assert torch.isfinite(loss)
    assert all(torch.isfinite(v) for v in stats.values())
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    assert logp.grad[~mask].abs().max() == 0.0
    assert logp.grad[mask].abs().min() > 0.0
    # the value equals the loss on the same batch with clean padding
    clean = [torch.where(mask, x.detach(), torch.zeros_like(x.detach())) for x in (logp, old, ref)]
    loss_clean, _ = grpo_loss(*clean, adv, mask, beta=0.04, kl_estimator=kl_estimator, loss_agg=loss_agg)
    assert math.isclose(float(loss.detach()), float(loss_clean), rel_tol=1e-12)


def _reference_grpo_objective(logp, old, ref, adv, lengths, beta, eps):
    """Slow loop: seq_mean_token_mean of min(rho A, clip(rho) A) - beta k3."""
    total = 0.0
    for b, n in enumerate(lengths):
        seq = 0.0
        for t in range(n):
            rho = math.exp(logp[b][t] - old[b][t])
            u = ref[b][t] - logp[b][t]
            c = min(rho * adv[b], min(max(rho, 1 - eps), 1 + eps) * adv[b])
            seq += c - beta * (math.exp(u) - u - 1)
        total += seq / n
    return total / len(lengths)


def test_grpo_loss_matches_python_loop():
    gen = _gen(3)
    logp = torch.randn(4, 6, generator=gen, dtype=F64) * 0.5 - 1.0
    old = logp + torch.randn(4, 6, generator=gen, dtype=F64) * 0.3
    ref = logp + torch.randn(4, 6, generator=gen, dtype=F64) * 0.3
    adv = torch.randn(4, generator=gen, dtype=F64)
    lengths = [6, 2, 4, 5]
    mask = torch.tensor([[k < n for k in range(6)] for n in lengths])
    loss, _ = grpo_loss(logp, old, ref, adv, mask, beta=0.2)
    ref_obj = _reference_grpo_objective(
        logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(), lengths, 0.2, 0.2
    )
    assert math.isclose(float(loss.detach()), -ref_obj, rel_tol=1e-12)


# --- PG-GRPO ----------------------------------------------------------------------------------


def test_pg_grpo_with_beta_pg_one_and_mean_advantages_is_grpo():
    gen = _gen(4)
    b, t = 6, 5
    base = torch.randn(b, t, generator=gen, dtype=F64) * 0.5 - 1.0
    old = base + torch.randn(b, t, generator=gen, dtype=F64) * 0.3  # ratios far from 1
    ref = base + torch.randn(b, t, generator=gen, dtype=F64) * 0.2
    scores = torch.randn(2, 3, generator=gen, dtype=F64)
    adv = group_advantages(scores, "mean").reshape(-1)
    lengths = [5, 3, 4, 1, 5, 2]
    mask = torch.tensor([[k < n for k in range(t)] for n in lengths])
    for agg in C.LOSS_AGGS:
        lp_pg = base.clone().requires_grad_(True)
        lp_grpo = base.clone().requires_grad_(True)
        loss_pg, stats_pg = pg_grpo_loss(
            lp_pg, old, ref, adv, mask, beta_pg=1.0, w1=0.04, clip_low=0.2, clip_high=0.2, loss_agg=agg
        )
        loss_grpo, stats_grpo = grpo_loss(
            lp_grpo,
            old,
            ref,
            adv,
            mask,
            clip_low=0.2,
            clip_high=0.2,
            beta=0.04,
            kl_estimator="k3",
            loss_agg=agg,
        )
        loss_pg.backward()
        loss_grpo.backward()
        assert torch.equal(loss_pg, loss_grpo)
        assert torch.equal(lp_pg.grad, lp_grpo.grad)
        # the check is not vacuous: some real steps are clipped, some not
        assert 0 < float(stats_grpo[C.CLIP_FRACTION]) < 1
        assert stats_pg[C.CLIP_FRACTION] == stats_grpo[C.CLIP_FRACTION]
    # and with beta_pg != 1 the losses differ
    loss_01, _ = pg_grpo_loss(base, old, ref, adv, mask, beta_pg=0.1)
    assert not torch.equal(loss_01, loss_grpo.detach())


def test_pg_grpo_hand_case():
    # log pi_theta - log pi_old = log 4, beta_pg = 0.5: p = 2; A = 1 -> min(2, 1.2) = 1.2; A = -1 -> -2
    # w1 = 0 (no KL): loss = -(1.2 - 2)/2 = 0.4
    logp = torch.tensor([[LOG(4.0) - 1.0], [LOG(4.0) - 1.0]], dtype=F64)
    old = torch.full((2, 1), -1.0, dtype=F64)
    loss, stats = pg_grpo_loss(
        logp, old, None, torch.tensor([1.0, -1.0], dtype=F64), torch.ones(2, 1), beta_pg=0.5, w1=0.0
    )
    assert math.isclose(float(loss.detach()), 0.4, abs_tol=1e-12)
    assert math.isclose(float(stats[C.RATIO_MEAN]), 2.0, rel_tol=1e-12)
    assert float(stats[C.CLIP_FRACTION]) == 0.5


# --- DPO --------------------------------------------------------------------------------------


def test_dpo_loss_hand_cases():
    # margin 0: -log sigmoid(0) = log 2
    z = torch.zeros(3, dtype=F64)
    loss, stats = dpo_loss(z - 1.0, z - 2.0, z - 1.0, z - 2.0)
    assert math.isclose(float(loss.detach()), LOG(2.0), rel_tol=1e-12)
    assert float(stats[C.REWARD_MARGIN]) == 0.0 and float(stats[C.PAIR_ACCURACY]) == 0.0
    # (l_w - ref_w) = 2, (l_l - ref_l) = -3, beta = 0.1: margin 0.5; -log sigmoid(0.5) = log(1 + e^-0.5) = 0.474077
    # second pair: margin 0.1 * (-1 - 1) = -0.2; -log sigmoid(-0.2) = log(1 + e^0.2) = 0.798139
    logp_w = torch.tensor([-3.0, -5.0], dtype=F64, requires_grad=True)
    logp_l = torch.tensor([-8.0, -4.0], dtype=F64)
    ref_w = torch.tensor([-5.0, -4.0], dtype=F64)
    ref_l = torch.tensor([-5.0, -5.0], dtype=F64)
    loss, stats = dpo_loss(logp_w, logp_l, ref_w, ref_l, beta=0.1)
    assert math.isclose(float(loss.detach()), (0.4740770 + 0.7981389) / 2, abs_tol=1e-7)
    assert math.isclose(float(stats[C.REWARD_MARGIN]), (0.5 - 0.2) / 2, abs_tol=1e-12)
    assert float(stats[C.PAIR_ACCURACY]) == 0.5
    loss.backward()
    # d/dl_w = -beta (1 - sigmoid(m)) / B: -0.1 * 0.377541 / 2 and -0.1 * 0.549834 / 2
    torch.testing.assert_close(
        logp_w.grad, torch.tensor([-0.0188771, -0.0274917], dtype=F64), atol=1e-7, rtol=0
    )


# --- ORPO -------------------------------------------------------------------------------------


def test_orpo_loss_hand_case():
    logp_w = torch.tensor([[-1.0, -1.0, NAN]], dtype=F64)
    mask_w = torch.tensor([[1, 1, 0]])
    logp_l = torch.tensor([[-1.0, -3.0, NEG_INF]], dtype=F64)
    mask_l = torch.tensor([[1, 1, 0]])
    loss, stats = orpo_loss(logp_w, mask_w, logp_l, mask_l, lam=0.1)
    # NLL(w) = token mean of -logp = 1
    # log odds(w) = -1 - log(1 - e^-1) = -0.541325; log odds(l) = -2 - log(1 - e^-2) = -1.854587 (mean -2)
    # ratio = 1.313262; -log sigmoid(1.313262) = 0.238183; loss = 1 + 0.1 * 0.238183 = 1.0238183
    assert math.isclose(float(stats[C.NLL]), 1.0, rel_tol=1e-12)
    assert math.isclose(float(stats[C.LOG_ODDS_RATIO]), 1.3132617, abs_tol=1e-7)
    assert math.isclose(float(loss.detach()), 1.0238183, abs_tol=1e-7)
    assert float(stats[C.PAIR_ACCURACY]) == 1.0
    # lam = 0: only the NLL
    loss0, _ = orpo_loss(logp_w, mask_w, logp_l, mask_l, lam=0.0)
    assert float(loss0) == 1.0


def test_orpo_log_odds_accurate_for_very_negative_mean():
    # mean log-prob -50: log odds = -50 - log(1 - e^-50) = -50 (log1p branch, no cancellation)
    logp_w = torch.full((1, 2), -50.0, dtype=F64)
    logp_l = torch.full((1, 2), -60.0, dtype=F64)
    ones = torch.ones(1, 2)
    _, stats = orpo_loss(logp_w, ones, logp_l, ones)
    assert math.isclose(float(stats[C.LOG_ODDS_RATIO]), 10.0, rel_tol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_orpo_finite_when_mean_logp_tends_to_zero(dtype):
    # p -> 1: odds p/(1-p) -> inf; eps keeps log(1 - p) finite
    logp_w = torch.zeros(2, 3, dtype=dtype, requires_grad=True)
    logp_l = torch.tensor([[-1e-12, -1e-12, -1e-12], [-0.5, -0.5, 0.0]], dtype=dtype, requires_grad=True)
    ones = torch.ones(2, 3)
    loss, stats = orpo_loss(logp_w, ones, logp_l, ones)
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in stats.values())
    loss.backward()
    assert torch.isfinite(logp_w.grad).all() and torch.isfinite(logp_l.grad).all()


# --- validation -------------------------------------------------------------------------------


def test_validation_errors_name_the_field():
    x = torch.zeros(2, 3)
    adv = torch.zeros(2)
    mask = torch.ones(2, 3)
    with pytest.raises(ValueError, match="clip_low=1.0"):
        clipped_surrogate(x, x, adv, clip_low=1.0)
    with pytest.raises(ValueError, match="clip_low=-0.1"):
        clipped_surrogate(x, x, adv, clip_low=-0.1)
    with pytest.raises(ValueError, match="clip_high=0.0"):
        clipped_surrogate(x, x, adv, clip_high=0.0)
    with pytest.raises(ValueError, match="loss_agg='sum'"):
        aggregate(x, mask, "sum")
    with pytest.raises(ValueError, match="max_len=0"):
        aggregate(x, mask, "seq_mean_token_sum_norm", max_len=0)
    with pytest.raises(ValueError, match="beta=-0.01"):
        grpo_loss(x, x, x, adv, mask, beta=-0.01)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(x, x, None, adv, mask, beta=0.04)
    with pytest.raises(ValueError, match="kl_estimator='k5'"):
        grpo_loss(x, x, x, adv, mask, kl_estimator="k5")
    with pytest.raises(ValueError, match="kl_estimator='k5'"):
        grpo_loss(x, x, None, adv, mask, beta=0.0, kl_estimator="k5")
    with pytest.raises(ValueError, match="loss_agg='mean'"):
        grpo_loss(x, x, x, adv, mask, loss_agg="mean")
    with pytest.raises(ValueError, match="beta_pg=0.0"):
        pg_grpo_loss(x, x, x, adv, mask, beta_pg=0.0)
    with pytest.raises(ValueError, match="w1=-0.1"):
        pg_grpo_loss(x, x, x, adv, mask, w1=-0.1)
    with pytest.raises(ValueError, match="clip_low=1.5"):
        pg_grpo_loss(x, x, x, adv, mask, clip_low=1.5)
    with pytest.raises(ValueError, match="clip_high=0.0"):
        pg_grpo_loss(x, x, x, adv, mask, clip_high=0.0)
    with pytest.raises(ValueError, match="beta=0.0"):
        dpo_loss(adv, adv, adv, adv, beta=0.0)
    with pytest.raises(ValueError, match="lam=-1"):
        orpo_loss(x, mask, x, mask, lam=-1)


def test_suffix_logp_hand_case_and_first_column_is_the_sequence_logp():
    logp = torch.tensor([[-1.0, -2.0, -3.0, NAN]], dtype=F64)
    mask = torch.tensor([[True, True, True, False]])
    assert suffix_logp(logp, mask).tolist() == [[-6.0, -5.0, -3.0, 0.0]]
    assert suffix_logp(logp, mask, length_norm=True).tolist() == [[-2.0, -2.5, -3.0, 0.0]]
    gen = torch.Generator().manual_seed(0)
    lp = -torch.rand(5, 9, generator=gen, dtype=F64)
    m = torch.rand(5, 9, generator=gen) < 0.7
    for norm in (False, True):
        assert torch.allclose(
            suffix_logp(lp, m, length_norm=norm)[:, 0], sequence_logp(lp, m, length_norm=norm)
        )


def test_importance_weights_scale_the_surrogate_per_step_only():
    from pairgrpo_rllib.core.losses import grpo_loss

    gen = torch.Generator().manual_seed(11)
    logp = torch.randn(4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    old = logp.detach() + 0.05 * torch.randn(4, 5, generator=gen, dtype=torch.float64)
    adv = torch.randn(4, generator=gen, dtype=torch.float64)
    mask = torch.ones(4, 5, dtype=torch.bool)
    plain, _ = grpo_loss(logp, old, None, adv, mask, beta=0.0)
    ones, _ = grpo_loss(
        logp, old, None, adv, mask, beta=0.0, is_weights=torch.ones(4, 5, dtype=torch.float64)
    )
    half, _ = grpo_loss(
        logp, old, None, adv, mask, beta=0.0, is_weights=torch.full((4, 5), 0.5, dtype=torch.float64)
    )
    assert torch.allclose(plain, ones) and torch.allclose(half, 0.5 * plain)
    # the KL penalty is not weighted
    ref = logp.detach() - 0.1
    a, _ = grpo_loss(logp, old, ref, adv, mask, beta=0.04, is_weights=torch.zeros(4, 5, dtype=torch.float64))
    b, _ = grpo_loss(logp, logp.detach(), ref, torch.zeros(4, dtype=torch.float64), mask, beta=0.04)
    assert torch.allclose(a, b)
