"""Hard-Pair-GRPO targets and loss (docs/algorithms.md "Hard-Pair-GRPO" and its closed form)."""

import math

import pytest
import torch

from pairgrpo_rllib.core import names as C
from pairgrpo_rllib.core.hard_pair import (
    delta_schedule,
    delta_sum,
    group_shares,
    hard_pair_closed_form,
    hard_pair_loss,
    hard_pair_targets,
)
from pairgrpo_rllib.core.kl import categorical_kl
from pairgrpo_rllib.core.losses import sequence_logp

F64 = torch.float64
LOG = math.log


def _log(probs, dtype=F64):
    return torch.log(torch.tensor(probs, dtype=dtype))


def _pairs(rows):
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)


# --- step size --------------------------------------------------------------------------------


def test_delta_schedule_hand_values():
    assert delta_schedule(0) == 0.02  # delta_0 gamma^0
    assert math.isclose(delta_schedule(1), 0.0196, rel_tol=1e-12)  # 0.02 * 0.98
    assert math.isclose(delta_schedule(2), 0.019208, rel_tol=1e-12)  # 0.02 * 0.98^2 = 0.02 * 0.9604
    assert math.isclose(delta_schedule(3, 0.05, 0.95), 0.04286875, rel_tol=1e-12)  # 0.05 * 0.857375
    # decay = False keeps delta_0 (the seed's "fixed delta" ablation)
    assert delta_schedule(5, decay=False) == 0.02
    assert delta_schedule(100, 0.01, 0.99, decay=False) == 0.01


def test_delta_sum_hand_values_and_loop():
    assert delta_sum(0) == 0.0
    assert math.isclose(delta_sum(1), 0.02, rel_tol=1e-12)
    assert math.isclose(delta_sum(2), 0.0396, rel_tol=1e-12)  # 0.02 + 0.0196
    assert math.isclose(delta_sum(3, decay=False), 0.06, rel_tol=1e-12)  # 3 * 0.02
    assert math.isclose(delta_sum(4, 0.01, 1.0), 0.04, rel_tol=1e-12)  # gamma = 1: no decay
    for t in (0, 1, 7, 50):
        for d0, g in ((0.02, 0.98), (0.01, 0.99), (0.05, 0.95)):
            loop = sum(delta_schedule(s, d0, g) for s in range(t))
            assert math.isclose(delta_sum(t, d0, g), loop, rel_tol=1e-12, abs_tol=1e-15)


# --- group shares -----------------------------------------------------------------------------


def test_group_shares_hand_case_and_normalisation():
    # l = [0, log 3]: softmax = [1/4, 3/4]
    shares = group_shares(torch.tensor([[0.0, LOG(3.0)]], dtype=F64))
    torch.testing.assert_close(shares.exp(), torch.tensor([[0.25, 0.75]], dtype=F64), atol=1e-12, rtol=0)
    gen = torch.Generator().manual_seed(0)
    seq = torch.randn(5, 4, generator=gen, dtype=F64) * 50 - 300  # summed log-probs of long sequences
    shares = group_shares(seq)
    torch.testing.assert_close(torch.logsumexp(shares, -1), torch.zeros(5, dtype=F64), atol=1e-12, rtol=0)
    # invariant to a per-group shift (the normaliser of pi(y) never matters)
    torch.testing.assert_close(group_shares(seq + torch.arange(5, dtype=F64).unsqueeze(-1) * 100), shares)


# --- targets ----------------------------------------------------------------------------------


def test_hard_pair_targets_hand_case():
    old = _log([[0.5, 0.3, 0.2]])
    target, delta = hard_pair_targets(old, _pairs([0, 0, 2]), 0.02)
    # winner 0.5 + 0.02, loser 0.2 - 0.02, the other unchanged
    torch.testing.assert_close(target.exp(), torch.tensor([[0.52, 0.3, 0.18]], dtype=F64), atol=1e-12, rtol=0)
    assert delta.tolist() == [0.02]
    assert target[0, 1].item() == old[0, 1].item()  # bit for bit


