"""The generative judge: one class that gives training labels (P(A) from next-token logits, both
orders) and evaluation verdicts and Likert ratings (greedy answers, parsed strictly), on a tiny LM."""

import numpy as np
import pytest
import torch

from pairgrpo_rllib.envs.llm import synthetic as S
from pairgrpo_rllib.evaluation import ASPECTS, likert_means, win_rates
from pairgrpo_rllib.judges import build_judge, judge_spec
from pairgrpo_rllib.judges.generative import (
    PAIR_PROMPT,
    QUESTIONS,
    GenerativeJudge,
    parse_choice,
    parse_likert,
)

SKY = [{"role": "user", "content": "What color is the sky?"}]


def test_strict_parsing_of_judge_answers():
    assert parse_choice("A") == 1.0 and parse_choice(" b.\nbecause") == 0.0 and parse_choice("Tie") == 0.5
    for bad in ("", "A or B", "Response A", "AB", "maybe"):
        assert parse_choice(bad) is None, bad
    assert parse_choice("\n\nA") == 1.0  # leading blank lines are stripped, the first line decides
    assert parse_likert("4") == 4 and parse_likert("5.") == 5
    for bad in ("0", "6", "4/5", "four", "4 stars", ""):
        assert parse_likert(bad) is None, bad


def test_one_judge_gives_training_labels_and_evaluation_verdicts(tiny_lm):
    """The same object, built from one spec for either purpose: its logit preference is symmetric
    by construction, its labels antisymmetric and seeded, and it answers evaluation questions with
    the same model (loaded once)."""
    spec = judge_spec("scorer", {"kind": "generative", "path": tiny_lm}, purpose="train")
    assert spec == judge_spec("judge", {"kind": "generative", "path": tiny_lm}, purpose="eval")
    judge = build_judge(spec)
    assert isinstance(judge, GenerativeJudge) and judge.pairwise
    p = judge.prob(SKY, "blue", "green")
    assert 0.0 < p < 1.0 and judge.prob(SKY, "green", "blue") == pytest.approx(1.0 - p, abs=1e-6)
    labels = judge.labels([SKY, SKY], [["blue", "green", "red"]] * 2, torch.Generator().manual_seed(0))
    assert labels.shape == (2, 3, 3) and labels.dtype == np.float32
    assert np.array_equal(labels, -labels.transpose(0, 2, 1)) and set(np.unique(labels)) <= {-1.0, 0.0, 1.0}
    again = judge.labels([SKY, SKY], [["blue", "green", "red"]] * 2, torch.Generator().manual_seed(0))
    assert np.array_equal(labels, again)
    got = judge.compare([SKY] * 2, ["blue", "red"], ["green", "blue"], "helpfulness")
    assert len(got) == 2 and all(v is None or 0.0 <= v <= 1.0 for v in got)
    ratings = judge.likert([SKY], ["blue"], "overall")
    assert ratings[0] in (None, 1, 2, 3, 4, 5)
    assert judge.answers == 2 * 2 + 1 and 0 <= judge.unparsable <= judge.answers
    assert judge._engine.model is judge.model  # the transformers engine generates with the same copy
    judge.stop()


def test_generative_judge_counts_unparsable_answers(tiny_lm, task_prompts):
    """A causal LM that was never taught to judge: its greedy answers go through the strict parser;
    unreadable ones are counted and left out, a pair with both orders unreadable is excluded."""
    prompts, subsets = task_prompts[0][:6], task_prompts[1][:6]
    judge = GenerativeJudge(tiny_lm, max_new_tokens=4)

    def texts(a, b):
        return [
            PAIR_PROMPT.format(question=QUESTIONS["helpfulness"], prompt=p[-1]["content"], a=a, b=b)
            for p in prompts
        ]

    first = [parse_choice(t) for t in judge.answer(texts("red", S.REFUSAL))]
    second = [parse_choice(t) for t in judge.answer(texts(S.REFUSAL, "red"))]
    fresh = GenerativeJudge(tiny_lm, max_new_tokens=4)
    got = fresh.compare(prompts, ["red"] * 6, [S.REFUSAL] * 6, "helpfulness")
    assert fresh.answers == 12 and fresh.unparsable == sum(v is None for v in first + second)
    for x, y, v in zip(first, second, got, strict=True):
        if x is None and y is None:
            assert v is None
        else:
            want = [w for w in (x, None if y is None else 1.0 - y) if w is not None]
            assert v == pytest.approx(sum(want) / len(want))
    rates = win_rates(fresh, prompts, subsets, [["red"]] * 6, [[S.REFUSAL]] * 6)
    h = rates["helpfulness"]
    assert h["unparsable"] == sum(v is None for v in first + second)
    assert h["excluded_pairs"] == sum(x is None and y is None for x, y in zip(first, second, strict=True))
    assert (h["rate"] is None) == (h["excluded_pairs"] == 6)
    likert = likert_means(fresh, prompts[:3], [["red"]] * 3)
    assert set(likert) == set(ASPECTS) and all(0 <= v["unparsable"] <= 3 for v in likert.values())
