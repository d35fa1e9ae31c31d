"""The algorithms by name: one literal dict (STYLE: no decorator registry), registered with Tune.

Names are exactly those YAML files and ``tune.Tuner`` use; ``"PPO"`` is RLlib's own.
"""

from __future__ import annotations

import importlib

ALGORITHMS: dict[str, str] = {
    "GRPO": "pairgrpo_rllib.algorithms.grpo.grpo:GRPO",
    "Soft-Pair-GRPO": "pairgrpo_rllib.algorithms.soft_pair_grpo.soft_pair_grpo:SoftPairGRPO",
    "Hard-Pair-GRPO": "pairgrpo_rllib.algorithms.hard_pair_grpo.hard_pair_grpo:HardPairGRPO",
    "PG-GRPO": "pairgrpo_rllib.algorithms.pg_grpo.pg_grpo:PGGRPO",
    "PPO": "ray.rllib.algorithms.ppo:PPO",
}


def algorithm_class(name: str):
    """The Algorithm class of ``name``; a clear error for an unknown name."""
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm={name!r} is unknown; use one of {', '.join(map(repr, ALGORITHMS))}")
    module, _, attr = ALGORITHMS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def register_with_tune() -> None:
    """Make every name resolvable by ``tune.Tuner(name)`` / ``get_trainable_cls(name)``."""
    from ray.tune.registry import register_trainable

    for name in ALGORITHMS:
        if name != "PPO":
            register_trainable(name, algorithm_class(name))
