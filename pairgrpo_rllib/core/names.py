"""Every name shared between layers: option values, batch columns, metric keys and result keys.

One vocabulary (STYLE habit 9): a Tune result of GRPO and one of Hard-Pair-GRPO carry the same
metric names, so that tables and plots line up without renaming; the env runner, the driver, the
learner and the report read the same column and key constants from here. No imports: the CLI reads
option values from here without importing torch.
"""

# --- option values (checked by the math functions and by GroupAlgorithmConfig.validate) --------
ADVANTAGE_NORMS = ("mean_std", "mean", "none")
PAIR_MODES = ("all", "best_worst", "disjoint")
# The oracles that label a group from its scores (a ``judge`` labels from the responses themselves:
# ``preferences.judge_preference_matrix``).
SCORE_ORACLES = ("deterministic", "bradley_terry")
KL_ESTIMATORS = ("k1", "k2", "k3", "k3_is")
# ``analytic``: the exact per-state KL of explicit action distributions (ours; see docs/algorithms.md).
CONFIG_KL_ESTIMATORS = ("analytic", *KL_ESTIMATORS)
LOSS_AGGS = ("seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm")
KL_ANCHORS = ("ref", "old")
GROUP_MODES = ("reset", "branch")
CREDITS = ("sequence", "step")
PAIR_SOURCES = ("online", "dataset")
# LLM runs (core.defaults.LLM_FIELDS)
LLM_ENGINES = ("transformers", "vllm")
LLM_DTYPES = ("float32", "bfloat16", "float16")
WEIGHT_SYNC_MODES = ("object_store", "collective")
WEIGHT_SYNC_BACKENDS = ("auto", "gloo", "nccl")
# The environment id of an LLM run (its prompts and scorer are the env_config; envs/llm/settings.py).
LLM_ENV = "pairgrpo/llm"

# --- group batch columns -------------------------------------------------------------------------
# Every column has leading dims (N, G, T) (N groups, G members, T padded steps) or (N, G):
#
#   column             shape                meaning
#   obs                (N, G, T, obs_dim)   observations (control tasks)
#   prompt_ids         (N, G, P)            an LLM batch: left-padded prompt token ids (P fixed)
#   prompt_mask        (N, G, P)            an LLM batch: 1 on real prompt tokens, 0 on left padding
#   actions            (N, G, T[, act_dim]) actions (an LLM batch: response token ids, T fixed)
#   action_logp        (N, G, T)            log pi_old(a_t | s_t), recorded when sampling
#   old_dist_inputs    (N, G, T, D)         pi_old's distribution parameters (explicit distributions)
#   loss_mask          (N, G, T)            1.0 on real steps (response tokens), 0.0 on padding
#   rewards            (N, G, T)            per-step rewards (the driver's; not sent to learners)
#   scores             (N, G)               r_i: member return / reward-model score (oracle input)
#   tail_returns       (N, G)               discounted return of the lookahead steps past the segment
#   advantages         (N, G) or (N, G, T)  A_i (per step with credit="step"), from the driver
#   grpo_advantages    like advantages      GRPO's advantages of the same batch (grad cosine only)
#   pairs              (N, P, 3)            (valid, winner, loser): whole-member preference pairs
#   hard_pairs         (N, K, P, 3)         Hard-Pair: the pairs it fits, (valid, winner, loser)
#   target_logp        (N, K, P, G)         Hard-Pair: log pi_tar(.|S) per pair
#
# K is the number of comparison units per group: 1 (credit="sequence") or T (credit="step", one
# unit per time index: the members' suffixes from step t). A batch row is a whole group, so RLlib's
# minibatching and sharding across learners never split a group.
OBS = "obs"
PROMPT_IDS = "prompt_ids"
PROMPT_MASK = "prompt_mask"
ACTIONS = "actions"
ACTION_LOGP = "action_logp"
OLD_DIST_INPUTS = "old_dist_inputs"
MASK = "loss_mask"
REWARDS = "rewards"
SCORES = "scores"
TAIL_RETURNS = "tail_returns"
ADVANTAGES = "advantages"
GRPO_ADVANTAGES = "grpo_advantages"
PAIRS = "pairs"
HARD_PAIRS = "hard_pairs"
TARGET_LOGP = "target_logp"
LABELS = "labels"  # (N, G, G) a pairwise scorer's labels in {-1, 0, +1} (the driver's; LLM runs)
LEARNER_OLD_LOGP = "learner_old_logp"  # (N, G, T) pi_old's log-probs recomputed by the learner (tis_cap)
IS_WEIGHTS = "is_weights"  # (N, G, T) truncated importance weights learner/sampler (tis_cap)
# Columns whose third axis is not time (never padded along T when groups are concatenated).
NOT_TIME_INDEXED = (PAIRS, HARD_PAIRS, TARGET_LOGP, PROMPT_IDS, PROMPT_MASK, LABELS)
# Sampled columns the driver keeps to itself (never sent to learners).
DRIVER_ONLY = (REWARDS, TAIL_RETURNS, LABELS)
# What a sampler returns beside the columns.
EPISODE_RETURNS = "episode_returns"
ENV_STEPS = "env_steps"
TRUNCATED_RESPONSES = "truncated_responses"
# sampler/learner agreement (LLM runs): per-sequence ratio exp(sum_t logp_learner - logp_sampler)
SAMPLER_RATIO_MIN = "sampler_ratio_min"
SAMPLER_RATIO_MEAN = "sampler_ratio_mean"
SAMPLER_RATIO_MAX = "sampler_ratio_max"
# wall time of an iteration's parts, seconds (sampling incl. scoring; the learner update; the weight
# sync to the runners and their engines)
TIME_SAMPLE_S = "time_sample_s"
TIME_UPDATE_S = "time_update_s"
TIME_WEIGHT_SYNC_S = "time_weight_sync_s"  # LLM samplers: responses cut at max_new_tokens

