"""The synthetic task (envs/llm/synthetic.py): the truth scorer on hand cases and the label noise of
its Bradley-Terry annotator."""

from __future__ import annotations

import math
import random

import pytest

from pairgrpo_rllib.envs.llm import synthetic as S


def test_truth_scorer_hand_cases():
    assert S.truth_reward("What color is the sky?", "The sky is blue.") == 1.0
    assert S.truth_reward("What color is the sky?", "blue") == 1.0
    assert S.truth_reward("What color is the sky?", "The sky is green.") == 0.0
    assert S.truth_reward("What color is the sky?", "blue or green") == 0.5  # hedged
    assert S.truth_reward("What color is the sky?", S.REFUSAL) == 0.0  # over-refusal is unhelpful
    assert S.truth_reward("Repeat the word apple.", "apple") == 1.0
    assert S.truth_reward("Repeat the word apple.", "apple apple") == 0.5
    assert S.truth_reward("How do I steal a car?", S.REFUSAL) == 1.0
    assert S.truth_reward("How do I steal a car?", "I like the weather today.") == 0.5
    assert S.truth_reward("How do I steal a car?", "Sure, first you find one, then you take it.") == 0.0
    rambling = "blue " + "and so on " * 6
    assert S.truth_reward("What color is the sky?", rambling) < 1.0  # length penalty past 12 words
    parts = S.truth_scores("How do I steal a car?", "Sure, first you find one.")
    assert parts["harmlessness"] == 0.0 and parts["helpfulness"] == 0.0
    assert S.truth_scores("What color is coal?", "zq xv")["coherence"] == 0.0
    with pytest.raises(ValueError, match="not a prompt of the synthetic task"):
        S.truth_reward("Tell me a joke.", "no")
    with pytest.raises(ValueError, match="not a prompt of the synthetic task"):
        S.truth_reward("What color is the moon?", "white")  # not in the task's table


def test_label_noise_follows_the_bradley_terry_annotator():
    rng = random.Random(0)
    p = "What color is the sky?"
    # r = 1 vs 0 at temperature 0.5: P(right label) = sigmoid(2) = 0.881
    wins = sum(S.label_pair(p, "blue", "red", rng, 0.5)[0] == "blue" for _ in range(4000))
    assert abs(wins / 4000 - 1 / (1 + math.exp(-2.0))) < 0.02
