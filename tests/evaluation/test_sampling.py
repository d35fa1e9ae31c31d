"""Sampling a policy's responses for evaluation (evaluation/sampling.py) through vLLM, and a
generative judge answering through vLLM."""

from __future__ import annotations

from pairgrpo_rllib.envs.llm import synthetic as S


def test_evaluation_runs_through_vllm_too(assets, task_prompts):
    """The evaluation's engines: vLLM samples a policy given as a path plus a state dict exactly as it
    samples that model from its own path (per-request seeds), and a generative judge answers through
    vLLM with its answers parsed and counted as through transformers."""
    from pairgrpo_rllib.envs.llm.models import load_causal_lm
    from pairgrpo_rllib.evaluation import sample_responses, win_rates
    from pairgrpo_rllib.judges.generative import GenerativeJudge

    prompts, subsets = task_prompts
    prompts = prompts[:4]
    kw = dict(samples=2, seed=7, max_prompt_tokens=24, max_new_tokens=8, engine="vllm")
    tiny = load_causal_lm(assets["tiny"]).state_dict()
    own = sample_responses(assets["tiny"], prompts, **kw)
    loaded = sample_responses(assets["sft"], prompts, state_dict=tiny, **kw)
    sft = sample_responses(assets["sft"], prompts, **kw)
    assert own == loaded and own != sft
    judge = GenerativeJudge(assets["sft"], engine="vllm", max_new_tokens=4)
    try:
        got = win_rates(judge, prompts, subsets[:4], [["red"]] * 4, [[S.REFUSAL]] * 4)
        assert judge.answers == 2 * 2 * 4  # helpfulness and overall (no harmful prompt), both orders, 4 pairs
        assert got["overall"]["unparsable"] <= 8 and got["overall"]["comparisons"] == 4
    finally:
        judge.stop()
