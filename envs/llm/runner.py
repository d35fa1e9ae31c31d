"""``LLMGroupRunner``: the rollout actor of the LLM path, an RLlib ``EnvRunner``.

It owns an inference-only copy of the policy module (``CausalLMModule``), a rollout engine
(``engines.py``: transformers or vLLM), the prompt list and the scorer. ``sample_groups`` returns the
same ``(N, G, T)`` group batch as the MuJoCo runner (``core.names``), so the GRPO-family driver and
learners are unchanged:

* ``prompt_ids``/``prompt_mask`` ``(N, G, P)``: the prompt, left-padded to ``max_prompt_tokens``;
* ``actions`` ``(N, G, T)`` response token ids, ``loss_mask`` on the response (EOS included),
  ``action_logp`` the engine's log-probs (pi_old);
* ``scores`` ``(N, G)`` from the scorer; ``rewards`` ``(N, G, T)`` the score on the last token.

Which prompts: the driver numbers the groups it asks for (``first``: the index of the first one in
the run), and group k takes prompt ``order[k mod n]`` of a seeded permutation per pass over the
data, with generation seed ``derive_seed(seed, sample_seed, "generation", k)``. Every runner holds the
same prompt list, so the mapping does not depend on how many runners there are or which one samples,
and a resumed run (the driver's counter is in its checkpoint) continues with the next prompts.

Weights: RLlib's sync (learner -> object store -> ``set_state``) updates the module, or with
``weight_sync: collective`` learner 0's broadcast lands in it (``receive_weights``,
``envs/llm/weight_sync/``); the engine is then told to serve them (``Engine.load_weights``: nothing
to do for the transformers engine, which generates with the module's own LM).
"""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.core import COMPONENT_RL_MODULE, DEFAULT_MODULE_ID
from ray.rllib.env import INPUT_ENV_SINGLE_SPACES, INPUT_ENV_SPACES
from ray.rllib.env.env_runner import EnvRunner
from ray.rllib.utils.checkpoints import Checkpointable
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME, WEIGHTS_SEQ_NO

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.seeding import derive_seed
from pairgrpo_rllib.envs.llm.data import load_preferences, load_prompts
from pairgrpo_rllib.envs.llm.engines import TransformersEngine, left_pad
from pairgrpo_rllib.envs.llm.models import format_prompt, lm_spaces, load_tokenizer
from pairgrpo_rllib.envs.llm.weight_sync.collective import ActorEnd
from pairgrpo_rllib.judges import build_judge


