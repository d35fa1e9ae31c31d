"""Scorers of response groups: what turns sampled responses into the scores (or labels) training sees.

``reward_model``  a Bradley-Terry reward model: any ``AutoModelForSequenceClassification`` path with
                  one output (the project's ``pairgrpo llm reward-model`` writes one); the score of a
                  response is its output on the chat-formatted prompt + response.
``truth``         the synthetic task's ground truth (``envs/llm/synthetic.py``). For evaluation, and
                  as an explicitly labelled upper bound; never the default of a training config.

Every scorer maps ``(prompts, responses)`` (the user's last message and the G decoded responses of
each prompt) to an ``(N, G)`` float array.
"""

from __future__ import annotations

import numpy as np
import torch

SCORER_KINDS = ("reward_model", "truth")


class Scorer:
    kind = "base"

    def score(self, prompts: list[list[dict]], responses: list[list[str]]) -> np.ndarray:
        raise NotImplementedError


class TruthScorer(Scorer):
    """The synthetic task's ground truth (``overall``) of each response."""

    kind = "truth"

    def score(self, prompts, responses):
        from pairgrpo_rllib.envs.llm.synthetic import truth_reward

        return np.asarray(
            [
                [truth_reward(p[-1]["content"], r) for r in rs]
                for p, rs in zip(prompts, responses, strict=True)
            ],
            dtype=np.float32,
        )


def reward_model_text(tokenizer, prompt: list[dict], response: str) -> str:
    """The text a reward model scores: the conversation with the response as the assistant's turn."""
    from pairgrpo_rllib.envs.llm.models import format_prompt

    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [*prompt, {"role": "assistant", "content": response}], tokenize=False
        )
    return format_prompt(tokenizer, prompt) + " " + response


class RewardModelScorer(Scorer):
    """A sequence-classification model with a single output: ``r(x, y)``."""

    kind = "reward_model"

    def __init__(
        self, path: str, *, dtype: str = "float32", trust_remote_code: bool = False, batch_size: int = 64
    ):
        from transformers import AutoModelForSequenceClassification

        from pairgrpo_rllib.envs.llm.models import check_model_path, load_tokenizer, torch_dtype

        check_model_path(path, "scorer.path")
        self.tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code, padding_side="right")
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, dtype=torch_dtype(dtype), trust_remote_code=trust_remote_code
        )
        if self.model.config.num_labels != 1:
            raise ValueError(
                f"scorer.path={path!r} is invalid: a reward model has one output, this one has "
                f"num_labels={self.model.config.num_labels}"
            )
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def score_texts(self, texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i : i + self.batch_size], return_tensors="pt", padding=True)
            out.append(self.model(**enc).logits[:, 0].float().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def score(self, prompts, responses):
        texts = [
            reward_model_text(self.tokenizer, p, r)
            for p, rs in zip(prompts, responses, strict=True)
            for r in rs
        ]
        g = len(responses[0]) if responses else 0
        return self.score_texts(texts).reshape(len(responses), g).astype(np.float32)


def make_scorer(spec: dict) -> Scorer:
    kind = spec.get("kind")
    if kind == "truth":
        return TruthScorer()
    if kind == "reward_model":
        return RewardModelScorer(spec.get("path"), dtype=spec.get("dtype", "float32"))
    raise ValueError(f"scorer.kind={kind!r} is invalid: use one of {', '.join(SCORER_KINDS)}")