def test_hard_pair_targets_clamp_when_delta_exceeds_loser_mass():
    old = _log([[0.5, 0.3, 0.2]])
    # delta_t = 0.25 > pi_old(l) = 0.2: delta = 0.2 - 1e-4 = 0.1999 -> [0.6999, 0.3, 1e-4]
    target, delta = hard_pair_targets(old, _pairs([0, 0, 2]), 0.25, eps_p=1e-4)
    assert math.isclose(float(delta), 0.1999, rel_tol=1e-12)
    torch.testing.assert_close(
        target.exp(), torch.tensor([[0.6999, 0.3, 1e-4]], dtype=F64), atol=1e-12, rtol=0
    )
    # loser already below eps_p: nothing moves, every entry bit for bit
    old2 = _log([[0.99995, 5e-5]])
    target2, delta2 = hard_pair_targets(old2, _pairs([0, 0, 1]), 0.02, eps_p=1e-4)
    assert delta2.tolist() == [0.0]
    assert torch.equal(target2, old2)
    # loser exactly at eps_p (up to the exp/log round trip): it keeps eps_p
    old3 = _log([[0.9999, 1e-4]])
    target3, delta3 = hard_pair_targets(old3, _pairs([0, 0, 1]), 0.02, eps_p=1e-4)
    assert float(delta3) < 1e-15
    assert math.isclose(float(target3[0, 1].exp()), 1e-4, rel_tol=1e-12)


