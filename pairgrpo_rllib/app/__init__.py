"""Entry points: the ``pairgrpo`` command, experiment YAML, the Tune runner, reports, the local cluster.

They import the glue (``pairgrpo_rllib.algorithms``, ``pairgrpo_rllib.envs``) and the math
(``pairgrpo_rllib.core``); nothing below imports from here.
"""
