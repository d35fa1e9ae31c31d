"""``pairgrpo theory --backend rllib``: the closed forms reproduced by the real RLlib algorithms.

Each configuration ``(beta, pref)`` is one RLlib algorithm (GRPO or Soft-Pair-GRPO) on the
``pairgrpo/BinaryQuestion-v0`` environment: the group env runner samples groups of one-step episodes,
the driver computes advantages, the ``GroupLearner`` applies ``losses.grpo_loss``. The policy is a
linear head on a constant observation (a softmax over two logits) started at ``pi_ref(a) = pref``.
The reported ``pi(a)`` is the Polyak average over the last quarter of the iterations, as in the
``sampled`` mode, and rows are judged with its tolerance (0.03).

Hard-Pair-GRPO is not offered here: its RLlib learner fits targets on the sampled group's support
(sequences), while the closed form is for an explicit distribution over the two answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pairgrpo_rllib.algorithms.registry import algorithm_class
from pairgrpo_rllib.core.theory.bandit import Case
from pairgrpo_rllib.core.theory.check import TOLERANCE, closed_form, result_row
from pairgrpo_rllib.envs.bandit import ENV_ID

ALGO_NAMES = {"grpo": "GRPO", "soft_pair_grpo": "Soft-Pair-GRPO"}


def simulate_rllib(
    case: Case, betas, prefs, *, iterations: int = 300, groups: int = 64, lr: float = 0.05, seed: int = 0
) -> tuple[list[float], dict]:
    """``pi(a)`` of each ``(beta, pref)`` after training the RLlib algorithm of ``case``."""
    import ray
    from ray.rllib.core import DEFAULT_MODULE_ID

    if case.algorithm not in ALGO_NAMES or case.group_size == "inf":
        raise ValueError(f"--backend rllib runs grpo and soft_pair_grpo with a finite G, not {case}")
    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    g = int(case.group_size)
    out = []
    for beta, pref in zip(betas, prefs):
        cfg = (
            algorithm_class(ALGO_NAMES[case.algorithm])
            .get_default_config()
            .environment(ENV_ID)
            .rl_module(model_config={"fcnet_hiddens": [], "init_action_probs": [pref, 1.0 - pref]})
            .training(
                group_size=g,
                train_batch_size_per_learner=g * groups,
                num_epochs=1,
                lr=[[0, lr], [iterations * g * groups, lr / 20]],
                grad_clip=None,
                kl_coeff=beta,
                kl_estimator=case.kl_estimator,
                eval_interval=0,
                grad_cosine_every=0,
                sample_seed=seed,
            )
            .debugging(seed=seed)
        )
        algo = cfg.build_algo()
        try:
            module = algo.get_module(DEFAULT_MODULE_ID)  # the local runner's copy, synced every iteration
            one = torch.ones(1, 1)
            tail = []
            for it in range(iterations):
                algo.train()
                if it >= int(0.75 * iterations):
                    with torch.no_grad():
                        tail.append(float(torch.softmax(module.actor(one), -1)[0, 0]))
            out.append(float(np.mean(tail)))
        finally:
            algo.stop()
    return out, {"iterations": iterations}


def run_theory_rllib(cases: Sequence[Case], betas, prefs, seed: int = 0, progress=None) -> list[dict]:
    """The rows of ``pairgrpo theory`` from the real RLlib algorithms (:func:`simulate_rllib`), sampled tolerance."""
    rows: list[dict] = []
    grid = [(b, p) for b in betas for p in prefs]
    for case in cases:
        pis, info = simulate_rllib(case, [b for b, _ in grid], [p for _, p in grid], seed=seed)
        base = {"algorithm": case.algorithm, "group_size": case.group_size, "kl_estimator": case.kl_estimator}
        tol = TOLERANCE["sampled"]
        case_rows = [
            {
                **result_row(base, b, p, "sampled", closed_form(case, b, p), sim, tol, **info),
                "backend": "rllib",
            }
            for (b, p), sim in zip(grid, pis)
        ]
        rows += case_rows
        if progress is not None:
            progress(case, case_rows)
    return rows
