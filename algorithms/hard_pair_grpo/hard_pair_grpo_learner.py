"""Hard-Pair-GRPO's loss: ``KL(pi_theta || pi_tar)`` on the group support + the trust-region hinge."""

from __future__ import annotations

from pairgrpo_rllib.algorithms.common import batch as B
from pairgrpo_rllib.algorithms.common.learner import GroupLearner, analytic_kl, unit_logp
from pairgrpo_rllib.hard_pair import group_shares, hard_pair_loss


class HardPairGRPOLearner(GroupLearner):
    def policy_loss(self, config, t):
        batch, mask, n, g = t["batch"], t["mask"], t["n"], t["g"]
        shares = group_shares(unit_logp(t["logp"], mask, n, g, config.credit, config.length_norm))
        hard_pairs = batch[B.HARD_PAIRS].flatten(0, 1)  # (N, K, P, 3) -> (N*K, P, 3): one row per unit
        pairs = B.flat_pairs(hard_pairs)
        valid = hard_pairs[..., 0] > 0
        target = batch[B.TARGET_LOGP].flatten(0, 1)[valid].to(shares.dtype)
        # Exact per-state KL(pi_theta || pi_old) over the visited states (spec: explicit Gaussian).
        tr = analytic_kl(t["dist_inputs"], t["flat"](batch[B.OLD_DIST_INPUTS]), t["gaussian"])
        tr_kl = (tr * mask).sum() / mask.sum().clamp(min=1)
        ref_kl = (t["kl"] * mask).sum() / mask.sum().clamp(min=1) if "kl" in t else None
        loss, stats = hard_pair_loss(
            shares,
            target,
            pairs[:, 0],
            trust_region_kl=tr_kl,
            alpha=config.trust_region_alpha,
            beta_tr=config.trust_region_beta,
            trust_region=config.trust_region,
            ref_kl=ref_kl,
            kl_coeff=config.kl_coeff,
        )
        return loss, stats
