"""``GroupAlgorithmConfig``: the RLlib config of the GRPO family, built from one field table.

Every option, its default, symbol, meaning and source is in ``pairgrpo_rllib.core.defaults``
(``FIELDS``, and ``ALGORITHM_DEFAULTS`` for the few defaults in which one algorithm differs); this
class only turns that table into config attributes and checks values. ``validate()`` rejects bad
values with a message naming the field, the value and the fix, before any Ray actor starts.

Batch unit: a *group* of G members from one start state; a member is a sequence of up to H steps
(``segment_length``; the whole episode in ``reset`` mode). An iteration samples
``train_batch_size_per_learner / (G * H)`` groups; ``minibatch_size`` counts groups too, so a group
is never split between minibatches or learners.
"""

from __future__ import annotations

import math

import gymnasium as gym
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.defaults import FAMILY_OPTIONS, FIELDS, defaults_for


class GroupAlgorithmConfig(AlgorithmConfig):
    """Config of the GRPO family. Set family options with ``.training(group_size=..., ...)``.

    A subclass names its algorithm (``ALGORITHM``, the registry's name) and nothing else: its
    defaults come from ``core.defaults.ALGORITHM_DEFAULTS``.
    """

    ALGORITHM: str | None = None
    OFFLINE = False  # the dataset-pair baselines (DPO, ORPO) need no scorer and sample nothing

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class)
        for name, value in defaults_for(self.ALGORITHM).items():
            setattr(self, name, value)
        from pairgrpo_rllib.envs.group_runner import GroupEnvRunner

        self.env_runner_cls = GroupEnvRunner  # groups from shared start states

    @staticmethod
    def experiment_section(section: str, options: dict) -> dict:
        """An experiment YAML's builder section as this config takes it (the family: unchanged)."""
        return options

    @staticmethod
    def extra_options(section: str) -> set[str]:
        """Keys a builder section accepts beyond its method's signature: the family's options."""
        return set(FAMILY_OPTIONS) if section == "training" else set()

    # ---- builder ---------------------------------------------------------------------------
    def training(self, **kwargs):
        own = {k: kwargs.pop(k) for k in list(kwargs) if k in FAMILY_OPTIONS}
        super().training(**kwargs)
        for k, v in own.items():
            if v is not NotProvided:
                setattr(self, k, v)
        return self

    def _pick_runner(self) -> None:
        """The LLM rollout actor for ``env: pairgrpo/llm``, the group runner otherwise (unless the
        user chose a runner class of their own). Called by ``validate()``, which RLlib runs before
        it builds the env runners."""
        from pairgrpo_rllib.envs.group_runner import GroupEnvRunner
        from pairgrpo_rllib.envs.llm.runner import LLMGroupRunner

        if self.is_llm and self.env_runner_cls is GroupEnvRunner:
            self.env_runner_cls = LLMGroupRunner
        elif not self.is_llm and self.env_runner_cls is LLMGroupRunner:
            self.env_runner_cls = GroupEnvRunner

    @property
    def needs_scorer(self) -> bool:
        """False where training reads the data set's pairs (DPO, ORPO, ``pair_source='dataset'``)."""
        return not (self.OFFLINE or self.pair_source == "dataset")

    @property
    def is_llm(self) -> bool:
        """True for a causal-LM run (``env: pairgrpo/llm``)."""
        return self.env == names.LLM_ENV

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        if self.is_llm:
            from pairgrpo_rllib.algorithms.common.lm_module import CausalLMModule

            return RLModuleSpec(module_class=CausalLMModule)
        from pairgrpo_rllib.algorithms.common.rl_module import GroupPolicyModule

        return RLModuleSpec(module_class=GroupPolicyModule)

    def get_default_learner_class(self):
        from pairgrpo_rllib.algorithms.common.learner import GroupLearner

        return GroupLearner

    # ---- derived quantities ------------------------------------------------------------------
    def episode_limit(self) -> int:
        """The environment's step limit (``max_episode_steps``), from its registration (for a
        wrapper id such as ``pairgrpo/CrashOnce-v0``, from the wrapped ``env_config.inner``)."""
        env_config = self.env_config if isinstance(self.env_config, dict) else {}
        limit = env_config.get("max_episode_steps")
        for env_id in (self.env, env_config.get("inner")):
            if limit is None and isinstance(env_id, str):
                try:
                    limit = gym.spec(env_id).max_episode_steps
                except gym.error.Error:
                    limit = None
        return int(limit) if limit else 1000

    def member_length(self) -> int:
        """H: steps per group member (an LLM run: ``max_new_tokens``, the response width)."""
        if self.is_llm:
            from pairgrpo_rllib.envs.llm.settings import DEFAULTS

            return int((self.env_config or {}).get("max_new_tokens", DEFAULTS["max_new_tokens"]))
        return int(self.segment_length) if self.segment_length else self.episode_limit()

    def groups_per_iteration(self) -> int:
        return (
            self.train_batch_size_per_learner
            * max(1, self.num_learners)
            // (self.group_size * self.member_length())
        )

    # ---- validation --------------------------------------------------------------------------
    def validate(self) -> None:
        validate_rllib_settings(self)  # first: RLlib's own validate() may trip over a bad value
        if self.is_llm:
            validate_llm(self)
        else:
            validate_model_config(self.model_config)
        self._pick_runner()
        validate_family(self)
        super().validate()


