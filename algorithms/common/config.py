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

import gymnasium as gym
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from pairgrpo_rllib.algorithms.common.learner import GroupLearner
from pairgrpo_rllib.algorithms.common.lm_module import CausalLMModule
from pairgrpo_rllib.algorithms.common.rl_module import GroupPolicyModule
from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.checks import check_field, check_value, fail, is_int, is_number
from pairgrpo_rllib.core.defaults import FAMILY_OPTIONS, FIELDS, LLM_FIELDS, defaults_for
from pairgrpo_rllib.envs.group_runner import GroupEnvRunner
from pairgrpo_rllib.envs.llm.runner import LLMGroupRunner
from pairgrpo_rllib.envs.llm.settings import llm_settings
from pairgrpo_rllib.envs.resources import check_gpus
from pairgrpo_rllib.judges import KINDS


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

        self.env_runner_cls = GroupEnvRunner  # groups from shared start states
        # LLM runs: the typed settings, built by validate() (envs/llm/settings.py); and the paths an
        # earlier ``prepare`` stage of the same experiment will write (the checks accept them).
        self.llm = None
        self.promised_paths: frozenset = frozenset()

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

        if self.is_llm and self.env_runner_cls is GroupEnvRunner:
            self.env_runner_cls = LLMGroupRunner
        elif not self.is_llm and self.env_runner_cls is LLMGroupRunner:
            self.env_runner_cls = GroupEnvRunner

    @property
    def trains_on_pairs(self) -> bool:
        """True where training reads the data set's pairs (DPO, ORPO, ``pair_source='dataset'``): a
        group is one (chosen, rejected) pair, G = 2."""
        return self.OFFLINE or self.pair_source == "dataset"

    @property
    def needs_scorer(self) -> bool:
        """False where training reads the data set's pairs (:attr:`trains_on_pairs`)."""
        return not self.trains_on_pairs

    @property
    def is_llm(self) -> bool:
        """True for a causal-LM run (``env: pairgrpo/llm``)."""
        return self.env == names.LLM_ENV

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        if self.is_llm:

            return RLModuleSpec(module_class=CausalLMModule)

        return RLModuleSpec(module_class=GroupPolicyModule)

    def get_default_learner_class(self):

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
            return int((self.env_config or {}).get("max_new_tokens", LLM_FIELDS["max_new_tokens"].default))
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
        validate_gpus(self)
        if self.is_llm:
            validate_llm(self)
        else:
            validate_model_config(self.model_config)
        self._pick_runner()
        validate_family(self)
        super().validate()


# RLlib settings this project reads but whose defaults it keeps (so they have no entry in FIELDS)
RLLIB_RANGES: dict[str, dict] = {
    "gamma": {"kind": "float", "low": 0, "high": 1},
    "num_envs_per_env_runner": {"kind": "int", "low": 1, "high": 4096},
    "num_learners": {"kind": "int", "low": 0, "high": 4096},
}


def validate_rllib_settings(cfg: AlgorithmConfig) -> None:
    """RLlib settings every algorithm here uses (PPO included), checked before RLlib sees them:
    RLlib accepts a negative, infinite or NaN learning rate and fails iterations later."""
    check_ranges(cfg, RLLIB_RANGES)  # first: train_batch_size_per_learner may divide by num_learners
    for name, field in FIELDS.items():
        if not field.rllib:
            continue
        value = getattr(cfg, name)
        if name == "lr" and isinstance(value, list):  # RLlib's schedule: [[timestep, value], ...]
            if not value or not all(
                isinstance(x, list | tuple) and len(x) == 2 and all(map(is_number, x)) for x in value
            ):
                fail("lr", value, "a schedule is a list of [timestep, value] pairs of finite numbers")
            for _, rate in value:
                check_field("lr", field, rate)
        else:
            check_field(name, field, value)


def validate_gpus(cfg: AlgorithmConfig) -> None:
    """The learners' and rollout actors' GPUs against those available (``envs.resources``: the
    rule for counting them before Ray starts)."""
    if cfg._fake_gpus:
        return
    learners = (cfg.num_gpus_per_learner or 0) * max(1, cfg.num_learners)
    runners = (cfg.num_gpus_per_env_runner or 0) * cfg.num_env_runners
    if learners:
        check_gpus("num_gpus_per_learner", cfg.num_gpus_per_learner, learners + runners, f"{max(1, cfg.num_learners)} learner(s) and the env runners")
    elif runners:
        check_gpus("num_gpus_per_env_runner", cfg.num_gpus_per_env_runner, runners, f"{cfg.num_env_runners} env runner(s)")


def check_ranges(cfg, ranges: dict[str, dict]) -> None:
    """Each attribute of ``cfg`` named in ``ranges`` checked (``core.checks.check_value`` arguments)."""
    for name, allowed in ranges.items():
        check_value(name, getattr(cfg, name), **allowed)


def validate_model_config(mc: dict) -> None:
    """The ``rl_module.model_config`` keys this project reads (RLlib's PPO takes the first two too)."""
    hiddens = mc.get("fcnet_hiddens", [])
    if not isinstance(hiddens, list | tuple) or not all(is_int(h) and 1 <= h <= 65536 for h in hiddens):
        fail(
            "model_config.fcnet_hiddens",
            hiddens,
            "use a list of layer widths, integers in [1, 65536], e.g. [64, 64]",
        )
    check_value(
        "model_config.fcnet_activation",
        mc.get("fcnet_activation", "tanh"),
        "choice",
        choices=("tanh", "relu"),
    )
    check_value(
        "model_config.initial_log_std",
        mc.get("initial_log_std", -0.5),
        "float",
        low=-20,
        high=5,
        default=-0.5,
    )
    check_value("model_config.normalize_obs", mc.get("normalize_obs", False), "bool")
    probs = mc.get("init_action_probs")
    if probs is not None and (
        not isinstance(probs, list | tuple)
        or not probs
        or not all(is_number(p) and 0 < p < 1 for p in probs)
        or abs(sum(probs) - 1) > 1e-6
    ):
        fail(
            "model_config.init_action_probs",
            probs,
            "use probabilities in (0, 1) that sum to 1, e.g. [0.25, 0.75]",
        )


