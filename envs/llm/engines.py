"""Rollout engines: G sampled responses per prompt with the sampler's per-token log-probs.

One interface (:class:`Engine`), two implementations:

``transformers``  ``model.generate(num_return_sequences=G)`` on the runner's own copy of the policy
                  (the RLModule's LM): a weight sync of the module is a weight sync of the engine.
``vllm``          ``vllm.LLM`` with ``SamplingParams(n=G, logprobs=0)``; weights pushed after each
                  sync with ``collective_rpc("reload_weights")`` (envs/llm/vllm_engine.py).

Both sample from the full distribution ``softmax(logits / temperature)`` (no top-k/top-p: the
learner's ratio is only correct for the distribution actually sampled) and return fixed shapes:
responses padded to ``max_new_tokens``, so that groups from several runners concatenate without
re-padding. A response is its tokens up to and including the first EOS (or all ``max_new_tokens``
when it never ends: a truncated response, counted in ``truncated``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pairgrpo_rllib.core.distributions import token_logp
from pairgrpo_rllib.core.seeding import derive_seed


@dataclass
class Generation:
    """Responses of N prompts, G each (numpy, fixed widths)."""

    response_ids: np.ndarray  # (N, G, T) int64, pad after the response
    response_mask: np.ndarray  # (N, G, T) float32, 1 on response tokens (EOS included)
    logp: np.ndarray  # (N, G, T) float32, the sampler's log-probs (0 on padding)
    texts: list[list[str]]  # decoded responses (special tokens dropped)
    truncated: int  # responses that hit max_new_tokens without EOS


def left_pad(seqs: list[list[int]], width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, mask)``, both ``(len(seqs), width)``, sequences right-aligned (left padding)."""
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        if len(s) > width:
            raise ValueError(f"a prompt of {len(s)} tokens does not fit max_prompt_tokens={width}")
        if s:
            ids[i, width - len(s) :] = s
            mask[i, width - len(s) :] = 1
    return ids, mask


def response_masks(tokens: np.ndarray, eos_id: int) -> tuple[np.ndarray, int]:
    """Mask of each row's tokens up to and including its first EOS; and how many rows never ended."""
    is_eos = tokens == eos_id
    ended = is_eos.any(-1)
    first = np.where(ended, is_eos.argmax(-1), tokens.shape[-1] - 1)
    mask = (np.arange(tokens.shape[-1])[None] <= first[:, None]).astype(np.float32)
    return mask, int((~ended).sum())


class Engine:
    """Generate G responses per prompt. Subclasses implement ``generate`` and ``load_weights``."""

    name = "base"

    def generate(
        self,
        prompt_ids: np.ndarray,
        prompt_mask: np.ndarray,
        n: int,
        *,
        seeds: list[int],
        greedy: bool = False,
    ) -> Generation:
        """``n`` responses to each of the prompts (rows), ``seeds`` one per prompt."""
        raise NotImplementedError

    def load_weights(self, state_dict: dict) -> None:
        """Serve new weights (called after every weight sync)."""
        raise NotImplementedError

    def stop(self) -> None:
        return None


class TransformersEngine(Engine):
    """``generate`` on a transformers causal LM (the runner's module's LM, shared)."""

    name = "transformers"

    def __init__(self, model, tokenizer, *, temperature: float, max_new_tokens: int):
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = float(temperature)
        self.max_new_tokens = int(max_new_tokens)

    @torch.no_grad()
    def generate(self, prompt_ids, prompt_mask, n, *, seeds, greedy=False) -> Generation:
        tok = self.tokenizer
        # generate() draws from torch's global generator, one stream for the whole batch: the samples
        # depend on the batch's composition (the vLLM engine seeds each prompt on its own).
        torch.manual_seed(derive_seed(*seeds) if len(seeds) > 1 else int(seeds[0]))
        self.model.eval()
        out = self.model.generate(
            input_ids=torch.as_tensor(prompt_ids),
            attention_mask=torch.as_tensor(prompt_mask),
            do_sample=not greedy,
            temperature=self.temperature if not greedy else None,
            top_k=0 if not greedy else None,
            top_p=1.0 if not greedy else None,
            num_return_sequences=n,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        p = prompt_ids.shape[1]
        tokens = out.sequences[:, p:]  # (N*G, T') rows prompt-major: prompt i's G rows are consecutive
        t_gen = tokens.shape[1]
        logits = torch.stack(out.logits, dim=1)  # (N*G, T', V) raw logits
        logp = token_logp(logits, tokens, self.temperature).numpy()
        tokens = tokens.numpy()
        mask, truncated = response_masks(tokens, tok.eos_token_id)
        width = self.max_new_tokens
        ids = np.full((tokens.shape[0], width), tok.pad_token_id, dtype=np.int64)
        ids[:, :t_gen] = tokens
        full_mask = np.zeros((tokens.shape[0], width), dtype=np.float32)
        full_mask[:, :t_gen] = mask
        full_logp = np.zeros((tokens.shape[0], width), dtype=np.float32)
        full_logp[:, :t_gen] = logp * mask
        ids = np.where(full_mask > 0, ids, tok.pad_token_id)
        texts = tok.batch_decode(
            [row[m > 0].tolist() for row, m in zip(ids, full_mask, strict=True)], skip_special_tokens=True
        )
        n_prompts = prompt_ids.shape[0]
        shape = (n_prompts, n, width)
        return Generation(
            response_ids=ids.reshape(shape),
            response_mask=full_mask.reshape(shape),
            logp=full_logp.reshape(shape),
            texts=[texts[i * n : (i + 1) * n] for i in range(n_prompts)],
            truncated=truncated,
        )

    def load_weights(self, state_dict: dict) -> None:
        # The engine generates with the module's own LM: RLlib's set_state already put the weights in.
        return None
