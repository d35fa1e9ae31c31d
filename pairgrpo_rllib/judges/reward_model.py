"""``reward_model``: a Bradley-Terry reward model, any ``AutoModelForSequenceClassification`` path
with one output (the project's ``pairgrpo llm reward-model`` writes one).

The score of a response is the model's output on the conversation with the response as the
assistant's turn (:func:`reward_model_text`). It has one notion of "better", so it answers every
aspect of an evaluation the same way. With ``actors: N`` it is served by N Ray actors of its own
(:class:`RewardModelPool`), so that scoring scales apart from generation.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from pairgrpo_rllib.envs.llm.models import check_model_path, format_prompt, load_tokenizer, torch_dtype
from pairgrpo_rllib.judges.base import ScoreVerdicts


def reward_model_text(tokenizer, prompt: list[dict], response: str) -> str:
    """The text a reward model scores: the conversation with the response as the assistant's turn
    (also what the reward-model job trains on, so training and scoring see the same text)."""

    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [*prompt, {"role": "assistant", "content": response}], tokenize=False
        )
    return format_prompt(tokenizer, prompt) + " " + response


class _CachedVerdicts(ScoreVerdicts):
    """Verdicts from the scores, each (conversation, response) scored once: an evaluation compares
    the same responses for several aspects and in both orders."""

    def values(self, prompts, responses, aspect):
        cache = self.__dict__.setdefault("_cache", {})
        keys = [
            (tuple((m["role"], m["content"]) for m in p), r) for p, r in zip(prompts, responses, strict=True)
        ]
        todo = [i for i, k in enumerate(keys) if k not in cache]
        if todo:
            got = self.score([prompts[i] for i in todo], [[responses[i]] for i in todo])[:, 0]
            cache.update(zip([keys[i] for i in todo], got.tolist(), strict=True))
        return np.asarray([cache[k] for k in keys])


class RewardModelJudge(_CachedVerdicts):
    kind = "reward_model"

    def __init__(
        self, path: str, *, dtype: str = "float32", trust_remote_code: bool = False, batch_size: int = 64
    ):
        from transformers import AutoModelForSequenceClassification


        check_model_path(path, "reward_model.path")
        self.tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code, padding_side="right")
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, dtype=torch_dtype(dtype), trust_remote_code=trust_remote_code
        )
        if self.model.config.num_labels != 1:
            raise ValueError(
                f"reward_model.path={path!r} is invalid: a reward model has one output, this one has "
                f"num_labels={self.model.config.num_labels}"
            )
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        self.batch_size = batch_size

    @classmethod
    def from_spec(cls, spec):
        return RewardModelPool(spec) if spec.actors else cls(spec.path, dtype=spec.dtype)

    @torch.no_grad()
    def score_texts(self, texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i : i + self.batch_size], return_tensors="pt", padding=True)
            out.append(self.model(**enc).logits[:, 0].float().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def score(self, prompts, responses) -> np.ndarray:
        """``(N, G)`` float32: ``r(x, y)`` of each response."""
        texts = [
            reward_model_text(self.tokenizer, p, r)
            for p, rs in zip(prompts, responses, strict=True)
            for r in rs
        ]
        g = len(responses[0]) if responses else 0
        return self.score_texts(texts).reshape(len(responses), g).astype(np.float32)


class RewardModelActor:
    """One reward model in a Ray actor of its own (:class:`RewardModelPool`)."""

    def __init__(self, spec):
        torch.set_num_threads(1)  # several actors share a node's cores
        self.judge = RewardModelJudge.from_spec(spec)

    def score(self, prompts, responses):
        return self.judge.score(prompts, responses)


class RewardModelPool(_CachedVerdicts):
    """A reward model served by ``spec.actors`` Ray actors (``num_cpus``/``num_gpus`` each); a batch
    is split in contiguous parts, one per actor, and the scores come back in order. Created by the
    rollout actor that uses it (and gone with it). Inside a Tune trial its actors take the bundles
    that ``GroupAlgorithm.default_resource_request`` adds to the trial's placement group."""

    kind = "reward_model"

    def __init__(self, spec):
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        group = ray.util.get_current_placement_group()
        options = {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus}
        if group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_capture_child_tasks=True
            )
        remote = ray.remote(**options)(RewardModelActor)
        self.actors = [remote.remote(dataclasses.replace(spec, actors=0)) for _ in range(spec.actors)]

    def score(self, prompts, responses) -> np.ndarray:
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

    def stop(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
