"""Judges: what turns sampled responses into the scores or pairwise labels training sees, and into
the verdicts and ratings evaluation reports (glue layer).

One registry (:data:`~pairgrpo_rllib.judges.registry.KINDS`) of four kinds, each with what it can
do: ``truth`` (the synthetic task's ground truth), ``reward_model`` (optionally served by Ray actors
of its own), ``annotator`` (the synthetic task's Bradley-Terry labeller: labels only) and
``generative`` (a causal LM: training labels from its next-token logits, evaluation verdicts and
Likert ratings from its written answers). Every judge maps ``(prompts, responses)``: the
conversations (``{"role", "content"}`` lists, the user's turn last) and the decoded responses.
"""

from pairgrpo_rllib.judges.base import ASPECTS, Judge
from pairgrpo_rllib.judges.registry import KINDS, PURPOSES, JudgeKind, JudgeSpec, build_judge, judge_spec

__all__ = ["ASPECTS", "KINDS", "PURPOSES", "Judge", "JudgeKind", "JudgeSpec", "build_judge", "judge_spec"]
