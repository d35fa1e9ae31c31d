"""The offline preference baselines (DPO, ORPO) on the family's machinery.

A batch of N dataset pairs is a group batch with G = 2: member 0 the chosen response, member 1 the
rejected one, both after the same prompt (``LLMGroupRunner.sample_pairs``). The driver numbers the
pairs it asks for like groups (a resumed run continues with the next pairs), the learner fills the
same ``GroupTensors`` (policy and reference log-probs of the response tokens), and only the loss hook
differs. No sampling, no scores, no advantages: ``prepare_batch`` writes the fixed pair (0 beats 1).

In a YAML shared with the GRPO family, an offline baseline takes RLlib's training settings (lr,
epochs, batch, minibatch) and its own options (``OWN_OPTIONS``), and ignores the family's group,
advantage and surrogate options (stated in docs/llm.md), as RLlib's PPO does.
"""

from __future__ import annotations

import numpy as np

from pairgrpo_rllib.algorithms.common.algorithm import GroupAlgorithm
from pairgrpo_rllib.algorithms.common.config import GroupAlgorithmConfig
from pairgrpo_rllib.algorithms.common.learner import GroupLearner
from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.checks import check_field, fail
from pairgrpo_rllib.core.defaults import BASELINE_FIELDS, FAMILY_OPTIONS

# Family options an offline baseline keeps (the rest do not apply to a fixed pair).
SHARED_OPTIONS = ("eval_interval", "eval_episodes", "sample_seed", "length_norm")


class OfflinePairConfig(GroupAlgorithmConfig):
    """Config of an offline pair baseline: G = 2, the dataset's pairs, no sampling."""

    OWN_OPTIONS: tuple[str, ...] = ()
    OFFLINE = True

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class)  # group_size 2: core.defaults.ALGORITHM_DEFAULTS
        for name in self.OWN_OPTIONS:
            setattr(self, name, BASELINE_FIELDS[name].default)

    def experiment_section(self, section: str, options: dict) -> dict:
        if section != "training":
            return options
        return {
            k: v
            for k, v in options.items()
            if k not in FAMILY_OPTIONS or k in SHARED_OPTIONS or k in self.OWN_OPTIONS
        }

    def extra_options(self, section: str) -> set[str]:
        return set(SHARED_OPTIONS) | set(self.OWN_OPTIONS) if section == "training" else set()

    def training(self, **kwargs):
        own = {k: kwargs.pop(k) for k in list(kwargs) if k in self.OWN_OPTIONS}
        super().training(**kwargs)
        for k, v in own.items():
            setattr(self, k, v)
        return self

    def validate(self) -> None:
        if not self.is_llm:
            fail(
                "environment.env",
                self.env,
                f"{self.ALGORITHM} trains a causal LM on preference pairs; use env: {names.LLM_ENV}",
            )
        if (self.env_config or {}).get("pairs") is None:
            fail(
                "env_config.pairs",
                None,
                f"{self.ALGORITHM} needs the dataset's pairs: pairs: {{path: <hub name or file>}}",
            )
        for name in self.OWN_OPTIONS:  # G = 2: validate_family (trains_on_pairs)
            check_field(name, BASELINE_FIELDS[name], getattr(self, name))
        super().validate()


class OfflinePairAlgorithm(GroupAlgorithm):
    """Trains on the dataset's pairs; the rest of the iteration is the family's."""

    OFFLINE = True

    def sample_method(self) -> str:
        return "sample_pairs"

    def learner_batch(self, batch: dict, with_grpo_advantages: bool = False) -> dict:
        n = batch[names.MASK].shape[0]
        batch[names.ADVANTAGES] = np.zeros((n, 2), dtype=np.float32)  # unused: the loss is the pair's
        batch[names.PAIRS] = np.tile(
            np.array([[[1, 0, 1]]], dtype=np.int64), (n, 1, 1)
        )  # chosen beats rejected
        for key in names.DRIVER_ONLY:
            batch.pop(key, None)
        return batch


class OfflinePairLearner(GroupLearner):
    """Members in pairs: rows 0, 2, 4, ... chosen; 1, 3, 5, ... rejected."""

    @staticmethod
    def split(x):
        return x[0::2], x[1::2]
