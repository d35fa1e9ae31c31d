"""How new weights reach the rollout actors after a learner update (``env_config.weight_sync``).

The driver holds one :class:`WeightSync` object (``GroupAlgorithm.weight_sync``): ``training_step``
calls :meth:`WeightSync.sync` after each update, and an evaluation on the driver's own env runner
calls :meth:`WeightSync.refresh_local_runner` first. Each transport lives in one file:

``object_store`` (default, ``object_store.py``): RLlib's own sync. The driver asks the learner group
for the module's state, puts it in Ray's object store once and every rollout actor reads it
(``set_state``), then tells its engine to serve it. Simple and what a laptop needs; for a 7B model it
moves 14-28 GB through the driver and the object store at every step.

``collective`` (ours, ``collective.py``): learner rank 0 and the remote rollout actors form their own
process group and learner 0 broadcasts the trained tensors; nothing goes through the driver or the
object store. The learner's and the actor's ends of it are mixins of ``GroupLearner`` and
``LLMGroupRunner`` defined in the same file.

Measured on one CPU machine (``benchmarks/weight_sync.py``): no gain up to 76M parameters; the
default stays ``object_store``.
"""

from __future__ import annotations

from pairgrpo_rllib.envs.llm.weight_sync.collective import CollectiveSync
from pairgrpo_rllib.envs.llm.weight_sync.object_store import ObjectStoreSync, WeightSync


def make_weight_sync(settings) -> WeightSync:
    """The driver's transport for ``settings`` (``LLMSettings.weight_sync``; None: not an LLM run)."""
    if settings is not None and settings.mode == "collective":
        return CollectiveSync(settings)
    return ObjectStoreSync()


__all__ = ["CollectiveSync", "ObjectStoreSync", "WeightSync", "make_weight_sync"]
