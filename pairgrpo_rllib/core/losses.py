"""Policy losses: GRPO's clipped surrogate with a KL penalty, PG-GRPO, DPO and ORPO.

Spec: ``docs/algorithms.md``. Pure torch: tensors and floats in, ``(loss, stats)`` out.
Soft-Pair-GRPO is GRPO's loss fed with pairwise advantages (``preferences.pairwise_advantages``);
Hard-Pair-GRPO's loss is in ``hard_pair``.

Vocabulary: ``logp`` (pi_theta, differentiable), ``old_logp`` (pi_old, recorded when sampling),
``ref_logp`` (the KL anchor), ``adv``, ``mask``; shapes ``(B, T)``: B sequences (group members,
possibly of several groups), T steps (tokens or control actions), right-padded.

Implementation details
1. Padded steps are replaced by 0 *before* any ``exp``, so garbage in the padding (``-inf`` log-probs
   of pad tokens) can neither produce NaN values nor NaN gradients; masked steps get exactly zero
   gradient.
2. ``clip_fraction`` counts the steps where the clipped branch is the active one (its gradient is
   zero), as veRL's ``pg_clipfrac``; not merely ``|rho - 1| > eps``.
3. Aggregations (``loss_agg``): ``seq_mean_token_mean`` (original GRPO) averages each sequence over
   its own length, then over sequences; ``token_mean`` (DAPO) averages over all real steps of the
   minibatch, also when it is sharded over several learners (``token_count``: the minibatch's count);
   ``seq_mean_token_sum_norm`` (Dr. GRPO) sums each sequence and divides by a constant ``T_max``
   (``max_len``, default the padded width T, so pass it explicitly when batches are sharded).
   Sequences with no real step are left out of sequence means.
4. Optional per-sequence ``weights`` turn every mean over sequences (and over steps, for
   ``token_mean``) into a weighted mean. The theory check uses them to evaluate the *expected*
   objective over a group distribution exactly; ordinary training leaves them ``None``.
5. PG-GRPO's preference ratio ``exp(beta_pg (log pi_theta - log pi_old))`` is the same surrogate
   with the log-ratio scaled (``ratio_scale``), so the clipping code exists once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.checks import check_choice, check_positive
from pairgrpo_rllib.core.defaults import default
from pairgrpo_rllib.core.kl import kl_penalty

Stats = dict[str, torch.Tensor]


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, torch.zeros_like(x))


def sequence_logp(logp: torch.Tensor, mask: torch.Tensor, *, length_norm: bool = False) -> torch.Tensor:
    """``l(y) = sum_t log pi(a_t | s_t)`` (or the mean over real steps with ``length_norm``).

    Args:
        logp: ``(B, T)`` per-step log-probs.
        mask: ``(B, T)`` true on real steps.
        length_norm: divide by the sequence length (Hard-Pair's shares, ORPO's ``p``).

    Returns:
        ``(B,)`` sequence log-probs.
    """
    mask = mask.bool()
    total = _masked(logp, mask).sum(dim=-1)
    if length_norm:
        return total / mask.sum(dim=-1).clamp(min=1)
    return total


def suffix_logp(logp: torch.Tensor, mask: torch.Tensor, *, length_norm: bool = False) -> torch.Tensor:
    """``l_t(y) = sum_{t' >= t} log pi(a_t' | s_t')``: the log-prob of each suffix of a sequence.

    The per-step credit counterpart of :func:`sequence_logp` (column 0 equals it).

    Args:
        logp: ``(B, T)`` per-step log-probs.
        mask: ``(B, T)`` true on real steps.
        length_norm: divide by the number of real steps in the suffix.

    Returns:
        ``(B, T)`` suffix log-probs (0 where the suffix has no real step).
    """
    mask = mask.bool()
    total = _masked(logp, mask).flip(-1).cumsum(-1).flip(-1)
    if length_norm:
        count = mask.to(logp.dtype).flip(-1).cumsum(-1).flip(-1)
        return total / count.clamp(min=1)
    return total


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    *,
    clip_low: float = default("clip_low"),
    clip_high: float = default("clip_high"),
    ratio_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-step clipped surrogate ``c = min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)``.

    Args:
        logp, old_logp: ``(B, T)`` log-probs under pi_theta and pi_old (finite everywhere: the
            caller masks padding first).
        adv: ``(B,)`` one advantage per sequence, or ``(B, T)`` per step.
        clip_low, clip_high: epsilon_low and epsilon_high (defaults 0.2, PPO/GRPO).
        ratio_scale: multiplies the log-ratio; ``beta_pg`` for PG-GRPO, 1 otherwise.

    Returns:
        ``(c, ratio, clipped)``, each ``(B, T)``; ``clipped`` is true where the clipped branch is active.
    """
    if not 0.0 <= clip_low < 1.0:
        raise ValueError(f"clip_low={clip_low!r} must lie in [0, 1): the ratio's lower clip is 1 - clip_low")
    check_positive("clip_high", clip_high)
    if adv.dim() == 1:
        adv = adv.unsqueeze(-1)
    ratio = torch.exp(ratio_scale * (logp - old_logp))
    unclipped = ratio * adv
    clipped_term = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * adv
    surrogate = torch.minimum(unclipped, clipped_term)
    return surrogate, ratio, clipped_term < unclipped


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: str = default("loss_agg"),
    *,
    weights: torch.Tensor | None = None,
    max_len: int | None = None,
    token_count: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Reduce per-step values ``(B, T)`` to a scalar (``loss_agg``; see implementation detail 3).

    Args:
        values: ``(B, T)`` per-step objective terms.
        mask: ``(B, T)`` true on real steps.
        mode: ``seq_mean_token_mean`` | ``token_mean`` | ``seq_mean_token_sum_norm``.
        weights: ``(B,)`` non-negative sequence weights (``None``: all 1).
        max_len: T_max of ``seq_mean_token_sum_norm`` (``None``: the padded width T).
        token_count: what ``token_mean`` divides by (``None``: this batch's weighted number of real
            steps). A learner holding one of L shards of a minibatch passes the whole minibatch's
            count / L, so that the average of the L shards' gradients is the gradient of the global
            token mean ``sum_i sum_t / sum_i T_i`` (DAPO; TRL's ``dapo``), not the mean of per-shard
            means (TRL's ``bnpo``).

    Returns:
        Scalar tensor.
    """
    check_choice("loss_agg", mode, names.LOSS_AGGS)
    mask = mask.bool()
    values = _masked(values, mask)
    lengths = mask.sum(dim=-1).to(values.dtype)
    if weights is None:
        weights = torch.ones_like(lengths)
    if mode == "token_mean":
        count = (lengths * weights).sum() if token_count is None else token_count
        return (values.sum(dim=-1) * weights).sum() / torch.as_tensor(count, dtype=values.dtype).clamp(
            min=1e-12
        )
    real = lengths > 0
    w = torch.where(real, weights, torch.zeros_like(weights))
    if mode == "seq_mean_token_mean":
        per_seq = values.sum(dim=-1) / lengths.clamp(min=1)
    else:
        t_max = values.shape[-1] if max_len is None else max_len
        check_positive("max_len", t_max)
        per_seq = values.sum(dim=-1) / t_max
    return (per_seq * w).sum() / w.sum().clamp(min=1e-12)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = default("clip_low"),
    clip_high: float = default("clip_high"),
    beta: float = default("kl_coeff"),
    kl_estimator: str = default("kl_estimator"),
    loss_agg: str = default("loss_agg"),
    log_ratio_clamp: float | None = None,
    ratio_scale: float = 1.0,
    kl: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    max_len: int | None = None,
    is_weights: torch.Tensor | None = None,
    token_count: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, Stats]:
    """GRPO's loss ``-agg(c - beta D)`` (GRPO-objective eq. 1; also Soft-Pair-GRPO's, with its advantages).

    Args:
        logp: ``(B, T)`` log pi_theta of the taken actions (differentiable).
        old_logp: ``(B, T)`` log pi_old (recorded when sampling).
        ref_logp: ``(B, T)`` log-probs of the KL anchor: pi_ref (``kl_anchor=ref``) or pi_old
            (``kl_anchor=old``); may be ``None`` when ``beta == 0`` or ``kl`` is given.
        adv: ``(B,)`` or ``(B, T)`` advantages.
        mask: ``(B, T)`` true on real steps.
        clip_low, clip_high: epsilon_low, epsilon_high (0.2, 0.2).
        beta: KL coefficient (0.04, DeepSeekMath/TRL).
        kl_estimator: ``k1`` | ``k2`` | ``k3`` (default) | ``k3_is``.
        loss_agg: see :func:`aggregate`.
        log_ratio_clamp: clamp of the KL log-ratios (see ``kl.kl_penalty``).
        ratio_scale: log-ratio multiplier of the surrogate (PG-GRPO's ``beta_pg``).
        kl: ``(B, T)`` precomputed per-step KL (e.g. analytic Gaussian) used instead of the estimator.
        weights, max_len, token_count: see :func:`aggregate`.
        is_weights: ``(B, T)`` per-step importance weights multiplying the surrogate (no gradient): the
            truncated correction of a sampler whose log-probs differ from the learner's (option
            ``tis_cap``, ours); ``None``: 1.

    Returns:
        ``(loss, stats)``; stats (detached): ``loss``, ``policy_loss``, ``kl_ref`` (mean penalty per
        real step), ``clip_fraction``, ``ratio_mean``.
    """
    check_positive("beta", beta, allow_zero=True)
    # Checked here too: with beta = 0 or a precomputed kl the estimator is never reached.
    check_choice("kl_estimator", kl_estimator, names.KL_ESTIMATORS)
    mask = mask.bool()
    zero = torch.zeros_like(logp)
    logp_m = torch.where(mask, logp, zero)
    old_m = torch.where(mask, old_logp, zero)
    surrogate, ratio, clipped = clipped_surrogate(
        logp_m, old_m, adv, clip_low=clip_low, clip_high=clip_high, ratio_scale=ratio_scale
    )
    if is_weights is not None:
        surrogate = surrogate * is_weights.detach().to(surrogate.dtype)
    n_real = mask.sum().clamp(min=1)
    if kl is not None:
        penalty = _masked(kl, mask)
    elif beta > 0 or ref_logp is not None:
        if ref_logp is None:
            raise ValueError("grpo_loss with beta > 0 needs ref_logp (or a precomputed kl)")
        penalty = kl_penalty(
            logp_m,
            torch.where(mask, ref_logp, zero),
            kl_estimator,
            old_logp=old_m,
            log_ratio_clamp=log_ratio_clamp,
        )
        penalty = _masked(penalty, mask)
    else:
        penalty = zero
    agg = {"weights": weights, "max_len": max_len, "token_count": token_count}
    policy_obj = aggregate(surrogate, mask, loss_agg, **agg)
    kl_obj = aggregate(penalty, mask, loss_agg, **agg)
    loss = -(policy_obj - beta * kl_obj)
    stats = {
        names.LOSS: loss.detach(),
        names.POLICY_LOSS: -policy_obj.detach(),
        names.KL_REF: (penalty.detach().sum() / n_real),
        names.CLIP_FRACTION: (clipped & mask).sum() / n_real,
        names.RATIO_MEAN: _masked(ratio.detach(), mask).sum() / n_real,
    }
    return loss, stats


def pg_grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    beta_pg: float = default("beta_pg"),
    w1: float = default("kl_coeff"),
    **options,
) -> tuple[torch.Tensor, Stats]:
    """PG-GRPO (PG-GRPO §3): GRPO with the preference ratio and a KL penalty weighted ``w1``.

    ``p = exp(beta_pg (log pi_theta - log pi_old))``, ``c = min(p A, clip(p, 1 - eps_low, 1 + eps_high) A)``.
    With ``beta_pg = 1`` and shift-only advantages this is GRPO with ``advantage_norm=mean``.
    The note writes one symmetric epsilon and the k3 penalty (the defaults); both ends of the clip
    and the estimator are options, as for GRPO.

    Args: as :func:`grpo_loss` (``options``: its keyword options, with its defaults), except that
    ``beta_pg`` (0.1, chosen: DPO's usual temperature) sets the ratio's scale and ``w1`` (the note's
    KL weight, default GRPO's 0.04) takes the place of ``beta``.
    """
    check_positive("beta_pg", beta_pg)
    # PG-GRPO's own name for the KL weight: grpo_loss would report it as beta.
    check_positive("w1", w1, allow_zero=True)
    for name in ("beta", "ratio_scale"):
        if name in options:
            raise TypeError(
                f"pg_grpo_loss takes no {name}: PG-GRPO sets it from {'w1' if name == 'beta' else 'beta_pg'}"
            )
    return grpo_loss(logp, old_logp, ref_logp, adv, mask, beta=w1, ratio_scale=beta_pg, **options)


def dpo_loss(
    logp_w: torch.Tensor,
    logp_l: torch.Tensor,
    ref_logp_w: torch.Tensor,
    ref_logp_l: torch.Tensor,
    *,
    beta: float = default("dpo_beta"),
) -> tuple[torch.Tensor, Stats]:
    """DPO (Rafailov et al. 2023): ``-log sigmoid(beta [(l_w - l_ref,w) - (l_l - l_ref,l)])``.

    Args:
        logp_w, logp_l: ``(B,)`` sequence log-probs of the chosen / rejected responses (pi_theta).
        ref_logp_w, ref_logp_l: ``(B,)`` the same under pi_ref.
        beta: temperature (0.1, the DPO paper's).

    Returns:
        ``(loss, stats)``: the batch mean; ``reward_margin`` (mean implicit reward margin) and
        ``pair_accuracy`` (share of pairs with a positive margin).
    """
    check_positive("beta", beta)
    margin = beta * ((logp_w - ref_logp_w) - (logp_l - ref_logp_l))
    loss = -F.logsigmoid(margin).mean()
    stats = {
        names.LOSS: loss.detach(),
        names.REWARD_MARGIN: margin.detach().mean(),
        names.PAIR_ACCURACY: (margin.detach() > 0).to(margin.dtype).mean(),
    }
    return loss, stats


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, accurate near 0 and for very negative x."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def orpo_loss(
    logp_w: torch.Tensor,
    mask_w: torch.Tensor,
    logp_l: torch.Tensor,
    mask_l: torch.Tensor,
    *,
    lam: float = default("orpo_lambda"),
    eps: float = 1e-7,
) -> tuple[torch.Tensor, Stats]:
    """ORPO (Hong et al. 2024): ``NLL(w) + lam * (-log sigmoid(log odds(w) - log odds(l)))``.

    ``odds(y) = p / (1 - p)`` with ``p = exp(l(y) / |y|)`` (mean token log-prob); the NLL is the
    token mean over the chosen responses.

    Args:
        logp_w, logp_l: ``(B, T)`` per-token log-probs of chosen / rejected under pi_theta.
        mask_w, mask_l: ``(B, T)`` true on real tokens.
        lam: lambda, weight of the odds-ratio term (0.1, ORPO paper).
        eps: keeps the mean log-prob below ``-eps`` so that ``log(1 - p)`` stays finite when p -> 1.

    Returns:
        ``(loss, stats)`` with ``nll``, ``log_odds_ratio`` and ``pair_accuracy``.
    """
    check_positive("lam", lam, allow_zero=True)
    mask_w, mask_l = mask_w.bool(), mask_l.bool()
    nll = -_masked(logp_w, mask_w).sum() / mask_w.sum().clamp(min=1)
    mean_w = sequence_logp(logp_w, mask_w, length_norm=True).clamp(max=-eps)
    mean_l = sequence_logp(logp_l, mask_l, length_norm=True).clamp(max=-eps)
    log_odds = (mean_w - _log1mexp(mean_w)) - (mean_l - _log1mexp(mean_l))
    ratio_term = -F.logsigmoid(log_odds).mean()
    loss = nll + lam * ratio_term
    stats = {
        names.LOSS: loss.detach(),
        names.NLL: nll.detach(),
        names.LOG_ODDS_RATIO: log_odds.detach().mean(),
        names.PAIR_ACCURACY: (log_odds.detach() > 0).to(log_odds.dtype).mean(),
    }
    return loss, stats
