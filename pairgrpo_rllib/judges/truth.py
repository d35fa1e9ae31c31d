"""``truth``: the synthetic task's ground truth (``envs/llm/synthetic.py``).

For evaluation, and as an explicitly labelled upper bound; never the default of a training config.
Scores are ``overall``; verdicts compare the asked aspect's truth (equal truths tie); a Likert
rating is ``1 + round(4 * score)`` of the aspect's score in [0, 1] (ours: the truth is continuous,
the 1-5 scale is not).
"""

from __future__ import annotations

import numpy as np

from pairgrpo_rllib.envs.llm.synthetic import truth_reward, truth_scores
from pairgrpo_rllib.judges.base import ScoreVerdicts, question


class TruthJudge(ScoreVerdicts):
    kind = "truth"

    def score(self, prompts, responses) -> np.ndarray:
        """``(N, G)`` float32: the ``overall`` truth of each response."""

        return np.asarray(
            [[truth_reward(question(p), r) for r in rs] for p, rs in zip(prompts, responses, strict=True)],
            dtype=np.float32,
        )

    def values(self, prompts, responses, aspect):

        return np.asarray(
            [truth_scores(question(p), r)[aspect] for p, r in zip(prompts, responses, strict=True)]
        )

    def likert(self, prompts, responses, aspect) -> list[int | None]:
        return [1 + int(round(4 * v)) for v in self.values(prompts, responses, aspect).tolist()]
