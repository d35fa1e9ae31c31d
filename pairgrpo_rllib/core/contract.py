"""``GroupTensors``: the one typed input of every learner of the family, whatever the module is.

A learner receives a batch of N groups of G members, each member a sequence of up to T steps
(control actions of a MuJoCo policy, or response tokens of a causal LM). It flattens the members
to ``B = N * G`` rows, in group order (the members of group n are rows ``n*G .. n*G + G - 1``), and
fills this dataclass; each algorithm's loss is a pure function of its fields.

Who fills what:

* from the batch (the same for every module type): ``old_logp``, ``mask``, ``adv``, ``pairs``,
  ``hard_pairs``, ``target_logp``;
* from the module (``policy_terms`` of the RLModule): ``logp`` and ``ref_logp`` always;
  ``kl_to_ref``, ``kl_to_old`` and ``entropy`` where the module has an explicit per-step
  distribution (a Gaussian or categorical policy: exact per state). A causal LM leaves them
  ``None`` (a vocabulary-wide tensor per token is too large to keep), and the losses then use the
  sampled estimators on ``logp``, ``old_logp`` and ``ref_logp``.

Shapes (``B = N * G``; T the padded width; P and P' numbers of pairs):

================  ============  =========================================================
field             shape         meaning
================  ============  =========================================================
``logp``          (B, T)        log pi_theta of the taken actions / tokens (differentiable)
``old_logp``      (B, T)        log pi_old, recorded when sampling
``ref_logp``      (B, T)        log pi_ref of the same actions (no gradient)
``mask``          (B, T) bool   true on real steps (response tokens), false on padding
``adv``           (B,)/(B, T)   advantages: one per member, or per step (``credit="step"``)
``kl_to_ref``     (B, T)|None   exact per-step KL(pi_theta || pi_ref) (differentiable)
``kl_to_old``     (B, T)|None   exact per-step KL(pi_theta || pi_old) (differentiable)
``entropy``       (B, T)|None   per-step entropy of pi_theta (no gradient)
``pairs``         (P, 3)|None   whole-member pairs ``(group, winner, loser)`` (diagnostics)
``hard_pairs``    (P', 3)|None  Hard-Pair's pairs ``(unit, winner, loser)``; unit = row of
                                ``hard_pair.unit_logp`` (a group, or a group x time index)
``target_logp``   (P', G)|None  Hard-Pair's ``log pi_tar(.|S)`` of each pair
``is_weights``    (B, T)|None   truncated importance weights learner/sampler (``tis_cap``)
``token_count``   ()|None       what ``token_mean`` divides by where this batch is one of L
                                learner shards: the minibatch's real steps / L (else None)
================  ============  =========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pairgrpo_rllib.core.distributions import masked_mean
from pairgrpo_rllib.core.kl import kl_penalty


@dataclass
class GroupTensors:
    n_groups: int
    group_size: int
    logp: torch.Tensor
    old_logp: torch.Tensor
    ref_logp: torch.Tensor
    mask: torch.Tensor
    adv: torch.Tensor
    kl_to_ref: torch.Tensor | None = None
    kl_to_old: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    pairs: torch.Tensor | None = None
    hard_pairs: torch.Tensor | None = None
    target_logp: torch.Tensor | None = None
    is_weights: torch.Tensor | None = None
    token_count: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b = self.n_groups * self.group_size
        if self.group_size < 2:
            raise ValueError(f"group_size={self.group_size}: a group needs at least 2 members")
        if self.logp.dim() != 2 or self.logp.shape[0] != b:
            raise ValueError(
                f"logp has shape {tuple(self.logp.shape)}; expected (N*G, T) = ({b}, T) for "
                f"N={self.n_groups} groups of G={self.group_size}"
            )
        shape = self.logp.shape
        for name in ("old_logp", "ref_logp", "mask", "kl_to_ref", "kl_to_old", "entropy", "is_weights"):
            value = getattr(self, name)
            if value is not None and value.shape != shape:
                raise ValueError(f"{name} has shape {tuple(value.shape)}; expected (B, T) = {tuple(shape)}")
        if self.mask.dtype != torch.bool:
            self.mask = self.mask.bool()
        if self.adv.shape not in (shape[:1], shape):
            raise ValueError(
                f"adv has shape {tuple(self.adv.shape)}; expected (B,) = ({b},) or (B, T) = {tuple(shape)}"
            )
        if (self.hard_pairs is None) != (self.target_logp is None):
            raise ValueError("hard_pairs and target_logp come together (Hard-Pair-GRPO's fit)")
        if self.target_logp is not None and self.target_logp.shape != (
            self.hard_pairs.shape[0],
            self.group_size,
        ):
            raise ValueError(
                f"target_logp has shape {tuple(self.target_logp.shape)}; expected (P', G) = "
                f"({self.hard_pairs.shape[0]}, {self.group_size})"
            )

    @property
    def max_len(self) -> int:
        """T, the padded width: Dr. GRPO's constant ``T_max`` (the same on every learner shard)."""
        return int(self.logp.shape[1])

    def anchor(self, kl_anchor: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(anchor_logp, exact_kl)`` of the KL penalty: pi_ref (``ref``) or pi_old (``old``)."""
        if kl_anchor == "ref":
            return self.ref_logp, self.kl_to_ref
        if kl_anchor == "old":
            return self.old_logp, self.kl_to_old
        raise ValueError(f"kl_anchor={kl_anchor!r} is not supported; use 'ref' or 'old'")

    def kl_ref_mean(self) -> torch.Tensor:
        """Mean KL(pi_theta || pi_ref) per real step, detached: exact where the module gives it,
        else the k3 estimate (unbiased under pi_theta = pi_old)."""
        if self.kl_to_ref is not None:
            per_step = self.kl_to_ref.detach()
        else:
            per_step = kl_penalty(self.logp.detach(), self.ref_logp, "k3")
        return masked_mean(per_step, self.mask)

    def kl_to_old_or_sampled(self) -> torch.Tensor:
        """Per-step KL(pi_theta || pi_old), ``(B, T)``: exact where the module gives it, else the
        sampled ``rho log rho - rho + 1`` (``kl.sampled_kl``'s terms, unbiased under pi_old)."""
        if self.kl_to_old is not None:
            return self.kl_to_old
        log_rho = torch.where(self.mask, self.logp - self.old_logp, torch.zeros_like(self.logp))
        rho = torch.exp(log_rho)
        return rho * log_rho - rho + 1.0
