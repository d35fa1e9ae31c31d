"""Group env runners (MuJoCo) and the binary-question bandit, installed as ``pairgrpo_rllib.envs``.

Importing this package registers the project's gymnasium ids (``pairgrpo/BinaryQuestion-v0``).
"""

from pairgrpo_rllib.envs.bandit import register as _register

_register()
