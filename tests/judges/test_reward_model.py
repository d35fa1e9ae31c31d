"""The reward-model judge on a tiny one-output model: scores, verdicts from the scores (each response
scored once), a model with more than one output rejected, and the reward model scoring a rollout's
groups in Ray actors of its own (scorer.actors)."""

import numpy as np
import pytest

from pairgrpo_rllib.core import names
from pairgrpo_rllib.judges import build_judge, judge_spec
from pairgrpo_rllib.judges.reward_model import RewardModelJudge, reward_model_text

SKY = [{"role": "user", "content": "What color is the sky?"}]


def test_scores_verdicts_and_their_cache(tiny_rm, monkeypatch):
    judge = build_judge(judge_spec("f", {"kind": "reward_model", "path": tiny_rm}, purpose="eval"))
    assert isinstance(judge, RewardModelJudge) and not judge.pairwise
    scores = judge.score([SKY, SKY], [["blue", "green", "red"], ["red", "blue", "green"]])
    assert scores.shape == (2, 3) and scores.dtype == np.float32
    want = judge.score_texts([reward_model_text(judge.tokenizer, SKY, r) for r in ("blue", "green", "red")])
    assert np.allclose(scores[0], want, atol=1e-5) and np.allclose(scores[1], want[[2, 0, 1]], atol=1e-5)
    calls = []
    real = judge.score_texts
    monkeypatch.setattr(judge, "score_texts", lambda texts: calls.append(len(texts)) or real(texts))
    got = judge.compare([SKY] * 2, ["blue", "green"], ["green", "red"], "helpfulness")
    s = dict(zip(("blue", "green", "red"), want.tolist(), strict=True))
    for v, (a, b) in zip(got, [("blue", "green"), ("green", "red")], strict=True):
        assert v == (1.0 if s[a] > s[b] else 0.0 if s[a] < s[b] else 0.5)
    assert sum(calls) == 3  # both orders, and every aspect after, from three scored responses
    judge.compare([SKY], ["blue"], ["red"], "harmlessness")
    assert sum(calls) == 3


def test_a_model_with_more_than_one_output_is_rejected(tiny_lm, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from pairgrpo_rllib.envs.llm.models import load_tokenizer

    AutoModelForSequenceClassification.from_pretrained(tiny_lm, num_labels=2).save_pretrained(tmp_path)
    load_tokenizer(tiny_lm).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"reward_model\.path=.* has one output, this one has num_labels=2"):
        RewardModelJudge(str(tmp_path))


def test_reward_model_scoring_in_actors_of_its_own_gives_the_same_scores(local_ray, assets, llm_config):
    """scorer.actors: the reward model runs in Ray actors of its own (a batch split across them);
    the groups' scores equal those of the in-process scorer."""
    from pairgrpo_rllib.judges.reward_model import RewardModelPool

    got = {}
    for actors in (0, 2):
        cfg = llm_config("GRPO", assets)
        cfg.environment(
            names.LLM_ENV, env_config={"scorer": {"kind": "reward_model", "path": assets["rm"], "actors": actors,
                                                  "num_cpus": 0}}
        )  # fmt: skip
        algo = cfg.build_algo()
        try:
            runner = algo.env_runner_group.local_env_runner
            assert isinstance(runner.scorer, RewardModelPool) == bool(actors)
            if actors:
                assert len(runner.scorer.actors) == 2
            batch = runner.sample_groups(5, first=0)
            got[actors] = (batch[names.ACTIONS], batch[names.SCORES])
        finally:
            algo.stop()
    assert np.array_equal(got[0][0], got[2][0])  # the same responses
    assert np.allclose(got[0][1], got[2][1], atol=1e-5)
    with pytest.raises(ValueError, match="scorer.actors"):
        llm_config("GRPO", assets).environment(
            names.LLM_ENV, env_config={"scorer": {"kind": "truth", "actors": 1}}
        ).validate()
