"""RLlib's own weight sync through the object store (``weight_sync: object_store``, the default)."""

from __future__ import annotations


class WeightSync:
    """The driver's side of a transport: what ``GroupAlgorithm`` calls."""

    def sync(self, algo) -> None:
        """After a learner update: every rollout actor serves the learner's weights."""
        raise NotImplementedError

    def refresh_local_runner(self, algo) -> None:
        """Before the driver's own env runner evaluates: it holds the learner's weights."""


class ObjectStoreSync(WeightSync):
    """The learner group's state through Ray's object store to every env runner (the driver's own
    included), which loads it and tells its engine to serve it (``LLMGroupRunner.set_state``)."""

    def sync(self, algo) -> None:
        algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)
