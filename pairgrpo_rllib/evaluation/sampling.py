"""Responses to evaluate: a policy's (or the baseline's) sampled answers to the held-out prompts."""

from __future__ import annotations

import torch

from pairgrpo_rllib.envs.llm.engines import TransformersEngine, left_pad
from pairgrpo_rllib.envs.llm.models import format_prompt, load_causal_lm, load_tokenizer


@torch.no_grad()
def sample_responses(
    model_path: str,
    prompts: list[list[dict]],
    *,
    samples: int,
    seed: int,
    max_prompt_tokens: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    state_dict: dict | None = None,
    engine: str = "transformers",
    dtype: str = "float32",
    batch_size: int = 64,
) -> list[list[str]]:
    """``samples`` sampled responses per prompt from the model at ``model_path`` (with ``state_dict``
    loaded over it: a trained policy), prompt *i* seeded with ``seed + i`` per batch."""

    tok = load_tokenizer(model_path)
    ids = [tok(format_prompt(tok, p), add_special_tokens=False)["input_ids"] for p in prompts]
    too_long = [i for i, x in enumerate(ids) if len(x) > max_prompt_tokens]
    if too_long:
        raise ValueError(
            f"max_prompt_tokens={max_prompt_tokens} is invalid: {len(too_long)} evaluation prompts are longer "
            f"(the first has {len(ids[too_long[0]])} tokens); raise it"
        )
    if engine == "vllm":
        from pairgrpo_rllib.envs.llm.vllm_engine import VLLMEngine

        eng = VLLMEngine(
            model_path,
            tok,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            max_model_len=max_prompt_tokens + max_new_tokens,
            seed=seed,
            dtype=dtype,
        )
        if state_dict is not None:
            eng.load_weights(state_dict)
    else:

        model = load_causal_lm(model_path, dtype=dtype)
        if state_dict is not None:
            model.load_state_dict(state_dict)
        eng = TransformersEngine(model.eval(), tok, temperature=temperature, max_new_tokens=max_new_tokens)
    try:
        out = []
        for i in range(0, len(ids), batch_size):
            chunk = ids[i : i + batch_size]
            pids, pmask = left_pad(chunk, max_prompt_tokens, tok.pad_token_id)
            gen = eng.generate(pids, pmask, samples, seeds=[seed + i + k for k in range(len(chunk))])
            out += gen.texts
        return out
    finally:
        eng.stop()
