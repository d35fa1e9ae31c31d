"""What every judge object has, and the two ways of comparing responses that several kinds share.

A judge's capabilities are the methods it defines (``score``, ``labels``, ``verdicts`` and
``compare``, ``likert``); ``registry.KINDS`` states them per kind and a test checks the two agree.
Callers read ``kind`` and ``pairwise``, never ``hasattr``.
"""

from __future__ import annotations

import numpy as np

from pairgrpo_rllib.core.preferences import judge_preference_matrix

# The aspects a judge can be asked about (evaluation's win rates and Likert ratings).
ASPECTS = ("coherence", "helpfulness", "harmlessness", "relevance", "overall")


def question(prompt: list[dict]) -> str:
    """The user's last message: what the judges' templates and the synthetic truth read."""
    return prompt[-1]["content"]


class Judge:
    kind = "base"
    # True when training takes the judge's labels (N, G, G) instead of scores (N, G).
    pairwise = False
    answers = 0  # generated answers read (generative judges; 0 for the others)
    unparsable = 0  # of those, the ones the strict parser could not read

    @classmethod
    def from_spec(cls, spec) -> Judge:
        """The judge a validated ``registry.JudgeSpec`` describes (``registry.build_judge``)."""
        return cls()

    def stop(self) -> None:
        """Free engines or actors; most judges hold none."""


class VerdictJudge(Judge):
    """Pairwise verdicts on one aspect; a subclass implements :meth:`verdicts` for one order."""

    def compare(self, prompts, a: list[str], b: list[str], aspect: str) -> list[float | None]:
        """Per pair, P(a better) from both presentation orders, so that a judge's position bias
        cancels (None if neither order could be read)."""
        one = self.verdicts(prompts, a, b, aspect)
        two = self.verdicts(prompts, b, a, aspect)
        out = []
        for x, y in zip(one, two, strict=True):
            got = [v for v in (x, None if y is None else 1.0 - y) if v is not None]
            out.append(sum(got) / len(got) if got else None)
        return out


class ScoreVerdicts(VerdictJudge):
    """Verdicts from one number per response (``values``): the higher wins, equal numbers tie."""

    def values(self, prompts, responses: list[str], aspect: str) -> np.ndarray:
        raise NotImplementedError

    def verdicts(self, prompts, first, second, aspect):
        """Per pair: 1.0 if ``first`` is better, 0.0 if ``second`` is, 0.5 a tie."""
        sa = self.values(prompts, first, aspect).tolist()
        sb = self.values(prompts, second, aspect).tolist()
        return [1.0 if x > y else 0.0 if x < y else 0.5 for x, y in zip(sa, sb, strict=True)]


class LabelJudge(Judge):
    """Labels every pair of each group: ``labels(prompts, responses, generator) -> (N, G, G)``
    antisymmetric in {-1, 0, +1} (``core.preferences``' convention), each drawn with ``prob``, the
    judge's P(a is better than b)."""

    pairwise = True

    def prob(self, prompt: list[dict], a: str, b: str) -> float:
        raise NotImplementedError

    def labels(self, prompts, responses, generator) -> np.ndarray:

        out = [
            judge_preference_matrix(
                [rs], lambda a, b, p=p: self.prob(p, a, b), sample=True, generator=generator
            )[0].numpy()
            for p, rs in zip(prompts, responses, strict=True)
        ]
        return np.stack(out).astype(np.float32)
