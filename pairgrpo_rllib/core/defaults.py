"""Every option of the GRPO family, defined once: default, symbol, meaning, source (STYLE habit 4).

``FIELDS`` is the one table. ``GroupAlgorithmConfig`` takes its attributes and their defaults from
it, the math functions take their keyword defaults from it (:func:`default`), and
``docs/algorithms.md`` lists it. ``ALGORITHM_DEFAULTS`` holds the few defaults in which one
algorithm differs from the family (the papers' own choices); subclasses never set defaults of their
own. Sources name the papers by the keys of ``docs/references.md``; "chosen" marks a value the
papers leave open, "ours" a departure of this project (documented in ``docs/algorithms.md``).

Pure Python: the CLI, the math layer and the RLlib config all read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    default: object
    meaning: str
    source: str
    symbol: str = ""
    rllib: bool = False  # an RLlib AlgorithmConfig attribute whose default the family changes


# Pair-GRPO §5 lists its hyperparameters, but the values were lost from the text we have; these are
# the values of a public reading of the paper (docs/algorithms.md, "Hard-Pair-GRPO").
PAPER_HP = "Pair-GRPO §5 (public reading)"

FIELDS: dict[str, Field] = {
    # --- groups --------------------------------------------------------------------------------
    "group_size": Field(8, "members per group", "chosen (the papers give no G for MuJoCo)", "G"),
    "group_mode": Field(
        "reset",
        "reset: G whole episodes from one reset seed | branch: G H-step segments from a state snapshot",
        "ours (how a MuJoCo group shares its start state)",
    ),
    "segment_length": Field(None, "steps per member; None = the episode limit (reset mode)", "ours", "H"),
    "pair_source": Field(
        "online",
        "online: pairs labelled inside the freshly sampled group | dataset: the preference data set's "
        "chosen/rejected pairs, each a group of two (LLM runs: env_config.pairs; pi_old's log-probs "
        "computed by the learner when the iteration begins)",
        "spec (pair_source)",
    ),
    "credit": Field(
        "sequence",
        "sequence: one advantage per member | step: each member's reward-to-go compared across the "
        "group at every time index",
        "sequence: GRPO; step: ours (a time-indexed baseline, not process supervision)",
    ),
    "credit_gamma": Field(1.0, "discount of the reward-to-go within a member (credit='step')", "ours"),
    "lookahead": Field(
        0,
        "steps each member runs past its H-step segment (branch mode, credit='step'): their discounted "
        "return extends the reward-to-go of the segment's steps, which alone are trained on; 0 = cut at H",
        "ours (against the reward-to-go's truncation at the segment end)",
        "L",
    ),
    "sample_seed": Field(
        0,
        "extra seed of the sampling streams (start states, action noise, labels); each stream derives from "
        "the trial's seed (the YAML's seeds), this value and its purpose",
        "ours",
    ),
    # --- advantages and preferences ------------------------------------------------------------
    "advantage_norm": Field(
        "mean_std",
        "GRPO advantage: mean_std | mean (shift only) | none (raw scores)",
        "mean_std: GRPO-objective eq. 2; mean: Dr. GRPO",
    ),
    "preference_oracle": Field(
        "deterministic",
        "deterministic: sign of the score difference | bradley_terry: noisy labels",
        "bradley_terry: Christiano 2017",
    ),
    "preference_temperature": Field(
        1.0, "temperature of the Bradley-Terry labeller, in score units", "chosen", "tau"
    ),
    "pairs": Field("all", "which pairs of a group give advantages: all | best_worst | disjoint", "chosen"),
    # --- clipped surrogate and KL --------------------------------------------------------------
    "clip_low": Field(0.2, "lower clip of the ratio is 1 - clip_low", "PPO / GRPO", "epsilon_low"),
    "clip_high": Field(
        0.2, "upper clip of the ratio is 1 + clip_high", "PPO / GRPO (DAPO raises it)", "epsilon_high"
    ),
    "loss_agg": Field(
        "seq_mean_token_mean",
        "seq_mean_token_mean | token_mean | seq_mean_token_sum_norm",
        "DeepSeekMath | DAPO | Dr. GRPO",
    ),
    "kl_coeff": Field(0.04, "weight of the KL penalty", "DeepSeekMath", "beta"),
    "kl_estimator": Field(
        "k3",
        "k1 | k2 | k3 | k3_is | analytic (the exact per-state KL of an explicit action distribution)",
        "k3: GRPO-objective (GRPO's own); analytic: ours, set by the MuJoCo configs",
    ),
    "kl_anchor": Field(
        "ref",
        "ref: frozen initial policy | old: the previous iteration's policy",
        "ref: GRPO; old: Pair-GRPO",
    ),
    "kl_in_reward": Field(
        False, "subtract beta * sum_t k1 from the scores instead of a loss penalty", "spec option"
    ),
    "log_ratio_clamp": Field(
        20.0, "clamp of the KL log-ratios before exp (None: no clamp)", "ours (k3 on 6-D Gaussians overflows)"
    ),
    # --- PG-GRPO -------------------------------------------------------------------------------
    "beta_pg": Field(
        0.1, "preference-ratio temperature of PG-GRPO", "chosen (DPO's usual temperature)", "beta_pg"
    ),
    # --- Hard-Pair-GRPO ------------------------------------------------------------------------
    "length_norm": Field(
        True,
        "sequence log-prob as the mean (not the sum) of step log-probs in shares and pair_accuracy",
        "chosen",
    ),
    "delta0": Field(0.02, "Hard-Pair step size at iteration 0", PAPER_HP, "delta_0"),
    "delta_gamma": Field(0.98, "decay of delta_t = delta_0 * gamma^t", PAPER_HP, "gamma"),
    "delta_decay": Field(
        True, "False keeps delta_t = delta_0 (the ablation 'fixed delta')", "Pair-GRPO §6.1.4 (ablation)"
    ),
    "eps_p": Field(1e-4, "smallest probability a Hard-Pair loser keeps", "chosen", "epsilon_p"),
    "trust_region": Field(
        True, "False drops the hinge (the ablation 'no trust region')", "Pair-GRPO §6.1.4 (ablation)"
    ),
    "trust_region_alpha": Field(0.5, "weight of the trust-region hinge", PAPER_HP, "alpha"),
    "trust_region_beta": Field(0.01, "threshold of the hinge on KL(pi_theta || pi_old)", PAPER_HP, "beta_tr"),
    "tis_cap": Field(
        None,
        "truncated importance sampling (LLM runs): the learner recomputes pi_old's log-probs, uses them in "
        "the ratio, and multiplies the surrogate per token by min(exp(logp_learner - logp_sampler), C); "
        "None = off (the sampler's log-probs are pi_old)",
        "ours (the correction TRL and veRL apply to vLLM samples; off by default: fp32 on CPU agrees to 1e-5)",
        "C",
    ),
    # --- diagnostics and evaluation ------------------------------------------------------------
    "grad_cosine_every": Field(10, "log grad_cosine_vs_grpo every N iterations (0 = never)", "ours"),
    "eval_interval": Field(10, "deterministic evaluation every N iterations (0 = never)", "ours"),
    "eval_episodes": Field(2, "episodes per evaluation", "ours"),
    # --- RLlib settings whose defaults the family changes --------------------------------------
    "lr": Field(3e-4, "Adam learning rate", "MuJoCo convention (CleanRL, SB3)", rllib=True),
    "num_epochs": Field(10, "passes over each batch", "MuJoCo convention (CleanRL, SB3)", rllib=True),
    "minibatch_size": Field(None, "groups per minibatch; None = the whole batch", "ours", rllib=True),
    "train_batch_size_per_learner": Field(8000, "env steps per iteration and learner", "ours", rllib=True),
    "grad_clip": Field(0.5, "global-norm gradient clip", "MuJoCo convention (CleanRL, SB3)", rllib=True),
    "grad_clip_by": Field("global_norm", "how grad_clip applies", "RLlib", rllib=True),
    "rollout_fragment_length": Field(
        "auto", "RLlib's default 200 oversamples group batches", "RLlib", rllib=True
    ),
    "num_env_runners": Field(0, "remote env runners (0 = sample on the local runner)", "ours", rllib=True),
}

# The offline baselines on preference pairs (their losses are in ``core.losses``).
BASELINE_FIELDS: dict[str, Field] = {
    "dpo_beta": Field(0.1, "temperature of DPO's implicit reward", "DPO", "beta"),
    "orpo_lambda": Field(0.1, "weight of ORPO's odds-ratio term", "ORPO", "lambda"),
}

# The defaults in which one algorithm departs from the family's, with the papers' reasons.
ALGORITHM_DEFAULTS: dict[str, dict[str, object]] = {
    "GRPO": {},
    "Soft-Pair-GRPO": {"pairs": "all"},  # chosen: every pair of the group
    "Hard-Pair-GRPO": {
        "pairs": "best_worst",  # Pair-GRPO §4.2: "the critical preference pair" (chosen reading)
        "kl_coeff": 0.0,  # Pair-GRPO: no KL to pi_ref, the trust region keeps it near pi_old
    },
    "PG-GRPO": {"advantage_norm": "mean"},  # PG-GRPO §3: A_i = r_i - mean(r)
    # The offline baselines train on dataset pairs: a "group" is (chosen, rejected); no GRPO gradient
    # to compare with (they have no advantages).
    "DPO": {"group_size": 2, "grad_cosine_every": 0},
    "ORPO": {"group_size": 2, "grad_cosine_every": 0},
}

# The options that are ours (the family's), not RLlib's: ``training(...)`` keys of the GRPO family.
FAMILY_OPTIONS: tuple[str, ...] = tuple(k for k, f in FIELDS.items() if not f.rllib)


def default(name: str, algorithm: str | None = None):
    """The default of option ``name`` (for ``algorithm`` where it departs from the family's)."""
    if algorithm is not None and name in ALGORITHM_DEFAULTS.get(algorithm, {}):
        return ALGORITHM_DEFAULTS[algorithm][name]
    if name in BASELINE_FIELDS:
        return BASELINE_FIELDS[name].default
    return FIELDS[name].default


def grpo_reference(algorithm: str | None) -> dict[str, object]:
    """The options that make ``algorithm``'s config GRPO's with GRPO's defaults: its own default
    differences undone (PG-GRPO's shift-only advantages, Hard-Pair's zero KL weight). The reference
    of ``grad_cosine_vs_grpo``."""
    return {name: default(name, "GRPO") for name in ALGORITHM_DEFAULTS.get(algorithm or "GRPO", {})}


def defaults_for(algorithm: str | None = None) -> dict[str, object]:
    """Every option's default for ``algorithm`` (``None``: the family's)."""
    return {name: default(name, algorithm) for name in FIELDS}