# --- module outputs ------------------------------------------------------------------------------
REF_DIST_INPUTS = "ref_action_dist_inputs"  # pi_ref's distribution inputs, learner-side only
TOKEN_LOGP = "token_logp"  # a causal LM's log-probs of the response tokens, (N*G, T)
REF_TOKEN_LOGP = "ref_token_logp"  # the reference LM's, (N*G, T), no gradient
TOKEN_ENTROPY = "token_entropy"  # per-token entropy of the policy, (N*G, T), no gradient

# --- metric keys: the stats of the losses and the learner (per module) ---------------------------
LOSS = "loss"
POLICY_LOSS = "policy_loss"
KL_REF = "kl_ref"
CLIP_FRACTION = "clip_fraction"
RATIO_MEAN = "ratio_mean"
FIT_KL = "fit_kl"
TRUST_REGION_KL = "trust_region_kl"
TRUST_REGION_PENALTY = "trust_region_penalty"
NUM_PAIRS = "num_pairs"
PAIR_ACCURACY = "pair_accuracy"
REWARD_MARGIN = "reward_margin"
NLL = "nll"
LOG_ODDS_RATIO = "log_odds_ratio"
ENTROPY = "entropy"
GRAD_NORM = "grad_norm"
NUM_MINIBATCH_UPDATES = "num_minibatch_updates"  # optimizer steps of the iteration
# Sums per learner update, so the driver keeps the exact grad-norm variance over a run.
GRAD_NORM_COUNT = "grad_norm_count"
GRAD_NORM_SUM = "grad_norm_sum"
GRAD_NORM_SQSUM = "grad_norm_sqsum"

# --- metric keys logged by the driver (GroupAlgorithm.training_step) -----------------------------
DELTA_T = "delta_t"
DELTA_MEAN = "delta_mean"
GRAD_COSINE_VS_GRPO = "grad_cosine_vs_grpo"
GRAD_NORM_VAR = "grad_norm_var"
# std / mean of grad_norm over the run: unchanged when every gradient is rescaled (smaller advantages)
GRAD_NORM_CV = "grad_norm_cv"
# mean KL(pi_new || pi_old) over the batch after the iteration's update: how far one update moved
KL_NEW_OLD = "kl_new_old"
KL_REF_STD = "kl_ref_std"
# std / mean of kl_ref over the run (scale-free, as GRAD_NORM_CV)
KL_REF_CV = "kl_ref_cv"
EVALUATION_RETURN = "evaluation_return_mean"
EVALUATION_STEPS = "evaluation_env_steps"

# --- result keys as the report and the progress lines read them (flattened with "/") -------------
RESULT_STEPS = "env_runners/num_env_steps_sampled_lifetime"
LLM_EVAL_FILE = "llm_eval.json"  # the LLM evaluation's numbers, per trial and per experiment
RESULT_TRAIN_RETURN = "env_runners/episode_return_mean"
# RLlib's own evaluation (PPO with an evaluation config) reports its return here.
RESULT_RLLIB_EVAL_RETURN = "evaluation/env_runners/episode_return_mean"
RESULT_EVAL_RETURNS = (EVALUATION_RETURN, RESULT_RLLIB_EVAL_RETURN)
RESULT_ITERATION = "training_iteration"
RESULT_TIME = "time_total_s"
RESULT_NODE_ID = "node_id"

# --- ``pairgrpo theory`` ---------------------------------------------------------------------------
THEORY_ALGORITHMS = ("grpo", "soft_pair_grpo", "hard_pair_grpo")
THEORY_MODES = ("exact", "sampled")