def test_hard_pair_targets_several_pairs_and_groups():
    old = _log([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    pairs = _pairs([[0, 0, 2], [1, 2, 1], [0, 1, 0]])
    target, delta = hard_pair_targets(old, pairs, 0.05)
    # pair 0: group 0, 0 > 2: [0.55, 0.3, 0.15]; pair 1: group 1, 2 > 1: delta min(0.05, 0.1 - 1e-4) = 0.05 -> [0.1, 0.05, 0.85]
    # pair 2: group 0, 1 > 0: [0.45, 0.35, 0.2] (each pair starts from pi_old, not from another pair's target)
    expected = torch.tensor([[0.55, 0.3, 0.15], [0.1, 0.05, 0.85], [0.45, 0.35, 0.2]], dtype=F64)
    torch.testing.assert_close(target.exp(), expected, atol=1e-12, rtol=0)
    assert delta.shape == (3,)
    assert not target.requires_grad


def _reference_targets(old_probs, pairs, delta_t, eps_p):
    """Slow loop in probability space."""
    out, deltas = [], []
    for g, w, lo in pairs:
        row = list(old_probs[g])
        d = min(delta_t, max(row[lo] - eps_p, 0.0))
        row[w] += d
        row[lo] -= d
        out.append(row)
        deltas.append(d)
    return out, deltas


@pytest.mark.parametrize("delta_t", [0.0, 1e-6, 0.01, 0.02, 0.1, 0.3, 0.5, 0.99, 1.0])
def test_hard_pair_targets_sweep_valid_distributions(delta_t):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 5, generator=gen, dtype=F64) * 2
    logits[3, 4] = -12.0  # a loser below eps_p
    old = torch.log_softmax(logits, -1)
    pairs = [[g, w, lo] for g in range(4) for w in range(5) for lo in range(5) if w != lo]
    eps_p = 1e-4
    target, delta = hard_pair_targets(old, _pairs(pairs), delta_t, eps_p=eps_p)
    probs = target.exp()
    assert torch.isfinite(target).all()
    assert (probs > 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(pairs), dtype=F64), atol=1e-12, rtol=0)
    assert (delta >= 0).all() and (delta <= delta_t).all()
    ref, ref_delta = _reference_targets(old.exp().tolist(), pairs, delta_t, eps_p)
    torch.testing.assert_close(probs, torch.tensor(ref, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(delta, torch.tensor(ref_delta, dtype=F64), atol=1e-15, rtol=0)
    for k, (g, w, lo) in enumerate(pairs):
        others = [j for j in range(5) if j not in (w, lo)]
        assert torch.equal(target[k, others], old[g, others])  # untouched entries, bit for bit
        if delta[k] > 0:
            assert probs[k, lo] >= eps_p * (1 - 1e-12)  # the loser keeps eps_p
            assert probs[k, w] > old[g, w].exp()
        else:
            assert torch.equal(target[k], old[g])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_hard_pair_targets_tiny_old_probabilities(dtype):
    # pi_old(l) = 1e-30 and exp(-1000) (underflows to 0 even in float64): no inf or NaN anywhere
    old = torch.stack(
        [
            torch.log_softmax(torch.tensor([0.0, LOG(1e-30), -1.0], dtype=dtype), -1),
            torch.log_softmax(torch.tensor([0.0, -1000.0, -1.0], dtype=dtype), -1),
        ]
    )
    assert old[1, 1] < -1000.0  # log N = -1000 - log(1 + e^-1)
    pairs = _pairs([[0, 0, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [1, 2, 1]])
    for delta_t in (0.0, 0.02, 0.5, 1.0):
        target, delta = hard_pair_targets(old, pairs, delta_t)
        assert torch.isfinite(target).all() and torch.isfinite(delta).all()
        torch.testing.assert_close(
            torch.logsumexp(target, -1), torch.zeros(5, dtype=dtype), atol=1e-5, rtol=0
        )
        # a tiny loser cannot give mass: its pairs are unchanged bit for bit
        assert delta[0] == 0 and delta[1] == 0 and delta[4] == 0
        assert (
            torch.equal(target[0], old[0])
            and torch.equal(target[1], old[1])
            and torch.equal(target[4], old[1])
        )
        # a tiny winner receives delta: log(1e-30 + 0.02) etc., finite
        if delta_t > 0:
            assert delta[2] > 0 and delta[3] > 0
            assert math.isclose(
                float(target[3, 1].exp()), min(delta_t, float(old[1, 0].exp()) - 1e-4), rel_tol=1e-5
            )
    # the fit loss and its gradient stay finite against such targets
    logits = old.clone().requires_grad_(True)
    target, _ = hard_pair_targets(old, pairs, 0.02)
    loss, _ = hard_pair_loss(torch.log_softmax(logits, -1), target, pairs[:, 0], trust_region=False)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_hard_pair_targets_delta_zero_is_identity():
    old = torch.log_softmax(torch.randn(3, 4, generator=torch.Generator().manual_seed(2)), -1)
    pairs = _pairs([[0, 1, 2], [2, 3, 0]])
    target, delta = hard_pair_targets(old, pairs, 0.0)
    assert torch.equal(target, old[pairs[:, 0]])
    assert delta.tolist() == [0.0, 0.0]


# --- loss -------------------------------------------------------------------------------------


def test_hard_pair_loss_hand_case():
    logp_s = _log([[0.5, 0.5]]).requires_grad_(True)
    target = _log([[0.6, 0.4]])
    groups = torch.tensor([0])
    # fit = 0.5 log(0.5/0.6) + 0.5 log(0.5/0.4) = 0.5 log(0.25/0.24) = 0.020411
    # trust region 0.03 > beta_tr 0.01: hinge 0.5 * (0.03 - 0.01) = 0.01
    tr = torch.tensor(0.03, dtype=F64, requires_grad=True)
    loss, stats = hard_pair_loss(logp_s, target, groups, trust_region_kl=tr, alpha=0.5, beta_tr=0.01)
    assert math.isclose(float(stats[C.FIT_KL]), 0.0204110, abs_tol=1e-7)
    assert math.isclose(float(stats[C.TRUST_REGION_PENALTY]), 0.01, rel_tol=1e-12)
    assert math.isclose(float(stats[C.TRUST_REGION_KL]), 0.03, rel_tol=1e-12)
    assert math.isclose(float(loss.detach()), 0.0304110, abs_tol=1e-7)
    assert float(stats[C.NUM_PAIRS]) == 1.0
    loss.backward()
    assert math.isclose(float(tr.grad), 0.5, rel_tol=1e-12)  # alpha above beta_tr
    # d fit / d logp_S = p (log p/q + 1): [0.5 (log(5/6) + 1), 0.5 (log(5/4) + 1)] = [0.408839, 0.611572]
    torch.testing.assert_close(
        logp_s.grad, torch.tensor([[0.4088392, 0.6115718]], dtype=F64), atol=1e-7, rtol=0
    )


def test_trust_region_hinge_zero_below_and_linear_above():
    logp_s, target, groups = _log([[0.5, 0.5]]), _log([[0.6, 0.4]]), torch.tensor([0])
    penalties, grads = [], []
    for value in (0.0, 0.005, 0.0099, 0.02, 0.03, 0.11):
        tr = torch.tensor(value, dtype=F64, requires_grad=True)
        loss, stats = hard_pair_loss(logp_s, target, groups, trust_region_kl=tr, alpha=0.5, beta_tr=0.01)
        loss.backward()
        penalties.append(float(stats[C.TRUST_REGION_PENALTY]))
        grads.append(float(tr.grad))
    # 0.5 * max(0, kl - 0.01): 0, 0, 0, 0.005, 0.01, 0.05
    for got, want in zip(penalties, [0.0, 0.0, 0.0, 0.005, 0.01, 0.05]):
        assert math.isclose(got, want, abs_tol=1e-15)
    assert grads == [0.0, 0.0, 0.0, 0.5, 0.5, 0.5]


def test_trust_region_false_drops_the_hinge():
    logp_s, target, groups = _log([[0.5, 0.5]]), _log([[0.6, 0.4]]), torch.tensor([0])
    tr = torch.tensor(5.0, dtype=F64)
    loss_on, _ = hard_pair_loss(logp_s, target, groups, trust_region_kl=tr)
    loss_off, stats = hard_pair_loss(logp_s, target, groups, trust_region_kl=tr, trust_region=False)
    loss_none, _ = hard_pair_loss(logp_s, target, groups, trust_region=False)  # no KL needed
    assert math.isclose(float(loss_off), 0.0204110, abs_tol=1e-7)
    assert float(loss_none) == float(loss_off)
    assert float(stats[C.TRUST_REGION_PENALTY]) == 0.0
    assert math.isclose(float(loss_on) - float(loss_off), 0.5 * (5.0 - 0.01), rel_tol=1e-12)


def test_per_context_trust_region_averages_per_context_hinges():
    logp_s = _log([[0.5, 0.5], [0.2, 0.8], [0.7, 0.3]])
    target = _log([[0.6, 0.4]])
    groups = torch.tensor([0])
    per_context = torch.tensor([0.005, 0.03, 0.05], dtype=F64)
    _, stats = hard_pair_loss(logp_s, target, groups, trust_region_kl=per_context, alpha=0.5, beta_tr=0.01)
    # hinges [0, 0.02, 0.04], mean 0.02, * alpha 0.5 = 0.01
    assert math.isclose(float(stats[C.TRUST_REGION_PENALTY]), 0.01, rel_tol=1e-12)
    assert math.isclose(float(stats[C.TRUST_REGION_KL]), 0.085 / 3, rel_tol=1e-12)
    # not the hinge of the mean: 0.5 * (0.085/3 - 0.01) = 0.0091667
    _, scalar = hard_pair_loss(
        logp_s, target, groups, trust_region_kl=per_context.mean(), alpha=0.5, beta_tr=0.01
    )
    assert math.isclose(float(scalar[C.TRUST_REGION_PENALTY]), 0.5 * (0.085 / 3 - 0.01), rel_tol=1e-12)


def test_fit_kl_is_averaged_over_pairs_like_a_python_loop():
    gen = torch.Generator().manual_seed(3)
    logp_s = torch.log_softmax(torch.randn(3, 4, generator=gen, dtype=F64), -1)
    old = torch.log_softmax(torch.randn(3, 4, generator=gen, dtype=F64), -1)
    pairs = _pairs([[0, 0, 1], [0, 2, 3], [2, 1, 0], [1, 3, 2]])
    target, _ = hard_pair_targets(old, pairs, 0.1)
    _, stats = hard_pair_loss(logp_s, target, pairs[:, 0], trust_region=False)
    ref = 0.0
    for k, g in enumerate(pairs[:, 0].tolist()):
        ref += sum(math.exp(a) * (a - b) for a, b in zip(logp_s[g].tolist(), target[k].tolist()))
    assert math.isclose(float(stats[C.FIT_KL]), ref / 4, rel_tol=1e-12)


def test_kl_coeff_adds_reference_penalty():
    logp_s, target, groups = _log([[0.5, 0.5]]), _log([[0.6, 0.4]]), torch.tensor([0])
    base, _ = hard_pair_loss(logp_s, target, groups, trust_region=False)
    with_ref, _ = hard_pair_loss(
        logp_s, target, groups, trust_region=False, kl_coeff=0.2, ref_kl=torch.tensor(0.5, dtype=F64)
    )
    # + 0.2 * 0.5 = 0.1
    assert math.isclose(float(with_ref) - float(base), 0.1, rel_tol=1e-12)


def test_no_pairs_gives_zero_loss_and_zero_gradient():
    logits = torch.tensor([[0.3, -0.2, 0.1], [1.0, 0.0, -1.0]], dtype=F64, requires_grad=True)
    logp_s = torch.log_softmax(logits, -1)
    target = torch.zeros(0, 3, dtype=F64)
    groups = torch.zeros(0, dtype=torch.long)
    tr = categorical_kl(logits, logits.detach()).mean()  # 0 at pi_theta = pi_old
    loss, stats = hard_pair_loss(logp_s, target, groups, trust_region_kl=tr)
    assert float(loss.detach()) == 0.0
    assert float(stats[C.NUM_PAIRS]) == 0.0 and float(stats[C.FIT_KL]) == 0.0
    loss.backward()
    assert logits.grad is not None
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_lbfgs_fit_reaches_the_target():
    old_logits = torch.tensor([0.2, -0.1, 0.5], dtype=F64)
    old = torch.log_softmax(old_logits, -1).unsqueeze(0)
    pairs = _pairs([0, 0, 2])
    target, _ = hard_pair_targets(old, pairs, delta_schedule(0))
    logits = old_logits.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [logits], lr=1.0, max_iter=100, tolerance_grad=1e-14, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss, _ = hard_pair_loss(
            torch.log_softmax(logits, -1).unsqueeze(0),
            target,
            pairs[:, 0],
            trust_region_kl=categorical_kl(logits, old_logits),
        )
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    fit = float(categorical_kl(logits.detach(), target[0]))
    assert fit < 1e-8
    # the hinge is not binding here: KL(pi_tar || pi_old) is below beta_tr = 0.01
    assert float(categorical_kl(target[0], old[0])) < 0.01
    torch.testing.assert_close(torch.softmax(logits.detach(), -1), target[0].exp(), atol=1e-4, rtol=0)


# --- closed form ------------------------------------------------------------------------------


def test_hard_pair_closed_form_hand_value():
    # 0.3 + 0.02 (1 - 0.98^10) / 0.02 = 0.3 + (1 - 0.817073) = 0.482927
    assert math.isclose(hard_pair_closed_form(0.3, 10), 0.3 + 0.02 * (1 - 0.98**10) / 0.02, rel_tol=1e-12)
    assert math.isclose(hard_pair_closed_form(0.3, 10), 0.4829272, abs_tol=1e-7)
    assert hard_pair_closed_form(0.3, 0) == 0.3
    # decay = False: 0.3 + 10 * 0.02 = 0.5
    assert math.isclose(hard_pair_closed_form(0.3, 10, decay=False), 0.5, rel_tol=1e-12)


def test_hard_pair_closed_form_clamps_at_one_minus_eps():
    # 0.9 + (1 - 0.98^200) > 1: clamp at 1 - 1e-4
    assert hard_pair_closed_form(0.9, 200) == 1.0 - 1e-4
    assert hard_pair_closed_form(0.5, 1000, 0.05, 0.95, eps_p=1e-3) == 1.0 - 1e-3
    # already above 1 - eps_p: stays where it is
    assert hard_pair_closed_form(0.99995, 10) == 0.99995


@pytest.mark.parametrize("p,iterations", [(0.3, 10), (0.05, 40), (0.9, 200)])
def test_closed_form_matches_iterated_exact_targets(p, iterations):
    # the fit solved exactly each iteration: pi_t = the target built from pi_{t-1}
    logp = _log([[p, 1 - p]])
    for t in range(iterations):
        logp, _ = hard_pair_targets(logp, _pairs([0, 0, 1]), delta_schedule(t))
    assert math.isclose(float(logp[0, 0].exp()), hard_pair_closed_form(p, iterations), rel_tol=1e-9)


# --- validation -------------------------------------------------------------------------------


def test_validation_errors_name_the_field():
    with pytest.raises(ValueError, match="delta0=0.0"):
        delta_schedule(0, delta0=0.0)
    with pytest.raises(ValueError, match="delta0=1.0"):
        delta_schedule(0, delta0=1.0)
    with pytest.raises(ValueError, match="gamma=1.1"):
        delta_schedule(0, gamma=1.1)
    with pytest.raises(ValueError, match="gamma=-0.5"):
        delta_schedule(0, gamma=-0.5)
    with pytest.raises(ValueError, match="t=-1"):
        delta_schedule(-1)
    old, pairs = _log([[0.5, 0.5]]), _pairs([0, 0, 1])
    with pytest.raises(ValueError, match="delta_t=1.5"):
        hard_pair_targets(old, pairs, 1.5)
    with pytest.raises(ValueError, match="delta_t=-0.1"):
        hard_pair_targets(old, pairs, -0.1)
    with pytest.raises(ValueError, match="eps_p=0.0"):
        hard_pair_targets(old, pairs, 0.02, eps_p=0.0)
    with pytest.raises(ValueError, match="eps_p=0.5"):
        hard_pair_targets(old, pairs, 0.02, eps_p=0.5)
    groups, tr = torch.tensor([0]), torch.tensor(0.0)
    with pytest.raises(ValueError, match="alpha=-1"):
        hard_pair_loss(old, old, groups, trust_region_kl=tr, alpha=-1)
    with pytest.raises(ValueError, match="beta_tr=-0.01"):
        hard_pair_loss(old, old, groups, trust_region_kl=tr, beta_tr=-0.01)
    with pytest.raises(ValueError, match="kl_coeff=-0.1"):
        hard_pair_loss(old, old, groups, trust_region_kl=tr, kl_coeff=-0.1)
    with pytest.raises(ValueError, match="trust_region_kl"):
        hard_pair_loss(old, old, groups)
    with pytest.raises(ValueError, match="ref_kl"):
        hard_pair_loss(old, old, groups, trust_region=False, kl_coeff=0.1)
    for bad in (0.0, 1.0, -0.2, float("nan")):
        with pytest.raises(ValueError, match="pref="):
            hard_pair_closed_form(bad, 10)


def test_sequence_support_with_length_norm_and_two_point_dataset_pairs():
    # Two dataset pairs (w, l) of padded token sequences: S = {w, l}, shares from the mean step log-prob.
    logp = torch.tensor(
        [
            [-1.0, -1.0, -1.0, 0.0],  # pair 0, chosen: 3 tokens, mean -1
            [-2.0, -2.0, 0.0, 0.0],  # pair 0, rejected: 2 tokens, mean -2
            [-0.5, -0.5, -0.5, -0.5],  # pair 1, chosen: mean -0.5
            [-0.5, -1.5, 0.0, 0.0],  # pair 1, rejected: mean -1
        ],
        dtype=torch.float64,
    )
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    seq = sequence_logp(logp, mask, length_norm=True).reshape(2, 2)
    shares = group_shares(seq)
    # pair 0: softmax([-1, -2]) = [1/(1+e^-1), e^-1/(1+e^-1)] = [0.7310586, 0.2689414]
    assert torch.allclose(shares.exp()[0], torch.tensor([0.7310585786, 0.2689414214], dtype=torch.float64))
    pairs = torch.tensor([[0, 0, 1], [1, 0, 1]])
    target, delta = hard_pair_targets(shares, pairs, 0.02)
    assert torch.allclose(target.exp().sum(-1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(target.exp()[0], torch.tensor([0.7510585786, 0.2489414214], dtype=torch.float64))
    assert torch.equal(delta, torch.full((2,), 0.02, dtype=torch.float64))
    # Summed log-probs of long sequences make the shares nearly one-hot: the reason for length_norm.
    long_logp = torch.cat([logp] * 50, dim=1)
    long_mask = torch.cat([mask] * 50, dim=1)
    summed = group_shares(sequence_logp(long_logp, long_mask).reshape(2, 2)).exp()
    assert summed[0, 1] < 1e-20
