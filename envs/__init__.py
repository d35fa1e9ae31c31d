"""Group env runners (MuJoCo) and the binary-question bandit, installed as ``pairgrpo_rllib.envs``.

Importing this package registers the project's gymnasium ids (``pairgrpo/BinaryQuestion-v0``, and
the fault-injection wrapper ``pairgrpo/CrashOnce-v0``).
"""

from pairgrpo_rllib.envs.bandit import register as _register
from pairgrpo_rllib.envs.faulty import register as _register_faulty

_register()
_register_faulty()
