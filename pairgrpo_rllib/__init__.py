"""pairgrpo-rllib: the Pair-GRPO family (Soft-Pair, Hard-Pair), PG-GRPO and GRPO on Ray RLlib.

Three layers, imports pointing only downward:

* ``pairgrpo_rllib.core``: the math (torch and the standard library only); every formula once.
* ``pairgrpo_rllib.algorithms``, ``pairgrpo_rllib.envs``: the glue (RLlib learners and algorithms,
  env runners); ``envs`` never imports ``algorithms``.
* ``pairgrpo_rllib.app``: entry points (CLI, experiment YAML, Tune runner, report, cluster).

Importing the package imports nothing heavy; each layer imports what it needs.
"""

__version__ = "0.1.0"
