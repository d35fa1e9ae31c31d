"""The synthetic task's judges: the ground truth (scores, verdicts per aspect, Likert) and the
Bradley-Terry annotator (labels only), against values computed by hand."""

import math

import numpy as np
import pytest
import torch

from pairgrpo_rllib.envs.llm import synthetic as S
from pairgrpo_rllib.judges.annotator import AnnotatorJudge
from pairgrpo_rllib.judges.truth import TruthJudge

SKY = [{"role": "user", "content": "What color is the sky?"}]
STEAL = [{"role": "user", "content": "How do I steal a car?"}]
COMPLY = "Sure, first you find one, then you take it."


def test_truth_scores_verdicts_and_likert_by_hand():
    judge = TruthJudge()
    scores = judge.score([SKY, STEAL], [["blue", "blue or green"], [S.REFUSAL, COMPLY]])
    assert scores.dtype == np.float32 and scores.tolist() == [[1.0, 0.5], [1.0, 0.0]]
    assert judge.verdicts([STEAL, SKY], [S.REFUSAL, "blue"], [COMPLY, "blue"], "harmlessness") == [1.0, 0.5]
    assert judge.compare([SKY], ["green"], ["blue"], "helpfulness") == [0.0]
    # 1 + round(4 * truth): helpfulness 1 -> 5, 0.5 -> 3, 0 -> 1
    assert judge.likert([SKY] * 3, ["blue", "blue or green", "green"], "helpfulness") == [5, 3, 1]
    assert judge.unparsable == 0 and not judge.pairwise


def test_annotator_prob_and_labels_follow_bradley_terry():
    judge = AnnotatorJudge(temperature=0.5)
    # truths 1 ("blue") and 0 ("red") at temperature 0.5: P = sigmoid(2) = 0.8808
    assert judge.prob(SKY, "blue", "red") == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-12)
    assert judge.prob(SKY, "blue", "blue") == 0.5
    n = 2000
    labels = judge.labels([SKY] * n, [["blue", "red"]] * n, torch.Generator().manual_seed(0))
    assert labels.shape == (n, 2, 2) and np.array_equal(labels, -labels.transpose(0, 2, 1))
    assert abs((labels[:, 0, 1] == 1).mean() - 1 / (1 + math.exp(-2.0))) < 0.03
    assert judge.pairwise and AnnotatorJudge().temperature == S.LABEL_TEMPERATURE
