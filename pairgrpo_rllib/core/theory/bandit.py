"""A tabular policy on a binary question, trained with the project's own loss functions.

The question has two answers, ``a`` (reward 1, preferred) and ``b`` (reward 0); the policy is a
softmax over two logits per configuration ``(beta, pref)``, with ``pi_ref(a) = pref``. Every
configuration of a case is trained at once (one row of logits each) in float64; configurations never
interact (each one's loss is separate, and per-element optimizer state keeps them apart).

Two modes:

``exact``
    The expected objective over groups, evaluated exactly. For a finite G the advantage of an answer
    depends on how many of the other G - 1 members are ``a`` (binomial under ``pi_old``); the
    G + 1 possible groups are built as score rows and passed through ``advantages.group_advantages``
    (GRPO) or ``preferences.pairwise_advantages`` (Soft-Pair-GRPO), and their expectation ``A(o)`` is
    taken with binomial weights. For G = inf the advantage is ``advantages.expected_advantage_limit``.
    The loss is ``losses.grpo_loss`` on a batch of the two answers (sequences of one step) weighted by
    ``pi_old(o)``, which is the expected GRPO objective ``sum_o pi_old(o) [c(o) - beta D(o)]``.
    Each iteration sets ``pi_old <- pi_theta`` and takes one step preconditioned by the Fisher
    information of the softmax (``pi_a pi_b``), so that every configuration converges at a similar
    linear rate; a configuration whose residual grows halves its step. The run stops when the
    stationarity residual ``|dJ/dpi(a) - dJ/dpi(b)|`` is below ``tol`` for every configuration.

    Hard-Pair-GRPO: each iteration builds the target of the pair ``(a, b)`` with
    ``hard_pair.hard_pair_targets`` and solves the fit ``hard_pair.hard_pair_loss`` (exact categorical
    trust-region KL, one trust region per question) to convergence with L-BFGS.

``sampled``
    Groups are sampled from ``pi_old`` with a seeded generator; advantages (or pairs) come from the
    sampled groups exactly as in training; Adam takes one step per iteration with a decaying
    learning rate, and the reported ``pi(a)`` is the Polyak average of the last quarter of the run.
    With G = inf answers are sampled one by one and their advantage is the G -> inf limit under
    ``pi_old`` (an infinite group cannot be sampled).

The hinge threshold of Hard-Pair-GRPO (``beta_tr``) plays the role of ``beta`` in its rows: it is the
algorithm's only beta (its ``kl_coeff`` towards ``pi_ref`` is 0, the default, as the closed form
assumes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pairgrpo_rllib.core.advantages import expected_advantage_limit, group_advantages
from pairgrpo_rllib.core.hard_pair import delta_schedule, hard_pair_loss, hard_pair_targets
from pairgrpo_rllib.core.kl import categorical_kl
from pairgrpo_rllib.core.losses import grpo_loss
from pairgrpo_rllib.core.preferences import pairwise_advantages, preference_matrix, select_pairs

DTYPE = torch.float64
REWARDS = torch.tensor([1.0, 0.0], dtype=DTYPE)  # answer 0 = a (preferred), answer 1 = b
INF = "inf"


@dataclass(frozen=True)
class Case:
    """One algorithm setting whose fixed point has a closed form."""

    algorithm: str  # "grpo" | "soft_pair_grpo" | "hard_pair_grpo"
    group_size: int | str  # an int >= 2, or "inf" (GRPO only)
    kl_estimator: str = "k3"  # "k3" | "k3_is"; "none" for Hard-Pair-GRPO (kl_coeff = 0)


@dataclass
class SimulationSettings:
    """Knobs of the two modes; the defaults meet the tolerances of ``pairgrpo theory`` with margin."""

    # exact mode
    tol: float = 1e-9  # stationarity residual at which a configuration has converged
    step: float = 0.05  # initial Rprop step on the logits
    max_iters: int = 20000
    # sampled mode
    samples_per_iter: int = 512  # answers sampled per configuration and iteration (groups x G)
    sampled_iters: int = 2000
    lr: float = 0.05  # Adam's initial learning rate, decayed as lr / (1 + t / lr_decay_iters)
    lr_decay_iters: float = 200.0
    average_fraction: float = 0.25  # Polyak average over this final share of the run
    seed: int = 0
    # Hard-Pair-GRPO
    hard_pair_iterations: tuple[int, ...] = (25,)
    delta0: float = 0.02
    gamma: float = 0.98
    eps_p: float = 1e-4
    alpha: float = 0.5


def _initial_logits(prefs: torch.Tensor) -> torch.Tensor:
    """Start at the reference policy, as training from an SFT model does."""
    return torch.stack([torch.log(prefs), torch.log1p(-prefs)], dim=-1)


def _composition_advantages(algorithm: str, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantage of an ``a`` member and of a ``b`` member in a group with ``k`` a's, k = 0..G.

    Returns ``(adv_a, adv_b)`` of shape ``(G + 1,)``; ``adv_a[0]`` and ``adv_b[G]`` are meaningless
    (no such member) and never weighted.
    """
    k = torch.arange(g + 1)
    scores = (torch.arange(g).unsqueeze(0) < k.unsqueeze(1)).to(DTYPE)  # first k members answer a
    if algorithm == "grpo":
        adv = group_advantages(scores, "mean_std")
    else:
        adv, _ = pairwise_advantages(preference_matrix(scores), "all")
    return adv[:, 0], adv[:, g - 1]


