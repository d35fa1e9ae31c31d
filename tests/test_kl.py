"""KL estimators and analytic KLs (docs/algorithms.md "KL to the reference", Hard-Pair trust region)."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from pairgrpo_rllib.core.kl import categorical_kl, diag_gaussian_kl, kl_penalty, sampled_kl

F64 = torch.float64
LOG = math.log


def _t(*values):
    return torch.tensor([list(values)], dtype=F64)


# --- kl_penalty hand values -------------------------------------------------------------------


def test_kl_penalty_hand_values():
    # pi_theta(a) = 0.5, pi_ref(a) = 0.25, pi_old(a) = 0.25: u = log 0.25 - log 0.5 = -log 2 = -0.693147
    logp, ref, old = _t(LOG(0.5)), _t(LOG(0.25)), _t(LOG(0.25))
    # k1 = -u = log 2
    torch.testing.assert_close(kl_penalty(logp, ref, "k1"), _t(0.6931472), atol=1e-7, rtol=0)
    # k2 = u^2 / 2 = 0.480453 / 2
    torch.testing.assert_close(kl_penalty(logp, ref, "k2"), _t(0.2402265), atol=1e-7, rtol=0)
    # k3 = e^u - u - 1 = 0.5 + 0.693147 - 1
    torch.testing.assert_close(kl_penalty(logp, ref, "k3"), _t(0.1931472), atol=1e-7, rtol=0)
    # k3_is = (pi_theta / pi_old) * k3 = 2 * 0.193147
    torch.testing.assert_close(kl_penalty(logp, ref, "k3_is", old_logp=old), _t(0.3862944), atol=1e-7, rtol=0)


def test_kl_penalty_second_hand_case_and_default():
    # pi_theta = 0.25, pi_ref = 0.5: u = +log 2; k3 = 2 - 0.693147 - 1 = 0.306853 (default estimator)
    logp, ref = _t(LOG(0.25)), _t(LOG(0.5))
    torch.testing.assert_close(kl_penalty(logp, ref), _t(0.3068528), atol=1e-7, rtol=0)
    # k1 = -u = -log 2 (k1 can be negative per sample)
    torch.testing.assert_close(kl_penalty(logp, ref, "k1"), _t(-0.6931472), atol=1e-7, rtol=0)
    # equal log-probs: every estimator is 0
    for est in ("k1", "k2", "k3"):
        assert kl_penalty(_t(-1.3), _t(-1.3), est).tolist() == [[0.0]]


def test_k3_and_k2_are_non_negative():
    gen = torch.Generator().manual_seed(0)
    logp = torch.randn(50, 20, generator=gen, dtype=F64) * 3
    ref = torch.randn(50, 20, generator=gen, dtype=F64) * 3
    old = torch.randn(50, 20, generator=gen, dtype=F64) * 3
    assert (kl_penalty(logp, ref, "k3") >= 0).all()
    assert (kl_penalty(logp, ref, "k2") >= 0).all()
    assert (kl_penalty(logp, ref, "k3_is", old_logp=old) >= 0).all()


def test_kl_penalty_matches_python_loop():
    gen = torch.Generator().manual_seed(1)
    logp, ref, old = (torch.randn(3, 4, generator=gen, dtype=F64) for _ in range(3))
    outs = {est: kl_penalty(logp, ref, est, old_logp=old) for est in ("k1", "k2", "k3", "k3_is")}
    for b in range(3):
        for t in range(4):
            u = float(ref[b, t] - logp[b, t])
            k3 = math.exp(u) - u - 1.0
            assert math.isclose(float(outs["k1"][b, t]), -u, rel_tol=1e-12, abs_tol=1e-12)
            assert math.isclose(float(outs["k2"][b, t]), u * u / 2, rel_tol=1e-12, abs_tol=1e-12)
            assert math.isclose(float(outs["k3"][b, t]), k3, rel_tol=1e-9, abs_tol=1e-12)
            ratio = math.exp(float(logp[b, t] - old[b, t]))
            assert math.isclose(float(outs["k3_is"][b, t]), ratio * k3, rel_tol=1e-9, abs_tol=1e-12)


# --- expectations by enumeration over a small categorical -------------------------------------

THETA = torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=F64))
REF = torch.log(torch.tensor([0.2, 0.2, 0.6], dtype=F64))
OLD = torch.log(torch.tensor([0.1, 0.6, 0.3], dtype=F64))


def _kl(p_log, q_log):
    """Slow reference: sum_a p(a) log(p(a)/q(a))."""
    return sum(math.exp(p) * (p - q) for p, q in zip(p_log.tolist(), q_log.tolist()))


def test_k3_is_expectation_under_old_is_exact_kl_theta_ref():
    # sum_a pi_old(a) (theta/old)(ref/theta - log(ref/theta) - 1) = sum_a theta log(theta/ref)
    d = kl_penalty(THETA.unsqueeze(0), REF.unsqueeze(0), "k3_is", old_logp=OLD.unsqueeze(0))[0]
    expectation = float((OLD.exp() * d).sum())
    assert math.isclose(expectation, _kl(THETA, REF), rel_tol=1e-12)
    # and differs from KL(old || ref) and KL(ref || theta): the test would catch a wrong direction
    assert abs(expectation - _kl(OLD, REF)) > 1e-2 and abs(expectation - _kl(REF, THETA)) > 1e-2


def test_k3_is_expected_gradient_is_gradient_of_kl():
    logits = THETA.clone().requires_grad_(True)
    logp = torch.log_softmax(logits, -1)
    d = kl_penalty(logp.unsqueeze(0), REF.unsqueeze(0), "k3_is", old_logp=OLD.unsqueeze(0))[0]
    (g_est,) = torch.autograd.grad((OLD.exp() * d).sum(), logits)
    logits2 = THETA.clone().requires_grad_(True)
    (g_kl,) = torch.autograd.grad(categorical_kl(logits2, REF), logits2)
    torch.testing.assert_close(g_est, g_kl, atol=1e-12, rtol=0)


def test_k3_expectation_under_theta_is_kl_theta_ref():
    # u = log ref - log theta: sum_a theta (ref/theta - u - 1) = 1 - sum theta u - 1 = KL(theta || ref)
    d = kl_penalty(THETA.unsqueeze(0), REF.unsqueeze(0), "k3")[0]
    assert math.isclose(float((THETA.exp() * d).sum()), _kl(THETA, REF), rel_tol=1e-12)
    # k1 is unbiased too, under theta
    d1 = kl_penalty(THETA.unsqueeze(0), REF.unsqueeze(0), "k1")[0]
    assert math.isclose(float((THETA.exp() * d1).sum()), _kl(THETA, REF), rel_tol=1e-12)


# --- log_ratio_clamp --------------------------------------------------------------------------


def _far_apart_gaussian_logps(requires_grad=True):
    # action a = 40 scored by N(0, 1) (pi_theta) and N(40, 1) (pi_ref):
    # log N(40; 0, 1) = -800 - 0.9189 and log N(40; 40, 1) = -0.9189, so u = log ref - log theta = +800;
    # the second step is the mirror (theta centred on the action, ref far away): u = -800
    mu = torch.tensor([0.0, 40.0], dtype=F64, requires_grad=requires_grad)
    action = torch.tensor([40.0, 40.0], dtype=F64)
    logp = Normal(mu, 1.0).log_prob(action).unsqueeze(0)
    ref = Normal(torch.tensor([40.0, 0.0], dtype=F64), 1.0).log_prob(action).unsqueeze(0)
    return mu, logp, ref


def test_extreme_log_ratio_overflows_without_clamp():
    mu, logp, ref = _far_apart_gaussian_logps()
    torch.testing.assert_close(ref - logp, torch.tensor([[800.0, -800.0]], dtype=F64).detach())
    d = kl_penalty(logp, ref, "k3")
    assert math.isinf(float(d.detach()[0, 0]))  # e^800 overflows even in float64
    # u = -800 does not overflow: k3 = e^-800 + 800 - 1 = 799
    assert math.isclose(float(d.detach()[0, 1]), 799.0)
    d.sum().backward()
    assert not torch.isfinite(mu.grad).all()


@pytest.mark.parametrize("estimator", ["k3", "k3_is"])
def test_extreme_log_ratio_finite_with_clamp(estimator):
    mu, logp, ref = _far_apart_gaussian_logps()
    old = ref.detach() if estimator == "k3_is" else None  # log pi_theta - log pi_old = -+800 too
    d = kl_penalty(logp, ref, estimator, old_logp=old, log_ratio_clamp=20.0)
    assert torch.isfinite(d).all()
    if estimator == "k3":
        # u clamped to [-20, 20]: k3 = e^20 - 21 and e^-20 + 19
        torch.testing.assert_close(
            d, torch.tensor([[math.exp(20) - 21.0, math.exp(-20) + 19.0]], dtype=F64), rtol=1e-12, atol=0
        )
    d.sum().backward()
    assert torch.isfinite(mu.grad).all()
    # the clamped steps carry no gradient through u (as with PPO's ratio clipping)
    if estimator == "k3":
        assert mu.grad.tolist() == [0.0, 0.0]


def test_k3_is_importance_ratio_overflows_without_clamp():
    logp = torch.tensor([[-1.0]], dtype=F64)
    old = logp - 800.0  # importance log-ratio +800
    ref = logp - 1.0  # u = -1: k3 = e^-1 + 1 - 1 = 0.367879
    assert math.isinf(float(kl_penalty(logp, ref, "k3_is", old_logp=old)))
    # clamped at 50: e^50 * 0.367879
    clamped = kl_penalty(logp, ref, "k3_is", old_logp=old, log_ratio_clamp=50.0)
    assert math.isclose(float(clamped), math.exp(50.0) * math.exp(-1.0), rel_tol=1e-12)


def test_clamp_inside_range_changes_nothing():
    gen = torch.Generator().manual_seed(2)
    logp, ref, old = (torch.randn(4, 5, generator=gen, dtype=F64) for _ in range(3))
    for est in ("k1", "k2", "k3", "k3_is"):
        assert torch.equal(
            kl_penalty(logp, ref, est, old_logp=old),
            kl_penalty(logp, ref, est, old_logp=old, log_ratio_clamp=50.0),
        )


# --- analytic KLs -----------------------------------------------------------------------------


def test_categorical_kl_hand_value():
    # p = [0.5, 0.5], q = [0.25, 0.75]: 0.5 log(0.5/0.25) + 0.5 log(0.5/0.75) = 0.5 log(4/3) = 0.143841
    p = torch.log(torch.tensor([0.5, 0.5], dtype=F64))
    q = torch.log(torch.tensor([0.25, 0.75], dtype=F64))
    assert math.isclose(float(categorical_kl(p, q)), 0.1438410, abs_tol=1e-7)
    # unnormalised logits give the same answer: shifting a row changes nothing
    assert math.isclose(float(categorical_kl(p + 3.0, q - 7.0)), 0.1438410, abs_tol=1e-7)
    assert float(categorical_kl(q, q)) == 0.0


def test_categorical_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(3)
    lp = torch.randn(4, 3, 6, generator=gen, dtype=F64)
    lq = torch.randn(4, 3, 6, generator=gen, dtype=F64)
    got = categorical_kl(lp, lq)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, kl_divergence(Categorical(logits=lp), Categorical(logits=lq)))
    assert (got >= 0).all()


def test_diag_gaussian_kl_hand_value():
    # p = N(0, 1), q = N(1, 2^2): log 2 - 0 + (1 + 1)/(2*4) - 1/2 = 0.693147 + 0.25 - 0.5 = 0.443147
    got = diag_gaussian_kl(
        torch.tensor([0.0], dtype=F64),
        torch.tensor([0.0], dtype=F64),
        torch.tensor([1.0], dtype=F64),
        torch.tensor([LOG(2.0)], dtype=F64),
    )
    assert math.isclose(float(got), 0.4431472, abs_tol=1e-7)
    # two dimensions sum: the same plus N(0,1) vs N(0,1) (0) -> unchanged; plus mean shift 3 at unit std -> +4.5
    got2 = diag_gaussian_kl(
        torch.tensor([0.0, 0.0, 3.0], dtype=F64),
        torch.tensor([0.0, 0.0, 0.0], dtype=F64),
        torch.tensor([1.0, 0.0, 0.0], dtype=F64),
        torch.tensor([LOG(2.0), 0.0, 0.0], dtype=F64),
    )
    assert math.isclose(float(got2), 0.4431472 + 4.5, abs_tol=1e-7)


def test_diag_gaussian_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(4)
    m_p, s_p, m_q, s_q = (torch.randn(5, 3, generator=gen, dtype=F64) for _ in range(4))
    got = diag_gaussian_kl(m_p, s_p, m_q, s_q)
    ref = kl_divergence(Independent(Normal(m_p, s_p.exp()), 1), Independent(Normal(m_q, s_q.exp()), 1))
    assert got.shape == (5,)
    torch.testing.assert_close(got, ref)
    assert (got >= 0).all()


# --- sampled_kl -------------------------------------------------------------------------------


def test_sampled_kl_hand_value():
    # rho = 0.5 / 0.25 = 2: 2 log 2 - 2 + 1 = 0.386294; rho = 1: 0 -> mean 0.193147
    logp = torch.tensor([LOG(0.5), LOG(0.3)], dtype=F64)
    old = torch.tensor([LOG(0.25), LOG(0.3)], dtype=F64)
    assert math.isclose(float(sampled_kl(logp, old)), 0.1931472, abs_tol=1e-7)


def test_sampled_kl_is_unbiased_by_enumeration():
    # sum_a pi_old(a) (rho log rho - rho + 1) = sum_a theta log(theta/old) - 1 + 1 = KL(theta || old)
    per_action = [float(sampled_kl(THETA[a : a + 1], OLD[a : a + 1])) for a in range(3)]
    expectation = sum(math.exp(o) * v for o, v in zip(OLD.tolist(), per_action))
    assert math.isclose(expectation, _kl(THETA, OLD), rel_tol=1e-12)
    assert math.isclose(expectation, float(categorical_kl(THETA, OLD)), rel_tol=1e-12)


def test_sampled_kl_on_a_sample_with_the_exact_old_frequencies():
    # pi_old = [1/2, 1/4, 1/4]; the sample [0, 0, 1, 2] has exactly these frequencies, so its mean is
    # the expectation; padding (NaN, -inf) is masked out
    old_probs = torch.tensor([0.5, 0.25, 0.25], dtype=F64)
    theta = torch.log(torch.tensor([0.2, 0.5, 0.3], dtype=F64))
    actions = torch.tensor([0, 0, 1, 2])
    logp = torch.cat([theta[actions], torch.tensor([float("nan"), float("-inf")], dtype=F64)]).reshape(2, 3)
    old = torch.cat([old_probs.log()[actions], torch.tensor([0.0, 0.0], dtype=F64)]).reshape(2, 3)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    got = sampled_kl(logp, old, mask)
    assert math.isclose(float(got), float(categorical_kl(theta, old_probs.log())), rel_tol=1e-12)


def test_sampled_kl_masked_gradient_and_empty_mask():
    logp = torch.tensor([[LOG(0.5), float("nan")]], dtype=F64, requires_grad=True)
    old = torch.tensor([[LOG(0.25), float("-inf")]], dtype=F64)
    mask = torch.tensor([[True, False]])
    out = sampled_kl(logp, old, mask)
    assert math.isclose(float(out.detach()), 0.3862944, abs_tol=1e-7)
    out.backward()
    # d/dlogp (rho log rho - rho + 1) = rho log rho = 2 log 2; the masked step gets exactly 0
    assert math.isclose(float(logp.grad[0, 0]), 2 * LOG(2.0), rel_tol=1e-12)
    assert logp.grad[0, 1] == 0.0
    none_real = sampled_kl(logp, old, torch.zeros(1, 2, dtype=torch.bool))
    assert float(none_real.detach()) == 0.0


# --- validation -------------------------------------------------------------------------------


def test_validation_errors_name_the_field():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="kl_estimator='k4'"):
        kl_penalty(x, x, "k4")
    with pytest.raises(ValueError, match="kl_log_ratio_clamp"):
        kl_penalty(x, x, "k3", log_ratio_clamp=0.0)
    with pytest.raises(ValueError, match="kl_log_ratio_clamp"):
        kl_penalty(x, x, "k3", log_ratio_clamp=-5.0)
    with pytest.raises(ValueError, match="k3_is.*old_logp"):
        kl_penalty(x, x, "k3_is")
