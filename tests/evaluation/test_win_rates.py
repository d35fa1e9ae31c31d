"""Win rates and Likert means on judges whose answers are known by hand (the synthetic truth, a
judge with total position bias): orders, ties, subsets, intervals."""

import random

import pytest

from pairgrpo_rllib.envs.llm import synthetic as S
from pairgrpo_rllib.evaluation import ASPECTS, likert_means, win_rates
from pairgrpo_rllib.judges.base import VerdictJudge
from pairgrpo_rllib.judges.truth import TruthJudge


def test_truth_judge_win_rates_ties_and_orders_by_hand(task_prompts):
    prompts, subsets = task_prompts
    rng = random.Random(1)
    best = [S.best_response(p[-1]["content"], rng) for p in prompts]
    refuse = [S.REFUSAL] * len(prompts)
    judge = TruthJudge()
    # a (policy) answers helpful prompts and refuses harmful ones; b (baseline) refuses everything
    policy = [[best[i], best[i]] for i in range(len(prompts))]
    baseline = [[refuse[i], refuse[i]] for i in range(len(prompts))]
    got = win_rates(judge, prompts, subsets, policy, baseline)
    assert got["helpfulness"]["rate"] == 1.0 and got["helpfulness"]["prompts"] == 12
    # on harmful prompts both refuse: equal truth, every comparison a tie counted half
    assert got["harmlessness"]["rate"] == 0.5 and got["harmlessness"]["tie_fraction"] == 1.0
    assert got["overall"]["rate"] == pytest.approx((12 * 1.0 + 6 * 0.5) / 18)
    assert got["overall"]["comparisons"] == 36 and got["overall"]["unparsable"] == 0
    # swapping policy and baseline mirrors every rate
    back = win_rates(judge, prompts, subsets, baseline, policy)
    for name in ("helpfulness", "harmlessness", "overall"):
        assert back[name]["rate"] == pytest.approx(1.0 - got[name]["rate"])
    # half the samples win, half tie -> per prompt 0.75
    mixed = [[best[i], refuse[i]] for i in range(12)]
    got = win_rates(judge, prompts[:12], subsets[:12], mixed, baseline[:12])
    h = got["helpfulness"]
    assert h["rate"] == 0.75 and h["low"] <= 0.75 <= h["high"]
    assert got["harmlessness"]["rate"] is None and got["harmlessness"]["prompts"] == 0


def test_a_one_response_baseline_is_compared_with_every_policy_sample(task_prompts):
    prompts, subsets = task_prompts
    rng = random.Random(1)
    best = [S.best_response(p[-1]["content"], rng) for p in prompts[:12]]
    got = win_rates(TruthJudge(), prompts[:12], subsets[:12], [[b, b, b] for b in best], [[S.REFUSAL]] * 12)
    assert got["helpfulness"]["rate"] == 1.0 and got["helpfulness"]["comparisons"] == 36


def test_truth_likert_is_one_plus_four_times_the_aspects_truth(task_prompts):
    prompts, _ = task_prompts
    rng = random.Random(1)
    best = [[S.best_response(p[-1]["content"], rng)] for p in prompts[:12]]
    likert = likert_means(TruthJudge(), prompts[:12], best)
    assert set(likert) == set(ASPECTS)
    assert likert["helpfulness"]["mean"] == 5.0 and likert["harmlessness"]["mean"] == 5.0
    assert likert["helpfulness"]["unparsable"] == 0
    # a refusal of a helpful request: helpfulness 0 -> 1 + round(4 * 0) = 1
    assert likert_means(TruthJudge(), prompts[:12], [[S.REFUSAL]] * 12)["helpfulness"]["mean"] == 1.0


class _AlwaysFirst(VerdictJudge):
    """A judge with total position bias (always "A"), to show both orders cancel it."""

    kind = "always_first"

    def verdicts(self, prompts, first, second, aspect):
        return [1.0] * len(first)


def test_both_orders_cancel_a_position_biased_judge(task_prompts):
    prompts, subsets = task_prompts
    got = win_rates(_AlwaysFirst(), prompts, subsets, [["x"]] * len(prompts), [["y"]] * len(prompts))
    assert all(got[k]["rate"] == 0.5 for k in ("helpfulness", "harmlessness", "overall"))
    assert got["overall"]["tie_fraction"] == 1.0


class _HalfUnreadable(VerdictJudge):
    """Reads "a first" answers only: the other order's verdict is None (an unparsable answer)."""

    kind = "half_unreadable"

    def verdicts(self, prompts, first, second, aspect):
        got = [1.0 if a == "a" else None for a in first]
        self.unparsable += sum(v is None for v in got)
        return got


def test_an_order_that_cannot_be_read_is_dropped_and_counted(task_prompts):
    prompts, subsets = task_prompts
    got = win_rates(_HalfUnreadable(), prompts[:12], subsets[:12], [["a"]] * 12, [["b"]] * 12)
    h = got["helpfulness"]
    # each pair: order (a, b) reads 1.0, order (b, a) unreadable -> the pair is 1.0 from one order
    assert h["rate"] == 1.0 and h["unparsable"] == 12 and h["excluded_pairs"] == 0
