"""pairgrpo-rllib: the Pair-GRPO family (Soft-Pair, Hard-Pair), PG-GRPO and GRPO on Ray RLlib.

Layers, imports pointing only downward:

* math (``advantages``, ``preferences``, ``losses``, ``kl``, ``hard_pair``, ``diagnostics``,
  ``theory``): torch and the standard library only; every formula of the spec lives here once.
* glue (``pairgrpo_rllib.algorithms``, ``pairgrpo_rllib.envs``): RLlib learners, env runners.
* entry points (``pairgrpo_rllib.cli``).

Importing the package imports nothing heavy; each layer imports what it needs.
"""

__version__ = "0.1.0"