def _binomial_weights(pi_a: torch.Tensor, n: int) -> torch.Tensor:
    """``(C, n + 1)`` probabilities of j = 0..n a's among n i.i.d. draws with ``P(a) = pi_a``."""
    j = torch.arange(n + 1, dtype=DTYPE)
    log_choose = math.lgamma(n + 1) - torch.lgamma(j + 1) - torch.lgamma(n - j + 1)
    pa = pi_a.unsqueeze(-1)
    logw = log_choose + torch.special.xlogy(j, pa) + torch.special.xlogy(n - j, 1.0 - pa)
    return torch.exp(logw)


def expected_advantages(case: Case, pi_old: torch.Tensor, comp: tuple | None = None) -> torch.Tensor:
    """``(C, 2)`` expected advantage ``A(o)`` of a group member that answered ``o``, under ``pi_old``."""
    if case.group_size == INF:
        return expected_advantage_limit(REWARDS, pi_old, "mean_std")
    g = int(case.group_size)
    adv_a, adv_b = comp if comp is not None else _composition_advantages(case.algorithm, g)
    w = _binomial_weights(pi_old[:, 0], g - 1)  # j a's among the other G - 1 members
    return torch.stack([w @ adv_a[1:], w @ adv_b[:-1]], dim=-1)


def _beta_groups(betas: torch.Tensor) -> list[tuple[float, torch.Tensor]]:
    """Configurations grouped by beta (``grpo_loss`` takes one beta per call)."""
    return [(float(b), torch.nonzero(betas == b).squeeze(-1)) for b in torch.unique(betas)]


def _expected_loss(case: Case, logits: torch.Tensor, betas, prefs, adv) -> torch.Tensor:
    """Sum over configurations of ``-sum_o pi_old(o) [c(o) - beta D(o)]`` via ``grpo_loss``."""
    logp = torch.log_softmax(logits, dim=-1)
    old = logp.detach()
    ref = torch.stack([torch.log(prefs), torch.log1p(-prefs)], dim=-1)
    total = logits.sum() * 0.0
    for beta, idx in _beta_groups(betas):
        n = idx.numel()
        loss, _ = grpo_loss(
            logp[idx].reshape(-1, 1),
            old[idx].reshape(-1, 1),
            ref[idx].reshape(-1, 1),
            adv[idx].reshape(-1),
            torch.ones(2 * n, 1, dtype=torch.bool),
            beta=beta,
            kl_estimator=case.kl_estimator,
            weights=old[idx].exp().reshape(-1),
        )
        total = total + loss * n  # grpo_loss is a weighted mean over the n configurations
    return total