class LLMGroupRunner(ActorEnd, EnvRunner, Checkpointable):
    """Groups of G responses per prompt, from a causal LM policy (module docstring)."""

    def __init__(self, *, config, **kwargs):
        super().__init__(config=config, **kwargs)
        torch.set_num_threads(1)
        self.settings = s = self.config.llm
        if s is None:
            raise ValueError("LLMGroupRunner needs a validated config (config.validate() builds config.llm)")
        self.tokenizer = load_tokenizer(s.policy.name_or_path, trust_remote_code=s.policy.trust_remote_code)
        self.max_prompt_tokens = s.max_prompt_tokens
        self.max_new_tokens = s.max_new_tokens
        self.prompts, self.prompts_dropped = self._encode_prompts(s.prompts)
        self.eval_prompts, _ = self._encode_prompts(s.eval_prompts)
        self.pairs = self._encode_pairs(s.pairs) if s.pairs is not None else None
        vocab = len(self.tokenizer)
        obs_space, act_space = lm_spaces(vocab, self.max_prompt_tokens)
        self._spaces = {
            INPUT_ENV_SPACES: (obs_space, act_space),
            INPUT_ENV_SINGLE_SPACES: (obs_space, act_space),
            DEFAULT_MODULE_ID: (obs_space, act_space),
        }
        self._weights_seq_no = 0
        self.make_module()
        self.engine = self._make_engine()
        self.scorer = build_judge(s.scorer) if s.scorer is not None else None
        self.eval_scorer = (
            self.scorer if s.eval_scorer == s.scorer else build_judge(s.eval_scorer) if s.eval_scorer else None
        )
        self._orders: dict[str, tuple[int, np.ndarray]] = {}  # purpose -> (pass, permutation)

    # ---- RLlib's EnvRunner API -----------------------------------------------------------------
    def make_env(self) -> None:
        return None  # the "environment" is the prompt list and the scorer

    def make_module(self):
        spec = self.config.get_rl_module_spec(spaces=self.get_spaces(), inference_only=True)
        self.module = spec.build()

    def get_spaces(self):
        return self._spaces

    def assert_healthy(self):
        assert self.module is not None and self.prompts, "LLMGroupRunner has no module or no prompts"

    def sample(self, **kwargs):
        raise NotImplementedError(
            "the GRPO family samples with sample_groups(); LLMGroupRunner has no episodes"
        )

    def get_metrics(self):
        return self.metrics.reduce()

    def get_state(self, components=None, *, not_components=None, **kwargs):
        state = {NUM_ENV_STEPS_SAMPLED_LIFETIME: self.num_env_steps_sampled_lifetime}
        if self._check_component(COMPONENT_RL_MODULE, components, not_components):
            state[COMPONENT_RL_MODULE] = self.module.get_state(**kwargs)
            state[WEIGHTS_SEQ_NO] = self._weights_seq_no
        return state

    def set_state(self, state) -> None:
        if COMPONENT_RL_MODULE in state:
            seq = state.get(WEIGHTS_SEQ_NO, 0)
            if seq == 0 or self._weights_seq_no < seq:
                module_state = state[COMPONENT_RL_MODULE]
                if not isinstance(module_state, dict):
                    import ray

                    module_state = ray.get(module_state)
                if DEFAULT_MODULE_ID in module_state:
                    module_state = module_state[DEFAULT_MODULE_ID]
                self.module.set_state(module_state)
                self.engine.load_weights(self.module.merged_state_dict())
            if seq > 0:
                self._weights_seq_no = seq
        if NUM_ENV_STEPS_SAMPLED_LIFETIME in state:
            self.num_env_steps_sampled_lifetime = state[NUM_ENV_STEPS_SAMPLED_LIFETIME]

    def get_ctor_args_and_kwargs(self):
        return (), {"config": self.config}

    def get_checkpointable_components(self):
        return []

    def stop(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.stop()

    # ---- sampling --------------------------------------------------------------------------------
    def _make_engine(self):
        s = self.settings
        if s.engine == "vllm":
            from pairgrpo_rllib.envs.llm.vllm_engine import VLLMEngine  # vllm: imported only when asked for

            return VLLMEngine(
                s.policy.name_or_path,
                self.tokenizer,
                temperature=s.policy.temperature,
                max_new_tokens=self.max_new_tokens,
                max_model_len=s.max_model_len,
                seed=derive_seed(self.config.seed, self.config.sample_seed, "vllm", self.worker_index),
                dtype=s.policy.dtype,
            )
        return TransformersEngine(
            self.module.lm, self.tokenizer, temperature=s.policy.temperature, max_new_tokens=self.max_new_tokens
        )

    def prompt_index(self, k: int) -> int:
        """The prompt of the run's k-th group: a seeded permutation per pass over the prompts."""
        return self._index(k, len(self.prompts), "prompt order")

    def _index(self, k: int, n: int, purpose: str) -> int:
        """Item ``k mod n`` of the seeded permutation of pass ``k // n`` (one pass kept per purpose)."""
        epoch = k // n
        cached = self._orders.get(purpose)
        if cached is None or cached[0] != epoch:
            seed = derive_seed(self.config.seed, self.config.sample_seed, purpose, epoch)
            cached = self._orders[purpose] = (epoch, np.random.default_rng(seed).permutation(n))
        return int(cached[1][k % n])

    def _encode_prompts(self, sources) -> tuple[list[tuple[list[dict], list[int]]] | None, int]:
        """``(messages, prompt ids)`` of every prompt that fits ``max_prompt_tokens``, and how many
        did not (dropped)."""
        if sources is None:
            return None, 0
        kept, dropped = [], 0
        for source in sources:
            for messages in load_prompts(source.path, **source.load_kwargs()):
                ids = self.tokenizer(format_prompt(self.tokenizer, messages), add_special_tokens=False)
                if len(ids["input_ids"]) > self.max_prompt_tokens:
                    dropped += 1
                else:
                    kept.append((messages, ids["input_ids"]))
        if not kept:
            raise ValueError(
                f"env_config.max_prompt_tokens={self.max_prompt_tokens} is invalid: no prompt of "
                f"{', '.join(repr(src.path) for src in sources)} fits; raise it"
            )
        return kept, dropped

    def _encode_pairs(self, sources: list[dict]) -> list[tuple]:
        """Dataset pairs as ``(messages, prompt ids, chosen ids, rejected ids)``; responses end with
        EOS and are cut at ``max_new_tokens`` (counted); pairs whose prompt does not fit are dropped."""
        rows = []
        for source in sources:
            rows += load_preferences(source.path, **source.load_kwargs(), seed=self.config.seed or 0)
        tok, out = self.tokenizer, []
        self.pairs_dropped = self.responses_cut = 0
        for r in rows:
            p = tok(format_prompt(tok, r["messages"]), add_special_tokens=False)["input_ids"]
            if len(p) > self.max_prompt_tokens:
                self.pairs_dropped += 1
                continue
            ids = []
            for text in (r["chosen"], r["rejected"]):
                t = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                self.responses_cut += len(t) > self.max_new_tokens
                ids.append(t[: self.max_new_tokens])
            out.append((r["messages"], p, ids[0], ids[1]))
        if not out:
            raise ValueError(
                f"env_config.max_prompt_tokens={self.max_prompt_tokens} is invalid: no pair of "
                f"{', '.join(repr(src.path) for src in sources)} fits; raise it"
            )
        return out

    def sample_pairs(self, num_pairs: int, first: int = 0) -> dict:
        """Dataset pairs ``first .. first + num_pairs - 1`` of the run as a group batch with G = 2
        (member 0 chosen, member 1 rejected; ``action_logp`` 0: offline data has no sampler)."""
        if not self.pairs:
            raise ValueError("env_config.pairs is not set; DPO and ORPO need the dataset's pairs")
        chosen = [
            self.pairs[self._index(k, len(self.pairs), "pair order")] for k in range(first, first + num_pairs)
        ]
        pad = self.tokenizer.pad_token_id
        ids, mask = left_pad([c[1] for c in chosen], self.max_prompt_tokens, pad)
        width = self.max_new_tokens
        actions = np.full((num_pairs, 2, width), pad, dtype=np.int64)
        rmask = np.zeros((num_pairs, 2, width), dtype=np.float32)
        for i, c in enumerate(chosen):
            for j, resp in enumerate((c[2], c[3])):
                actions[i, j, : len(resp)] = resp
                rmask[i, j, : len(resp)] = 1.0
        tile = lambda x: np.repeat(x[:, None], 2, axis=1)  # noqa: E731
        out = {
            names.PROMPT_IDS: tile(ids),
            names.PROMPT_MASK: tile(mask),
            names.ACTIONS: actions,
            names.ACTION_LOGP: np.zeros_like(rmask),
            names.MASK: rmask,
            names.REWARDS: np.zeros_like(rmask),
            names.SCORES: np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (num_pairs, 1)),
        }
        out[names.EPISODE_RETURNS] = np.zeros(0, dtype=np.float64)
        out[names.ENV_STEPS] = int(rmask.sum())
        self.num_env_steps_sampled_lifetime += out[names.ENV_STEPS]
        return out

    def _generate(self, chosen: list[tuple[list[dict], list[int]]], seeds: list[int], greedy: bool, n: int):
        ids, mask = left_pad([c[1] for c in chosen], self.max_prompt_tokens, self.tokenizer.pad_token_id)
        return ids, mask, self.engine.generate(ids, mask, n, seeds=seeds, greedy=greedy)

    def sample_groups(self, num_groups: int, first: int = 0) -> dict:
        """Groups ``first .. first + num_groups - 1`` of the run as a batch dict ``(N, G, ...)``.

        All groups are generated in one engine call (prompt k seeded with
        ``derive_seed(seed, sample_seed, "generation", k)``; the vLLM engine seeds each prompt on its
        own, the transformers engine draws one stream for the batch).
        """
        g = self.config.group_size
        ks = range(first, first + num_groups)
        prompts = [self.prompts[self.prompt_index(k)] for k in ks]
        seeds = [derive_seed(self.config.seed, self.config.sample_seed, "generation", k) for k in ks]
        ids, mask, gen = self._generate(prompts, seeds, False, g)
        labels = None
        if self.scorer.pairwise:  # a pairwise judge: labels; the score is the win rate
            generator = torch.Generator().manual_seed(
                derive_seed(self.config.seed, self.config.sample_seed, "pair labels", first, num_groups)
            )
            labels = self.scorer.labels([p[0] for p in prompts], gen.texts, generator)  # (N, G, G)
            scores = labels.sum(-1) / (g - 1)
        else:
            scores = self.scorer.score([p[0] for p in prompts], gen.texts)  # (N, G)
        rewards = np.zeros_like(gen.logp)
        last = np.maximum(gen.response_mask.sum(-1).astype(np.int64) - 1, 0)  # (N, G)
        np.put_along_axis(rewards, last[..., None], scores[..., None], axis=-1)
        tile = lambda x: np.repeat(x[:, None], g, axis=1)  # noqa: E731  (N, P) -> (N, G, P)
        out = {
            names.PROMPT_IDS: tile(ids),
            names.PROMPT_MASK: tile(mask),
            names.ACTIONS: gen.response_ids,
            names.ACTION_LOGP: gen.logp,
            names.MASK: gen.response_mask,
            names.REWARDS: rewards,
            names.SCORES: scores.astype(np.float32),
        }
        if labels is not None:
            out[names.LABELS] = labels
        out[names.EPISODE_RETURNS] = out[names.SCORES].reshape(-1).astype(np.float64)
        out[names.ENV_STEPS] = int(out[names.MASK].sum())
        out[names.TRUNCATED_RESPONSES] = gen.truncated
        self.num_env_steps_sampled_lifetime += out[names.ENV_STEPS]
        return out

    def evaluate(
        self, num_episodes: int, seed: int = 10_000, samples: int = 4, greedy: bool = False
    ) -> list[float]:
        """Mean evaluation score of each of the first ``num_episodes`` evaluation prompts, over
        ``samples`` responses sampled from the policy (its expected score, what RL optimises; fixed
        seeds, so two evaluations of one policy agree) or one greedy response (``greedy``); scored by
        the evaluation scorer (the synthetic task's truth, where configured)."""
        prompts = (self.eval_prompts or self.prompts)[:num_episodes]
        n = 1 if greedy else samples
        _, _, gen = self._generate(prompts, [seed + i for i in range(len(prompts))], greedy, n)
        return self.eval_scorer.score([p[0] for p in prompts], gen.texts).mean(axis=1).tolist()