def validate_llm(cfg: GroupAlgorithmConfig) -> None:
    """An LLM run: its env_config and model_config, built into the typed ``cfg.llm``
    (``envs/llm/settings.py``) once, and the family options that only make sense for control tasks."""
    cfg.llm = settings = llm_settings(
        cfg.env_config, cfg.model_config, needs_scorer=cfg.needs_scorer, promised=cfg.promised_paths
    )
    if cfg.pair_source == "dataset" and not cfg.OFFLINE and settings.pairs is None:
        fail(
            "env_config.pairs",
            None,
            "pair_source='dataset' trains on the data set's pairs: pairs: {path: ...}",
        )
    if settings.weight_sync.mode == "collective" and cfg.num_env_runners == 0 and not cfg.in_evaluation:
        fail(
            "env_config.weight_sync",
            "collective",
            "the collective broadcast feeds remote rollout actors; with num_env_runners=0 the runner "
            "shares the driver's process: use weight_sync: object_store, or num_env_runners >= 1",
        )
    if cfg.tis_cap is not None and cfg.ALGORITHM == "Hard-Pair-GRPO":
        fail(
            "tis_cap",
            cfg.tis_cap,
            "Hard-Pair-GRPO fits a target distribution, it has no surrogate to weight; use None",
        )
    if cfg.eval_interval and (settings.eval_scorer is None or not KINDS[settings.eval_scorer.kind].scores):
        fail(
            "env_config.eval_scorer",
            settings.eval_scorer and settings.eval_scorer.kind,
            "evaluation averages scores (a pairwise judge gives labels): set eval_scorer: {kind: truth} "
            "(synthetic task) or a reward model, or eval_interval=0",
        )
    if cfg.credit != "sequence":
        fail("credit", cfg.credit, "an LLM response is scored as a whole; use credit='sequence'")
    if cfg.kl_estimator == "analytic":
        fail(
            "kl_estimator",
            "analytic",
            "a causal LM uses a sampled estimator; use k3 (the default), k1, k2 or k3_is",
        )
    if cfg.group_mode != "reset":
        fail(
            "group_mode",
            cfg.group_mode,
            "an LLM group is G responses to one prompt; leave group_mode at 'reset'",
        )


def validate_family(cfg: GroupAlgorithmConfig) -> None:
    """Reject bad family options: each value against its entry of the field table (kind, range,
    choices), then the rules that tie options together. Every message names the field, the value
    and the fix."""
    for name, field in FIELDS.items():
        if not field.rllib:  # validate_rllib_settings checked those
            check_field(name, field, getattr(cfg, name))
    g = cfg.group_size
    if cfg.trains_on_pairs and g != 2:
        who = cfg.ALGORITHM if cfg.OFFLINE else "pair_source='dataset'"
        fail("group_size", g, f"{who} trains on the data set's pairs, a group is one pair: use group_size=2")
    if cfg.credit == "step" and cfg.kl_in_reward:
        fail(
            "kl_in_reward",
            True,
            "it is implemented for credit='sequence' only; with credit='step' keep the KL in the loss "
            "(kl_in_reward=False)",
        )
    if cfg.pair_source == "dataset" and not cfg.is_llm:
        fail(
            "pair_source",
            "dataset",
            "dataset pairs are chosen/rejected responses of an LLM run; use 'online'",
        )
    if cfg.tis_cap is not None and not cfg.is_llm:
        fail(
            "tis_cap",
            cfg.tis_cap,
            "it corrects an LLM sampler's log-probs; a control task's runner shares the learner's numerics (use None)",
        )
    limit = cfg.episode_limit()
    h = cfg.segment_length
    if h is not None and h > limit:
        fail("segment_length", h, f"H is longer than the episode limit {limit}; use H <= {limit}")
    if cfg.group_mode == "branch" and h is None:
        fail("segment_length", None, "group_mode='branch' needs a segment length H (e.g. 100)")
    look = cfg.lookahead
    if look > limit:
        fail("lookahead", look, f"use an integer number of steps L in [0, {limit}] (0 = none)")
    if look and (cfg.group_mode != "branch" or cfg.credit != "step"):
        fail(
            "lookahead",
            look,
            "it extends the per-step reward-to-go past a branch segment; use it with group_mode='branch' "
            f"and credit='step' (now {cfg.group_mode!r}, {cfg.credit!r}), or set lookahead=0",
        )
    steps_per_group = g * cfg.member_length()
    total = cfg.train_batch_size_per_learner
    if total % steps_per_group:
        fail(
            "train_batch_size_per_learner",
            total,
            f"it must be a multiple of group_size * H = {g} * {cfg.member_length()} = {steps_per_group}",
        )
    groups = total // steps_per_group
    if cfg.minibatch_size is not None and groups % cfg.minibatch_size:
        fail(
            "minibatch_size",
            cfg.minibatch_size,
            f"counted in groups; use a divisor of the {groups} groups per batch, or None",
        )