def simulate_exact(
    case: Case, betas: torch.Tensor, prefs: torch.Tensor, settings: SimulationSettings
) -> tuple[torch.Tensor, dict]:
    """Fixed point of GRPO / Soft-Pair-GRPO by expected-gradient iteration. Returns ``(pi_a, info)``.

    Each iteration sets ``pi_old <- pi_theta`` and takes one Rprop step on the expected loss. Along
    the path the residual is not monotone (for large G it grows before it falls), so step sizes
    follow the sign of the gradient only: a configuration whose gradient changes sign has overshot
    its fixed point and halves its step, which brackets the root of the stationarity condition.
    Converged: residual ``|dJ/dpi(a) - dJ/dpi(b)| < tol`` or the root bracketed to ``1e-11`` in logit
    space (the residual's float64 floor when ``pi(b)`` is ~1e-9).
    """
    logits = _initial_logits(prefs).requires_grad_(True)
    comp = None if case.group_size == INF else _composition_advantages(case.algorithm, int(case.group_size))
    opt = torch.optim.Rprop([logits], lr=settings.step, etas=(0.5, 1.2), step_sizes=(1e-14, 1.0))
    residual = torch.full_like(prefs, math.inf)
    iterations = 0
    while iterations < settings.max_iters:
        iterations += 1
        pi_old = torch.softmax(logits.detach(), dim=-1)
        adv = expected_advantages(case, pi_old, comp)
        opt.zero_grad()
        _expected_loss(case, logits, betas, prefs, adv).backward()
        # dLoss/dz_a = -pi_a pi_b (dJ/dpi_a - dJ/dpi_b): divide by the Fisher pi_a pi_b.
        residual = logits.grad[:, 0].abs() / (pi_old[:, 0] * pi_old[:, 1])
        state = opt.state.get(logits, {})
        bracketed = (
            state["step_size"][:, 0] < 1e-11 if "step_size" in state else torch.zeros_like(prefs).bool()
        )
        if bool(((residual < settings.tol) | bracketed).all()):
            break
        opt.step()
    pi_a = torch.softmax(logits.detach(), dim=-1)[:, 0]
    return pi_a, {"iterations": iterations, "residual": residual.detach()}


