"""Names shared by every algorithm: option values, batch columns and metric keys.

One vocabulary (STYLE.md habit 9): a Tune result of GRPO and one of Hard-Pair-GRPO carry the same
metric names, so that tables and plots line up without renaming.
"""

# --- option values (validated by the math functions and, later, by AlgorithmConfig.validate) ---
ADVANTAGE_NORMS = ("mean_std", "mean", "none")
PAIR_MODES = ("all", "best_worst", "disjoint")
PREFERENCE_ORACLES = ("deterministic", "bradley_terry", "judge")
KL_ESTIMATORS = ("k1", "k2", "k3", "k3_is")
LOSS_AGGS = ("seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm")
KL_ANCHORS = ("ref", "old")
PAIR_SOURCES = ("online", "dataset")

# --- metric keys returned in the `stats` dicts of the losses ---
LOSS = "loss"
POLICY_LOSS = "policy_loss"
KL_REF = "kl_ref"
KL_PENALTY = "kl_penalty"
CLIP_FRACTION = "clip_fraction"
RATIO_MEAN = "ratio_mean"
FIT_KL = "fit_kl"
TRUST_REGION_KL = "trust_region_kl"
TRUST_REGION_PENALTY = "trust_region_penalty"
DELTA_T = "delta_t"
DELTA_MEAN = "delta_mean"
NUM_PAIRS = "num_pairs"
PAIR_ACCURACY = "pair_accuracy"
REWARD_MARGIN = "reward_margin"
NLL = "nll"
LOG_ODDS_RATIO = "log_odds_ratio"
GRAD_NORM = "grad_norm"
GRAD_COSINE_VS_GRPO = "grad_cosine_vs_grpo"
ENTROPY = "entropy"

# --- `pairgrpo theory` (kept here so that the CLI parses its options without importing torch) ---
THEORY_ALGORITHMS = ("grpo", "soft_pair_grpo", "hard_pair_grpo")
THEORY_MODES = ("exact", "sampled")