def _fail(field: str, value, fix: str):
    raise ValueError(f"{field}={value!r} is invalid: {fix}")


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_number(cfg, name: str, low: float, high: float, *, low_open=False, high_open=False, none_ok=False):
    v = getattr(cfg, name, None)
    if v is None and none_ok:
        return
    ok = _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        extra = " or null" if none_ok else ""
        _fail(name, v, f"use a finite number in {lo}{low:g}, {high:g}{hi}{extra}")


def check_integer(cfg, name: str, low: int, high: int, *, none_ok=False):
    v = getattr(cfg, name, None)
    if v is None and none_ok:
        return
    if not _is_int(v) or not low <= v <= high:
        _fail(name, v, f"use an integer in [{low}, {high}]" + (" or null" if none_ok else ""))


def validate_rllib_settings(cfg: AlgorithmConfig) -> None:
    """RLlib settings every algorithm here uses (PPO included), checked before RLlib sees them:
    RLlib accepts a negative, infinite or NaN learning rate and fails iterations later."""
    lr = cfg.lr
    if isinstance(lr, list):  # RLlib's schedule: [[timestep, value], ...]
        if not lr or not all(
            isinstance(x, list | tuple) and len(x) == 2 and all(map(_is_number, x)) for x in lr
        ):
            _fail("lr", lr, "a schedule is a list of [timestep, value] pairs of finite numbers")
        values = [x[1] for x in lr]
    else:
        values = [lr]
    for v in values:
        if not _is_number(v) or not 0 < v <= 1:
            _fail("lr", lr, "use a finite learning rate in (0, 1], e.g. 3e-4")
    check_integer(cfg, "num_epochs", 1, 10_000)
    check_integer(cfg, "train_batch_size_per_learner", 1, 10**9)
    check_integer(cfg, "minibatch_size", 1, 10**9, none_ok=True)
    check_number(cfg, "grad_clip", 0, 1e9, low_open=True, none_ok=True)
    check_number(cfg, "gamma", 0, 1)
    check_integer(cfg, "num_env_runners", 0, 4096)
    check_integer(cfg, "num_envs_per_env_runner", 1, 4096)
    check_integer(cfg, "num_learners", 0, 4096)


def validate_model_config(mc: dict) -> None:
    """The ``rl_module.model_config`` keys this project reads (RLlib's PPO takes the first two too)."""
    hiddens = mc.get("fcnet_hiddens", [])
    if not isinstance(hiddens, list | tuple) or not all(_is_int(h) and 1 <= h <= 65536 for h in hiddens):
        _fail(
            "model_config.fcnet_hiddens",
            hiddens,
            "use a list of layer widths, integers in [1, 65536], e.g. [64, 64]",
        )
    act = mc.get("fcnet_activation", "tanh")
    if act not in ("tanh", "relu"):
        _fail("model_config.fcnet_activation", act, "use 'tanh' or 'relu'")
    log_std = mc.get("initial_log_std", -0.5)
    if not _is_number(log_std) or not -20 <= log_std <= 5:
        _fail("model_config.initial_log_std", log_std, "use a number in [-20, 5] (-0.5 is the default)")
    if not isinstance(mc.get("normalize_obs", False), bool):
        _fail("model_config.normalize_obs", mc.get("normalize_obs"), "use true or false")
    probs = mc.get("init_action_probs")
    if probs is not None and (
        not isinstance(probs, list | tuple)
        or not probs
        or not all(_is_number(p) and 0 < p < 1 for p in probs)
        or abs(sum(probs) - 1) > 1e-6
    ):
        _fail(
            "model_config.init_action_probs",
            probs,
            "use probabilities in (0, 1) that sum to 1, e.g. [0.25, 0.75]",
        )