def _sample_answers(pi_old: torch.Tensor, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """``(C, *shape)`` answers, 1.0 for a and 0.0 for b, drawn from ``pi_old``."""
    u = torch.rand((pi_old.shape[0], *shape), generator=gen, dtype=DTYPE)
    return (u < pi_old[:, 0].reshape(-1, *([1] * len(shape)))).to(DTYPE)


def simulate_sampled(
    case: Case, betas: torch.Tensor, prefs: torch.Tensor, settings: SimulationSettings
) -> tuple[torch.Tensor, dict]:
    """GRPO / Soft-Pair-GRPO trained on sampled groups with Adam. Returns ``(pi_a, info)``."""
    gen = torch.Generator().manual_seed(settings.seed)
    logits = _initial_logits(prefs).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=settings.lr)
    ref = torch.stack([torch.log(prefs), torch.log1p(-prefs)], dim=-1)
    c = prefs.numel()
    if case.group_size == INF:
        shape = (settings.samples_per_iter,)
    else:
        g = int(case.group_size)
        shape = (max(1, settings.samples_per_iter // g), g)
    start_avg = int(settings.sampled_iters * (1.0 - settings.average_fraction))
    avg = torch.zeros_like(prefs)
    for it in range(settings.sampled_iters):
        for group in opt.param_groups:
            group["lr"] = settings.lr / (1.0 + it / settings.lr_decay_iters)
        logp_all = torch.log_softmax(logits, dim=-1)
        pi_old = logp_all.detach().exp()
        scores = _sample_answers(pi_old, shape, gen)  # reward = 1 for a
        if case.group_size == INF:
            adv = expected_advantage_limit(REWARDS, pi_old, "mean_std")
            adv = torch.where(scores > 0.5, adv[:, :1], adv[:, 1:])
        elif case.algorithm == "grpo":
            adv = group_advantages(scores.reshape(-1, shape[-1]), "mean_std").reshape(scores.shape)
        else:
            adv, _ = pairwise_advantages(preference_matrix(scores.reshape(-1, shape[-1])), "all")
            adv = adv.reshape(scores.shape)
        answer = (1.0 - scores).long().reshape(c, -1)  # index 0 = a, 1 = b
        logp = torch.gather(logp_all, 1, answer)
        ref_logp = torch.gather(ref, 1, answer)
        opt.zero_grad()
        total = logits.sum() * 0.0
        for beta, idx in _beta_groups(betas):
            n = idx.numel()
            loss, _ = grpo_loss(
                logp[idx].reshape(-1, 1),
                logp[idx].detach().reshape(-1, 1),
                ref_logp[idx].reshape(-1, 1),
                adv[idx].reshape(-1),
                torch.ones(logp[idx].numel(), 1, dtype=torch.bool),
                beta=beta,
                kl_estimator=case.kl_estimator,
            )
            total = total + loss * n
        total.backward()
        opt.step()
        if it >= start_avg:
            avg += torch.softmax(logits.detach(), dim=-1)[:, 0]
    pi_a = avg / (settings.sampled_iters - start_avg)
    return pi_a, {"iterations": settings.sampled_iters}


def _fit_hard_pair(logits, old_logp, target, rows, betas, settings) -> None:
    """Solve ``min hard_pair_loss`` over the logits of the configurations in ``rows`` (in place)."""
    opt = torch.optim.LBFGS(
        [logits],
        lr=1.0,
        max_iter=200,
        tolerance_grad=1e-13,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        logp = torch.log_softmax(logits, dim=-1)
        total = logits.sum() * 0.0
        for beta, idx in _beta_groups(betas):
            # one pair (a, b) per configuration that has one: every pair of a question has the same
            # target here (support = the two answers), so their mean is one KL.
            # A question without a pair this iteration has only the hinge, minimised where it is:
            # it is left out.
            sel = idx[torch.isin(idx, rows)]
            if sel.numel() == 0:
                continue
            loss, _ = hard_pair_loss(
                logp[sel],
                target[torch.searchsorted(rows, sel)],
                torch.arange(sel.numel()),
                trust_region_kl=categorical_kl(logp[sel], old_logp[sel]),
                alpha=settings.alpha,
                beta_tr=beta,
            )
            total = total + loss * sel.numel()  # the loss averages over the questions
        total.backward()
        return total

    opt.step(closure)


def simulate_hard_pair(
    case: Case, betas: torch.Tensor, prefs: torch.Tensor, settings: SimulationSettings, mode: str
) -> dict[int, torch.Tensor]:
    """Hard-Pair-GRPO's ``pi_T(a)`` at each ``T`` in ``settings.hard_pair_iterations``."""
    gen = torch.Generator().manual_seed(settings.seed)
    logits = _initial_logits(prefs).requires_grad_(True)
    horizon = max(settings.hard_pair_iterations)
    out: dict[int, torch.Tensor] = {}
    all_rows = torch.arange(prefs.numel())
    g = 2 if case.group_size == INF else int(case.group_size)
    for t in range(horizon):
        old_logp = torch.log_softmax(logits.detach(), dim=-1)
        if mode == "exact":
            rows = all_rows  # expected update: a question always yields its pair (a, b)
        else:
            n_groups = max(1, settings.samples_per_iter // g)
            scores = _sample_answers(old_logp.exp(), (n_groups, g), gen).reshape(-1, g)
            pairs = select_pairs(preference_matrix(scores), "best_worst", generator=gen)
            rows = torch.unique(pairs[:, 0] // n_groups)
        pairs_s = torch.stack([rows, torch.zeros_like(rows), torch.ones_like(rows)], dim=-1)
        target, _ = hard_pair_targets(
            old_logp, pairs_s, delta_schedule(t, settings.delta0, settings.gamma), eps_p=settings.eps_p
        )
        if rows.numel():
            _fit_hard_pair(logits, old_logp, target, rows, betas, settings)
        if t + 1 in settings.hard_pair_iterations:
            out[t + 1] = torch.softmax(logits.detach(), dim=-1)[:, 0].clone()
    return out
