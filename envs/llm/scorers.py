"""Scorers of response groups: what turns sampled responses into the scores (or labels) training sees.

``reward_model``  a Bradley-Terry reward model: any ``AutoModelForSequenceClassification`` path with
                  one output (the project's ``pairgrpo llm reward-model`` writes one); the score of a
                  response is its output on the chat-formatted prompt + response.
``truth``         the synthetic task's ground truth (``envs/llm/synthetic.py``). For evaluation, and
                  as an explicitly labelled upper bound; never the default of a training config.
``annotator``     pairwise (labels, not scores): the synthetic task's Bradley-Terry annotator, the
                  labeller of its datasets, giving the pair algorithms online labels.
``judge``         pairwise: a causal LM asked which of two responses is better (both orders).

Every scorer maps ``(prompts, responses)`` (the user's last message and the G decoded responses of
each prompt) to an ``(N, G)`` float array.
"""

from __future__ import annotations

import numpy as np
import torch

SCORER_KINDS = ("reward_model", "truth", "annotator", "judge")


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


class ScorerActor:
    """One scorer in a Ray actor of its own (:class:`ScorerPool`)."""

    def __init__(self, spec: dict):
        torch.set_num_threads(1)
        self.scorer = make_scorer(spec)

    def score(self, prompts, responses):
        return self.scorer.score(prompts, responses)


class ScorerPool(Scorer):
    """A reward model served by ``actors`` Ray actors of its own (``num_cpus``/``num_gpus`` each), so
    that scoring scales apart from generation; a batch is split in contiguous parts, one per actor,
    and the scores come back in order. Created by the rollout actor that uses it (and gone with it)."""

    def __init__(self, spec: dict):
        import ray

        inner = {k: v for k, v in spec.items() if k not in ("actors", "num_cpus", "num_gpus")}
        self.kind = inner["kind"]
        remote = ray.remote(num_cpus=spec.get("num_cpus", 1), num_gpus=spec.get("num_gpus", 0))(ScorerActor)
        self.actors = [remote.remote(inner) for _ in range(spec["actors"])]

    def score(self, prompts, responses):
        import ray

        n = len(prompts)
        k = min(len(self.actors), max(n, 1))
        bounds = [round(i * n / k) for i in range(k + 1)]
        refs = [
            actor.score.remote(prompts[a:b], responses[a:b])
            for actor, a, b in zip(self.actors, bounds, bounds[1:], strict=False)
            if b > a
        ]
        parts = ray.get(refs)
        g = len(responses[0]) if responses else 0
        return np.concatenate(parts) if parts else np.zeros((0, g), dtype=np.float32)


def make_scorer(spec: dict):
    kind = spec.get("kind")
    if spec.get("actors"):
        return ScorerPool(spec)
    if kind in PAIR_KINDS:
        return make_pair_scorer(spec)
    if kind == "truth":
        return TruthScorer()
    if kind == "reward_model":
        return RewardModelScorer(spec.get("path"), dtype=spec.get("dtype", "float32"))
    raise ValueError(f"scorer.kind={kind!r} is invalid: use one of {', '.join(SCORER_KINDS)}")


# ---- pairwise scorers: labels for the pair algorithms' online pairs ------------------------------------
PAIR_KINDS = ("annotator", "judge")
JUDGE_TEMPLATE = (
    "Which response answers the request better?\n"
    "Request: {prompt}\n"
    "Response A: {a}\n"
    "Response B: {b}\n"
    "Better response:"
)


class PairScorer:
    """Labels every pair of each group: ``labels(prompts, responses, generator) -> (N, G, G)``
    antisymmetric in {-1, 0, +1} (``core.preferences``' convention), from ``prob(prompt, a, b)``,
    the scorer's P(a is better than b)."""

    kind = "pair"

    def prob(self, prompt: list[dict], a: str, b: str) -> float:
        raise NotImplementedError

    def labels(self, prompts, responses, generator) -> np.ndarray:
        from pairgrpo_rllib.core.preferences import judge_preference_matrix

        out = []
        for p, rs in zip(prompts, responses, strict=True):
            out.append(
                judge_preference_matrix(
                    [rs], lambda a, b, p=p: self.prob(p, a, b), sample=True, generator=generator
                )[0]
            )
        return np.stack([o.numpy() for o in out]).astype(np.float32)


class AnnotatorScorer(PairScorer):
    """The synthetic task's annotator: P(a > b) = sigmoid((truth(a) - truth(b)) / temperature), the
    same Bradley-Terry labeller (and noise) that labelled the dataset's pairs. Training sees only its
    labels, never the truth's values."""

    kind = "annotator"

    def __init__(self, temperature: float = 0.25):
        self.temperature = float(temperature)

    def prob(self, prompt, a, b):
        from pairgrpo_rllib.envs.llm.synthetic import truth_reward

        q = prompt[-1]["content"]
        diff = (truth_reward(q, a) - truth_reward(q, b)) / self.temperature
        return float(1.0 / (1.0 + np.exp(-diff)))


class GenerativeJudge(PairScorer):
    """A causal LM asked which of two responses is better (:data:`JUDGE_TEMPLATE`, chat-formatted
    where the tokenizer has a template); P(A) from its next-token probabilities of "A" and "B",
    averaged over both presentation orders (position bias removed: ``prob(a, b) = 1 - prob(b, a)``
    exactly)."""

    kind = "judge"

    def __init__(self, path: str, *, dtype: str = "float32", trust_remote_code: bool = False):
        from pairgrpo_rllib.envs.llm.models import load_causal_lm, load_tokenizer

        self.tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
        self.model = load_causal_lm(path, dtype=dtype, trust_remote_code=trust_remote_code).eval()
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in (" A", " B")]
        self.choice_ids = [i[-1] for i in ids]

    @torch.no_grad()
    def _p_first(self, prompt: str, a: str, b: str) -> float:
        from pairgrpo_rllib.envs.llm.models import format_prompt

        text = format_prompt(self.tokenizer, JUDGE_TEMPLATE.format(prompt=prompt, a=a, b=b))
        ids = torch.as_tensor([self.tokenizer(text, add_special_tokens=False)["input_ids"]])
        logits = self.model(input_ids=ids, logits_to_keep=1).logits[0, -1].float()
        two = torch.log_softmax(logits[self.choice_ids], dim=-1)
        return float(two[0].exp())

    def prob(self, prompt, a, b):
        q = prompt[-1]["content"]
        return 0.5 * (self._p_first(q, a, b) + 1.0 - self._p_first(q, b, a))


def make_pair_scorer(spec: dict) -> PairScorer:
    if spec["kind"] == "annotator":
        return AnnotatorScorer(spec.get("temperature", 0.25))
    return GenerativeJudge(spec["path"], dtype=spec.get("dtype", "float32"))