def validate_llm(cfg: GroupAlgorithmConfig) -> None:
    """An LLM run: its env_config and model_config (envs/llm/settings.py), and the family options
    that only make sense for control tasks."""
    from pairgrpo_rllib.envs.llm.models import LM_MODEL_DEFAULTS
    from pairgrpo_rllib.envs.llm.settings import llm_settings

    unknown = set(cfg.model_config or {}) - set(LM_MODEL_DEFAULTS)
    if unknown:
        k = sorted(unknown)[0]
        _fail(f"model_config.{k}", cfg.model_config[k], f"an LLM policy takes {', '.join(LM_MODEL_DEFAULTS)}")
    settings = llm_settings(cfg.env_config, cfg.model_config, needs_scorer=cfg.needs_scorer)
    if cfg.pair_source == "dataset" and not cfg.OFFLINE:
        if (cfg.env_config or {}).get("pairs") is None:
            _fail(
                "env_config.pairs",
                None,
                "pair_source='dataset' trains on the data set's pairs: pairs: {path: ...}",
            )
        if cfg.group_size != 2:
            _fail(
                "group_size",
                cfg.group_size,
                "with pair_source='dataset' a group is one pair: use group_size=2",
            )
    collective = settings["weight_sync"]["mode"] == "collective"
    if collective and cfg.num_env_runners == 0 and not cfg.in_evaluation:
        _fail(
            "env_config.weight_sync",
            "collective",
            "the collective broadcast feeds remote rollout actors; with num_env_runners=0 the runner "
            "shares the driver's process: use weight_sync: object_store, or num_env_runners >= 1",
        )
    if cfg.tis_cap is not None and cfg.ALGORITHM == "Hard-Pair-GRPO":
        _fail(
            "tis_cap",
            cfg.tis_cap,
            "Hard-Pair-GRPO fits a target distribution, it has no surrogate to weight; use None",
        )
    eval_kind = (settings["eval_scorer"] or {}).get("kind")
    if cfg.eval_interval and eval_kind in ("annotator", "judge"):
        _fail(
            "env_config.eval_scorer",
            settings["eval_scorer"],
            "evaluation averages scores; a pairwise scorer gives labels. Set eval_scorer: {kind: truth} "
            "(synthetic task) or a reward model, or eval_interval=0",
        )
    if cfg.eval_interval and settings["eval_scorer"] is None:
        _fail(
            "env_config.eval_scorer",
            None,
            "evaluation needs a scorer: {kind: truth} or a reward model, or eval_interval=0",
        )
    if cfg.credit != "sequence":
        _fail("credit", cfg.credit, "an LLM response is scored as a whole; use credit='sequence'")
    if cfg.kl_estimator == "analytic":
        _fail(
            "kl_estimator",
            "analytic",
            "a causal LM uses a sampled estimator; use k3 (the default), k1, k2 or k3_is",
        )
    if cfg.group_mode != "reset":
        _fail(
            "group_mode",
            cfg.group_mode,
            "an LLM group is G responses to one prompt; leave group_mode at 'reset'",
        )


