"""Pairwise win rates of a policy against a baseline, and Likert means, from any judge that can.

Every comparison is made in both presentation orders and the two verdicts are averaged
(``Judge.compare``), so a judge's position bias cancels; a tie counts half. Per prompt the outcome is
the mean over its samples (policy sample *s* against baseline sample *s*), a number in [0, 1]; the
**win rate** is the mean over prompts, with a percentile-bootstrap 95% interval over prompts
(``core.intervals``). A pair that the judge could read in neither order is left out of the rate.

The rates follow the paper's datasets: **helpfulness** on the ``helpful`` prompts and
**harmlessness** on the ``harmless`` prompts (hh-rlhf's helpful-base and harmless-base), **overall**
on all of them (UltraFeedback's; its prompts are tagged ``general``, counted in the overall rate
only). A prompt source is tagged with its subset in the evaluation config.
"""

from __future__ import annotations

from pairgrpo_rllib.core.intervals import bootstrap_mean_ci
from pairgrpo_rllib.judges.base import ASPECTS

SUBSETS = ("helpful", "harmless", "general")  # general: counted in the overall rate only
# (name of the rate, prompts it is measured on (None: all), aspect asked)
RATES = (
    ("helpfulness", "helpful", "helpfulness"),
    ("harmlessness", "harmless", "harmlessness"),
    ("overall", None, "overall"),
)


def _rate(per_prompt: list[float], seed: int) -> dict:
    if not per_prompt:
        return {"rate": None, "low": None, "high": None, "prompts": 0}
    mean, low, high = bootstrap_mean_ci(per_prompt, seed=seed)
    return {"rate": mean, "low": low, "high": high, "prompts": len(per_prompt)}


def win_rates(
    judge,
    prompts: list[list[dict]],
    subsets: list[str],
    policy: list[list[str]],
    baseline: list[list[str]],
    seed: int = 0,
) -> dict:
    """The three win rates of ``policy`` against ``baseline`` (``(prompts, samples)`` texts each; a
    baseline with one response per prompt is compared with every policy sample) by one judge that
    gives verdicts (``registry.KINDS[kind].verdicts``)."""
    s = len(policy[0]) if policy else 0
    out = {}
    for name, subset, aspect in RATES:
        idx = [i for i, sub in enumerate(subsets) if subset is None or sub == subset]
        flat_p, flat_a, flat_b, owner = [], [], [], []
        for i in idx:
            for j in range(s):
                flat_p.append(prompts[i])
                flat_a.append(policy[i][j])
                flat_b.append(baseline[i][j if len(baseline[i]) > 1 else 0])
                owner.append(i)
        before = judge.unparsable
        got = judge.compare(flat_p, flat_a, flat_b, aspect) if flat_p else []
        per: dict[int, list[float]] = {}
        for i, v in zip(owner, got, strict=True):
            if v is not None:
                per.setdefault(i, []).append(v)
        judged = [v for vs in per.values() for v in vs]
        rate = _rate([sum(v) / len(v) for v in per.values()], seed)
        rate.update(
            comparisons=len(flat_p),
            tie_fraction=sum(v == 0.5 for v in judged) / max(1, len(judged)),
            unparsable=judge.unparsable - before,
            excluded_pairs=sum(v is None for v in got),
        )
        out[name] = rate
    return out


def likert_means(rater, prompts, responses: list[list[str]], seed: int = 0) -> dict:
    """Per aspect: the mean 1-5 rating over prompts (each prompt's mean over its readable ratings),
    with a bootstrap interval over prompts; ``rater`` is a judge that rates
    (``registry.KINDS[kind].likert``)."""
    flat_p = [p for p, rs in zip(prompts, responses, strict=True) for _ in rs]
    flat_r = [r for rs in responses for r in rs]
    s = len(responses[0]) if responses else 0
    out = {}
    for aspect in ASPECTS:
        before = rater.unparsable
        got = rater.likert(flat_p, flat_r, aspect)
        per = []
        for i in range(len(responses)):
            vals = [v for v in got[i * s : (i + 1) * s] if v is not None]
            if vals:
                per.append(sum(vals) / len(vals))
        rate = _rate(per, seed)
        rate["mean"] = rate.pop("rate")
        rate["unparsable"] = rater.unparsable - before
        out[aspect] = rate
    return out
