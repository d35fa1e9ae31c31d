"""The algorithms by name: one literal dict (STYLE: no decorator registry), registered with Tune.

Names are exactly those YAML files and ``tune.Tuner`` use. Each entry is the algorithm's config
class; ``"PPO"`` is RLlib's own PPO (``algorithms/ppo``). Adding an algorithm: a folder with its
config, algorithm and learner classes, an entry here, its package in ``pyproject.toml``, and its
default differences (if any) in ``core.defaults.ALGORITHM_DEFAULTS``.
"""

from __future__ import annotations

import importlib

from pairgrpo_rllib.algorithms.common.algorithm import GroupAlgorithm
from pairgrpo_rllib.algorithms.stages import STAGES, job_trainable, trainable_name

ALGORITHMS: dict[str, str] = {
    "GRPO": "pairgrpo_rllib.algorithms.grpo.grpo:GRPOConfig",
    "Soft-Pair-GRPO": "pairgrpo_rllib.algorithms.soft_pair_grpo.soft_pair_grpo:SoftPairGRPOConfig",
    "Hard-Pair-GRPO": "pairgrpo_rllib.algorithms.hard_pair_grpo.hard_pair_grpo:HardPairGRPOConfig",
    "PG-GRPO": "pairgrpo_rllib.algorithms.pg_grpo.pg_grpo:PGGRPOConfig",
    "PPO": "pairgrpo_rllib.algorithms.ppo.ppo:PPOBaselineConfig",
    "DPO": "pairgrpo_rllib.algorithms.dpo.dpo:DPOConfig",
    "ORPO": "pairgrpo_rllib.algorithms.orpo.orpo:ORPOConfig",
}


def config_class(name: str):
    """The AlgorithmConfig class of ``name``; a clear error for an unknown name."""
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm={name!r} is unknown; use one of {', '.join(map(repr, ALGORITHMS))}")
    module, _, attr = ALGORITHMS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def algorithm_config(name: str):
    """A fresh config of ``name`` with its defaults."""
    return config_class(name)()


def algorithm_class(name: str):
    """The Algorithm class that ``name``'s config builds."""
    return algorithm_config(name).algo_class


def is_group_algorithm(name: str) -> bool:
    """True for the GRPO family (our ``GroupAlgorithm`` subclasses), False for RLlib's own."""

    return issubclass(algorithm_class(name), GroupAlgorithm)


def register_with_tune() -> None:
    """Make every name resolvable by ``tune.Tuner(name)`` / ``get_trainable_cls(name)``.

    RLlib's own algorithms are registered by RLlib under their names already.
    """
    from ray.tune.registry import register_trainable

    for name in ALGORITHMS:
        if is_group_algorithm(name):
            register_trainable(name, algorithm_class(name))

    for stage, st in STAGES.items():  # the LLM jobs: SFT and the reward model
        if st.job:
            register_trainable(trainable_name(stage), job_trainable(stage))