def validate_family(cfg: GroupAlgorithmConfig) -> None:
    """Reject bad family options; every message names the field, the value and the fix."""
    for name, field in FIELDS.items():
        # Types from the table: a number where the default is one, a bool where it is a bool.
        v, d = getattr(cfg, name), field.default
        if field.rllib:
            continue
        if isinstance(d, bool) and not isinstance(v, bool):
            _fail(name, v, "use true or false")
        if _is_number(d) and not (v is None and name == "log_ratio_clamp") and not _is_number(v):
            _fail(name, v, "use a finite number")
    choices = {
        "group_mode": names.GROUP_MODES,
        "credit": names.CREDITS,
        "pair_source": names.PAIR_SOURCES,
        "advantage_norm": names.ADVANTAGE_NORMS,
        "kl_estimator": names.CONFIG_KL_ESTIMATORS,
        "kl_anchor": names.KL_ANCHORS,
        "loss_agg": names.LOSS_AGGS,
        "preference_oracle": names.SCORE_ORACLES,
        "pairs": names.PAIR_MODES,
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            _fail(name, getattr(cfg, name), f"use one of {', '.join(map(repr, allowed))}")
    g = cfg.group_size
    if not isinstance(g, int) or isinstance(g, bool) or not 2 <= g <= 1024:
        _fail("group_size", g, "a group needs at least 2 members; use an integer in [2, 1024] (default 8)")
    for name in ("kl_coeff", "preference_temperature", "trust_region_alpha", "trust_region_beta", "beta_pg"):
        v = getattr(cfg, name)
        if not isinstance(v, int | float) or v < 0 or v != v:
            _fail(name, v, "use a number >= 0")
    for name in ("preference_temperature", "beta_pg"):
        if getattr(cfg, name) <= 0:
            _fail(name, getattr(cfg, name), "use a number > 0")
    if not isinstance(cfg.credit_gamma, int | float) or not 0 < cfg.credit_gamma <= 1:
        _fail("credit_gamma", cfg.credit_gamma, "use a discount 0 < credit_gamma <= 1 (1 = undiscounted)")
    if cfg.credit == "step" and cfg.kl_in_reward:
        _fail(
            "kl_in_reward",
            True,
            "it is implemented for credit='sequence' only; with credit='step' keep the KL in the loss "
            "(kl_in_reward=False)",
        )
    if not 0 <= cfg.clip_low < 1:
        _fail("clip_low", cfg.clip_low, "use 0 <= clip_low < 1 (the ratio's lower clip is 1 - clip_low)")
    if not cfg.clip_high > 0:
        _fail("clip_high", cfg.clip_high, "use clip_high > 0")
    if cfg.pair_source == "dataset" and not cfg.is_llm:
        _fail(
            "pair_source",
            "dataset",
            "dataset pairs are chosen/rejected responses of an LLM run; use 'online'",
        )
    if cfg.tis_cap is not None:
        if not _is_number(cfg.tis_cap) or not cfg.tis_cap > 0:
            _fail("tis_cap", cfg.tis_cap, "use a positive cap (2 or 3 as TRL and veRL), or None for off")
        if not cfg.is_llm:
            _fail(
                "tis_cap",
                cfg.tis_cap,
                "it corrects an LLM sampler's log-probs; a control task's runner shares the learner's numerics (use None)",
            )
    if cfg.log_ratio_clamp is not None and not cfg.log_ratio_clamp > 0:
        _fail("log_ratio_clamp", cfg.log_ratio_clamp, "use a positive clamp (20 is safe) or None")
    if not 0 < cfg.delta0 < 1:
        _fail("delta0", cfg.delta0, "use 0 < delta0 < 1 (default 0.02)")
    if not 0 < cfg.delta_gamma <= 1:
        _fail("delta_gamma", cfg.delta_gamma, "use 0 < delta_gamma <= 1 (default 0.98)")
    if not 0 < cfg.eps_p < 0.5:
        _fail("eps_p", cfg.eps_p, "use 0 < eps_p < 0.5 (default 1e-4)")
    limit = cfg.episode_limit()
    if cfg.segment_length is not None:
        h = cfg.segment_length
        if not isinstance(h, int) or h < 1:
            _fail("segment_length", h, "use a positive integer H, or None for whole episodes")
        if h > limit:
            _fail("segment_length", h, f"H is longer than the episode limit {limit}; use H <= {limit}")
    if cfg.group_mode == "branch" and cfg.segment_length is None:
        _fail("segment_length", None, "group_mode='branch' needs a segment length H (e.g. 100)")
    look = cfg.lookahead
    if not _is_int(look) or not 0 <= look <= limit:
        _fail("lookahead", look, f"use an integer number of steps L in [0, {limit}] (0 = none)")
    if look and (cfg.group_mode != "branch" or cfg.credit != "step"):
        _fail(
            "lookahead",
            look,
            "it extends the per-step reward-to-go past a branch segment; use it with group_mode='branch' "
            f"and credit='step' (now {cfg.group_mode!r}, {cfg.credit!r}), or set lookahead=0",
        )
    steps_per_group = g * cfg.member_length()
    total = cfg.train_batch_size_per_learner
    if total % steps_per_group:
        _fail(
            "train_batch_size_per_learner",
            total,
            f"it must be a multiple of group_size * H = {g} * {cfg.member_length()} = {steps_per_group}",
        )
    if cfg.minibatch_size is not None:
        groups = total // steps_per_group
        if not isinstance(cfg.minibatch_size, int) or cfg.minibatch_size < 1 or groups % cfg.minibatch_size:
            _fail(
                "minibatch_size",
                cfg.minibatch_size,
                f"counted in groups; use a divisor of the {groups} groups per batch, or None",
            )
    for name in ("grad_cosine_every", "eval_interval", "eval_episodes"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or v < 0:
            _fail(name, v, "use an integer >= 0")
