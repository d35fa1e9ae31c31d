"""``annotator``: the synthetic task's Bradley-Terry annotator, the labeller of its datasets.

P(a > b) = sigmoid((truth(a) - truth(b)) / temperature): the same labeller (and noise) that
labelled the dataset's pairs, giving the pair algorithms online labels. Training sees only its
labels, never the truth's values; it gives no scores, so it cannot serve evaluation.
"""

from __future__ import annotations

import numpy as np

from pairgrpo_rllib.envs.llm.synthetic import LABEL_TEMPERATURE, truth_reward
from pairgrpo_rllib.judges.base import LabelJudge, question


class AnnotatorJudge(LabelJudge):
    kind = "annotator"

    def __init__(self, temperature: float = LABEL_TEMPERATURE):
        self.temperature = float(temperature)

    @classmethod
    def from_spec(cls, spec):
        return cls(spec.temperature)

    def prob(self, prompt, a, b):

        q = question(prompt)
        diff = (truth_reward(q, a) - truth_reward(q, b)) / self.temperature
        return float(1.0 / (1.0 + np.exp(-diff)))  # np: a tiny temperature saturates, not overflows
