"""Every option of the GRPO family, defined once: default, symbol, meaning, source and the values it
accepts (STYLE habit 4).

``FIELDS`` is the one table. ``GroupAlgorithmConfig`` takes its attributes and their defaults from
it and checks every value against its entry (``core.checks.check_field``; only the rules that tie
options together are written by hand), the math functions take their keyword defaults from it
(:func:`default`), and ``docs/algorithms.md`` lists it. ``ALGORITHM_DEFAULTS`` holds the few defaults in which one
algorithm differs from the family (the papers' own choices); subclasses never set defaults of their
own. Sources name the papers by the keys of ``docs/references.md``; "chosen" marks a value the
papers leave open, "ours" a departure of this project (documented in ``docs/algorithms.md``).

Pure Python: the CLI, the math layer and the RLlib config all read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pairgrpo_rllib.core import names


@dataclass(frozen=True)
class Field:
    """One option. ``kind`` and the rest say which values ``core.checks.check_field`` accepts (the
    configs' ``validate()`` checks every entry with it): "int" | "float" (finite) | "bool" |
    "choice"; ``[low, high]`` (``None``: unbounded; an ``_open`` end excludes the bound);
    ``none_ok``: None allowed; ``choices``: the values of a "choice", or special values a number
    may take instead ("auto"); ``fix``: a note the generated message cannot say."""

    default: object
    meaning: str
    source: str
    symbol: str = ""
    rllib: bool = False  # an RLlib AlgorithmConfig attribute whose default the family changes
    kind: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none_ok: bool = False
    choices: tuple = ()
    fix: str = ""


# Pair-GRPO §5 lists its hyperparameters, but the values were lost from the text we have; these are
# the values of a public reading of the paper (docs/algorithms.md, "Hard-Pair-GRPO").
PAPER_HP = "Pair-GRPO §5 (public reading)"

FIELDS: dict[str, Field] = {
    # --- groups --------------------------------------------------------------------------------
    "group_size": Field(
        8,
        "members per group",
        "chosen (the papers give no G for MuJoCo)",
        "G",
        kind="int",
        low=2,
        high=1024,
        fix="a group needs at least 2 members",
    ),
    "group_mode": Field(
        "reset",
        "reset: G whole episodes from one reset seed | branch: G H-step segments from a state snapshot",
        "ours (how a MuJoCo group shares its start state)",
        kind="choice",
        choices=names.GROUP_MODES,
    ),
    "segment_length": Field(
        None,
        "steps per member; None = the episode limit (reset mode)",
        "ours",
        "H",
        kind="int",
        low=1,
        none_ok=True,
        fix="None = whole episodes",
    ),
    "pair_source": Field(
        "online",
        "online: pairs labelled inside the freshly sampled group | dataset: the preference data set's "
        "chosen/rejected pairs, each a group of two (LLM runs: env_config.pairs; pi_old's log-probs "
        "computed by the learner when the iteration begins)",
        "spec (pair_source)",
        kind="choice",
        choices=names.PAIR_SOURCES,
    ),
    "credit": Field(
        "sequence",
        "sequence: one advantage per member | step: each member's reward-to-go compared across the "
        "group at every time index",
        "sequence: GRPO; step: ours (a time-indexed baseline, not process supervision)",
        kind="choice",
        choices=names.CREDITS,
    ),
    "credit_gamma": Field(
        1.0,
        "discount of the reward-to-go within a member (credit='step')",
        "ours",
        kind="float",
        low=0,
        high=1,
        low_open=True,
        fix="1 = undiscounted",
    ),
    "lookahead": Field(
        0,
        "steps each member runs past its H-step segment (branch mode, credit='step'): their discounted "
        "return extends the reward-to-go of the segment's steps, which alone are trained on; 0 = cut at H",
        "ours (against the reward-to-go's truncation at the segment end)",
        "L",
        kind="int",
        low=0,
        fix="0 = none; at most the episode limit",
    ),
    "sample_seed": Field(
        0,
        "extra seed of the sampling streams (start states, action noise, labels); each stream derives from "
        "the trial's seed (the YAML's seeds), this value and its purpose",
        "ours",
        kind="int",
        low=0,
        high=2**31 - 1,
    ),
    # --- advantages and preferences ------------------------------------------------------------
    "advantage_norm": Field(
        "mean_std",
        "GRPO advantage: mean_std | mean (shift only) | none (raw scores)",
        "mean_std: GRPO-objective eq. 2; mean: Dr. GRPO",
        kind="choice",
        choices=names.ADVANTAGE_NORMS,
    ),
    "preference_oracle": Field(
        "deterministic",
        "deterministic: sign of the score difference | bradley_terry: noisy labels",
        "bradley_terry: Christiano 2017",
        kind="choice",
        choices=names.SCORE_ORACLES,
    ),
    "preference_temperature": Field(
        1.0,
        "temperature of the Bradley-Terry labeller, in score units",
        "chosen",
        "tau",
        kind="float",
        low=0,
        low_open=True,
    ),
    "pairs": Field(
        "all",
        "which pairs of a group give advantages: all | best_worst | disjoint",
        "chosen",
        kind="choice",
        choices=names.PAIR_MODES,
    ),
    # --- clipped surrogate and KL --------------------------------------------------------------
    "clip_low": Field(
        0.2,
        "lower clip of the ratio is 1 - clip_low",
        "PPO / GRPO",
        "epsilon_low",
        kind="float",
        low=0,
        high=1,
        high_open=True,
        fix="the ratio's lower clip is 1 - clip_low",
    ),
    "clip_high": Field(
        0.2,
        "upper clip of the ratio is 1 + clip_high",
        "PPO / GRPO (DAPO raises it)",
        "epsilon_high",
        kind="float",
        low=0,
        low_open=True,
    ),
    "loss_agg": Field(
        "seq_mean_token_mean",
        "seq_mean_token_mean | token_mean | seq_mean_token_sum_norm",
        "DeepSeekMath | DAPO | Dr. GRPO",
        kind="choice",
        choices=names.LOSS_AGGS,
    ),
    "kl_coeff": Field(0.04, "weight of the KL penalty", "DeepSeekMath", "beta", kind="float", low=0),
    "kl_estimator": Field(
        "k3",
        "k1 | k2 | k3 | k3_is | analytic (the exact per-state KL of an explicit action distribution)",
        "k3: GRPO-objective (GRPO's own); analytic: ours, set by the MuJoCo configs",
        kind="choice",
        choices=names.CONFIG_KL_ESTIMATORS,
    ),
    "kl_anchor": Field(
        "ref",
        "ref: frozen initial policy | old: the previous iteration's policy",
        "ref: GRPO; old: Pair-GRPO",
        kind="choice",
        choices=names.KL_ANCHORS,
    ),
    "kl_in_reward": Field(
        False,
        "subtract beta * sum_t k1 from the scores instead of a loss penalty",
        "spec option",
        kind="bool",
    ),
    "log_ratio_clamp": Field(
        20.0,
        "clamp of the KL log-ratios before exp (None: no clamp)",
        "ours (k3 on 6-D Gaussians overflows)",
        kind="float",
        low=0,
        low_open=True,
        none_ok=True,
        fix="20 is safe",
    ),
    # --- PG-GRPO -------------------------------------------------------------------------------
    "beta_pg": Field(
        0.1,
        "preference-ratio temperature of PG-GRPO",
        "chosen (DPO's usual temperature)",
        "beta_pg",
        kind="float",
        low=0,
        low_open=True,
    ),
    # --- Hard-Pair-GRPO ------------------------------------------------------------------------
    "length_norm": Field(
        True,
        "sequence log-prob as the mean (not the sum) of step log-probs in shares and pair_accuracy",
        "chosen",
        kind="bool",
    ),
    "delta0": Field(
        0.02,
        "Hard-Pair step size at iteration 0",
        PAPER_HP,
        "delta_0",
        kind="float",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
    ),
    "delta_gamma": Field(
        0.98,
        "decay of delta_t = delta_0 * gamma^t",
        PAPER_HP,
        "gamma",
        kind="float",
        low=0,
        high=1,
        low_open=True,
    ),
    "delta_decay": Field(
        True,
        "False keeps delta_t = delta_0 (the ablation 'fixed delta')",
        "Pair-GRPO §6.1.4 (ablation)",
        kind="bool",
    ),
    "eps_p": Field(
        1e-4,
        "smallest probability a Hard-Pair loser keeps",
        "chosen",
        "epsilon_p",
        kind="float",
        low=0,
        high=0.5,
        low_open=True,
        high_open=True,
    ),
    "trust_region": Field(
        True,
        "False drops the hinge (the ablation 'no trust region')",
        "Pair-GRPO §6.1.4 (ablation)",
        kind="bool",
    ),
    "trust_region_alpha": Field(
        0.5, "weight of the trust-region hinge", PAPER_HP, "alpha", kind="float", low=0
    ),
    "trust_region_beta": Field(
        0.01, "threshold of the hinge on KL(pi_theta || pi_old)", PAPER_HP, "beta_tr", kind="float", low=0
    ),
    "tis_cap": Field(
        None,
        "truncated importance sampling (LLM runs): the learner recomputes pi_old's log-probs, uses them in "
        "the ratio, and multiplies the surrogate per token by min(exp(logp_learner - logp_sampler), C); "
        "None = off (the sampler's log-probs are pi_old)",
        "ours (the correction TRL and veRL apply to vLLM samples; off by default: fp32 on CPU agrees to 1e-5)",
        "C",
        kind="float",
        low=0,
        low_open=True,
        none_ok=True,
        fix="2 or 3 as TRL and veRL; None = off",
    ),
    # --- diagnostics and evaluation ------------------------------------------------------------
    "grad_cosine_every": Field(
        10, "log grad_cosine_vs_grpo every N iterations (0 = never)", "ours", kind="int", low=0
    ),
    "eval_interval": Field(
        10, "deterministic evaluation every N iterations (0 = never)", "ours", kind="int", low=0
    ),
    "eval_episodes": Field(2, "episodes per evaluation", "ours", kind="int", low=0),
    # --- RLlib settings whose defaults the family changes --------------------------------------
    "lr": Field(
        3e-4,
        "Adam learning rate (or RLlib's schedule [[timestep, value], ...] of such rates)",
        "MuJoCo convention (CleanRL, SB3)",
        rllib=True,
        kind="float",
        low=0,
        high=1,
        low_open=True,
    ),
    "num_epochs": Field(
        10,
        "passes over each batch",
        "MuJoCo convention (CleanRL, SB3)",
        rllib=True,
        kind="int",
        low=1,
        high=10_000,
    ),
    "minibatch_size": Field(
        None,
        "groups per minibatch; None = the whole batch",
        "ours",
        rllib=True,
        kind="int",
        low=1,
        high=10**9,
        none_ok=True,
    ),
    "train_batch_size_per_learner": Field(
        8000, "env steps per iteration and learner", "ours", rllib=True, kind="int", low=1, high=10**9
    ),
    "grad_clip": Field(
        0.5,
        "global-norm gradient clip",
        "MuJoCo convention (CleanRL, SB3)",
        rllib=True,
        kind="float",
        low=0,
        high=1e9,
        low_open=True,
        none_ok=True,
    ),
    "grad_clip_by": Field(
        "global_norm",
        "how grad_clip applies",
        "RLlib",
        rllib=True,
        kind="choice",
        choices=("value", "norm", "global_norm"),  # RLlib's
    ),
    "rollout_fragment_length": Field(
        "auto",
        "RLlib's default 200 oversamples group batches",
        "RLlib",
        rllib=True,
        kind="int",
        low=1,
        choices=("auto",),
    ),
    "num_env_runners": Field(
        0,
        "remote env runners (0 = sample on the local runner)",
        "ours",
        rllib=True,
        kind="int",
        low=0,
        high=4096,
    ),
}

# The offline baselines on preference pairs (their losses are in ``core.losses``).
BASELINE_FIELDS: dict[str, Field] = {
    "dpo_beta": Field(
        0.1,
        "temperature of DPO's implicit reward",
        "DPO",
        "beta",
        kind="float",
        low=0,
        high=1e6,
        high_open=True,
    ),
    "orpo_lambda": Field(
        0.1,
        "weight of ORPO's odds-ratio term",
        "ORPO",
        "lambda",
        kind="float",
        low=0,
        high=1e6,
        high_open=True,
    ),
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

# ---- LLM runs: env_config (envs/llm/settings.py builds the typed LLMSettings from these) ----------
# The data sources and judges are nested settings of their own (DataSource; pairgrpo_rllib.judges).
LLM_FIELDS: dict[str, Field] = {
    "prompts": Field(None, "the prompt source(s) sampled from (required)", "ours"),
    "pairs": Field(None, "preference pairs (DPO, ORPO, pair_source='dataset' train on them)", "ours"),
    "eval_prompts": Field(None, "held-out prompts of the periodic evaluation", "ours"),
    "scorer": Field(None, "the judge that scores (or labels) the sampled groups", "ours"),
    "eval_scorer": Field(None, "the periodic evaluation's judge (None: the scorer)", "ours"),
    "engine": Field(
        "transformers", "rollout engine of the rollout actors", "ours", kind="choice", choices=names.LLM_ENGINES
    ),
    "max_prompt_tokens": Field(
        64, "prompts are left-padded to P tokens; longer ones are dropped", "chosen", "P",
        kind="int", low=1, high=1 << 20,
    ),
    "max_new_tokens": Field(
        32, "responses are cut at T tokens", "chosen", "T", kind="int", low=1, high=1 << 20
    ),
    "weight_sync": Field(
        "object_store", "how the rollout actors get new weights (WEIGHT_SYNC_FIELDS)", "ours"
    ),
}  # fmt: skip
WEIGHT_SYNC_FIELDS: dict[str, Field] = {
    "mode": Field(
        "object_store",
        "object_store: RLlib's sync through the driver | collective: learner 0 broadcasts to the actors",
        "ours", kind="choice", choices=names.WEIGHT_SYNC_MODES,
    ),
    "backend": Field(
        "auto", "process-group backend of the broadcast (auto: nccl for CUDA weights, else gloo)", "ours",
        kind="choice", choices=names.WEIGHT_SYNC_BACKENDS,
    ),
    "timeout_s": Field(600, "seconds a broadcast may wait", "ours", kind="float", low=1, high=86_400),
}  # fmt: skip
# rl_module.model_config of an LLM policy (algorithms/common/lm_module.py)
LM_FIELDS: dict[str, Field] = {
    "name_or_path": Field(None, "the policy: a local model folder or a hub name (required)", "ours"),
    "dtype": Field("float32", "weights' dtype", "ours", kind="choice", choices=names.LLM_DTYPES),
    "trust_remote_code": Field(False, "let transformers run the model's own code", "transformers", kind="bool"),
    "temperature": Field(
        1.0, "sampling temperature (1.0 samples the model as is)", "chosen", kind="float",
        low=0, high=10, low_open=True,
    ),
    "lora": Field(None, "train LoRA adapters only (LORA_FIELDS; peft); None: full fine-tuning", "ours"),
}  # fmt: skip
LORA_FIELDS: dict[str, Field] = {
    "r": Field(8, "adapter rank", "peft's usual", kind="int", low=1, high=1 << 16),
    "alpha": Field(16, "adapter scale numerator (scale alpha / r)", "peft's usual", kind="float", low=0, low_open=True),
    "dropout": Field(0.0, "adapter dropout", "peft", kind="float", low=0, high=1, high_open=True),
    "target_modules": Field(("q_proj", "k_proj", "v_proj", "o_proj"), "modules that get adapters", "chosen"),
}  # fmt: skip

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
