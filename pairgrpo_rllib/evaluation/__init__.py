"""Evaluating a language-model policy (glue layer): its sampled responses to held-out prompts
(``sampling``), pairwise win rates against a baseline and Likert means (``win_rates``), by any judge
of ``pairgrpo_rllib.judges`` that gives verdicts or ratings. ``pairgrpo_rllib/app/llm_eval.py`` runs
it over an experiment's trials."""

from pairgrpo_rllib.evaluation.sampling import sample_responses
from pairgrpo_rllib.evaluation.win_rates import ASPECTS, RATES, SUBSETS, likert_means, win_rates

__all__ = ["ASPECTS", "RATES", "SUBSETS", "likert_means", "sample_responses", "win_rates"]
