"""A causal LM as the policy of the GRPO family: the LLM counterpart of ``GroupPolicyModule``.

* ``model_config``: ``name_or_path`` (a local ``save_pretrained`` directory or a hub name),
  ``dtype`` (float32 | bfloat16 | float16), ``trust_remote_code`` (false unless set), ``temperature``
  (the sampler's: the policy is ``softmax(logits / temperature)``, so the learner's log-probs use it
  too, as the rollout engine's do).
* The frozen reference ``pi_ref`` is a copy of the initial LM kept inside the module, listed in
  ``get_non_inference_attributes``: rollout actors never build it, weight syncs never send it, and it
  is saved with checkpoints.
* Batch (``core.names``): ``prompt_ids`` ``(N, G, P)`` left-padded prompt ids with ``prompt_mask``;
  ``actions`` ``(N, G, T)`` response ids, ``loss_mask`` true on response tokens up to and including
  EOS. The learner re-runs prompt + response in one forward pass; position ids count only real
  tokens (as ``generate`` does with left padding), so the learner's log-probs of the sampled tokens
  equal the sampler's (fp32: within 1e-5, tested).
* Only the logits of the response positions are computed (``logits_to_keep``), and the token
  log-probs come from a gather and a logsumexp (``core.distributions.token_logp``): no ``V``-wide
  log-prob tensor is kept for backward beyond the logits themselves.
* ``lora`` (model_config, ours as an option): only LoRA adapters train (``peft``); the reference is
  the same model with its adapters off (no second copy), and rollout engines are given the merged
  weights (``merged_state_dict``).
* ``policy_terms`` fills ``logp`` and ``ref_logp`` (and a detached per-token ``entropy``); the exact
  KLs stay ``None``, so the losses use the configured sampled estimator (k3 by default).
"""

from __future__ import annotations

import copy

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.distributions import token_entropy, token_logp
from pairgrpo_rllib.envs.llm.models import load_causal_lm
from pairgrpo_rllib.envs.llm.settings import policy_settings


def response_logits(
    lm, prompt: torch.Tensor, prompt_mask: torch.Tensor, response: torch.Tensor, response_mask
):
    """``(B, T, V)`` next-token logits at the positions that predicted each response token."""
    ids = torch.cat([prompt, response], dim=-1).long()
    attn = torch.cat([prompt_mask, response_mask], dim=-1).long()
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    t = response.shape[-1]
    out = lm(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=t + 1, use_cache=False)
    return out.logits[:, :-1]


class CausalLMModule(TorchRLModule, InferenceOnlyAPI):
    """A Hugging Face causal LM policy with a frozen reference copy."""

    def setup(self):
        policy = policy_settings(self.model_config)  # RLlib hands the module the plain dict
        self.temperature = float(policy.temperature)
        self.lm = load_causal_lm(
            policy.name_or_path, dtype=policy.dtype, trust_remote_code=policy.trust_remote_code
        )
        lora = policy.lora
        self.lora = lora is not None
        if self.lora:
            from peft import LoraConfig, get_peft_model

            self.lm = get_peft_model(
                self.lm,
                LoraConfig(
                    r=lora.r,
                    lora_alpha=lora.alpha,
                    lora_dropout=lora.dropout,
                    target_modules=list(lora.target_modules),
                ),
            )
        elif not self.inference_only:
            self.ref_lm = copy.deepcopy(self.lm)
            self.ref_lm.requires_grad_(False)
            self.ref_lm.eval()

    def get_non_inference_attributes(self) -> list[str]:
        return [] if self.lora else ["ref_lm"]

    def _ref_logits(self, prompt, pmask, response, rmask):
        """pi_ref's logits: the frozen copy, or with LoRA the same model with its adapters off."""
        if self.lora:
            with self.lm.disable_adapter():
                return response_logits(self.lm, prompt, pmask, response, rmask)
        return response_logits(self.ref_lm, prompt, pmask, response, rmask)

    def trained_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The policy's tensors that training changes, sorted by name: every LM parameter, or with
        LoRA only the adapters (what ``weight_sync: collective`` moves; the same list on the learner
        and on an inference-only rollout copy)."""
        named = sorted(self.lm.named_parameters(), key=lambda kv: kv[0])
        if self.lora:
            named = [(k, v) for k, v in named if ".lora_" in k]
        return named

    @torch.no_grad()
    def merged_state_dict(self) -> dict:
        """The weights a rollout engine serves: the LM's, with LoRA adapters merged into the base
        weights (plain Hugging Face names)."""
        if not self.lora:
            return self.lm.state_dict()
        self.lm.merge_adapter()
        try:
            return {
                k.replace("base_model.model.", "", 1).replace(".base_layer", ""): v.clone()
                for k, v in self.lm.state_dict().items()
                if ".lora_" not in k
            }
        finally:
            self.lm.unmerge_adapter()

    def _flat(self, batch):
        n, g, t = batch[names.MASK].shape
        b = n * g
        return (
            batch[names.PROMPT_IDS].reshape(b, -1),
            batch[names.PROMPT_MASK].reshape(b, -1),
            batch[Columns.ACTIONS].reshape(b, t),
            batch[names.MASK].reshape(b, t),
        )

    def _forward(self, batch, **kwargs):
        ids = batch[names.PROMPT_IDS].long()
        mask = batch.get(names.PROMPT_MASK, torch.ones_like(ids))
        logits = self.lm(input_ids=ids, attention_mask=mask.long(), logits_to_keep=1).logits[:, -1]
        return {Columns.ACTION_DIST_INPUTS: logits / self.temperature}

    def _forward_train(self, batch, **kwargs):
        prompt, pmask, response, rmask = self._flat(batch)
        logits = response_logits(self.lm, prompt, pmask, response, rmask)
        out = {names.TOKEN_LOGP: token_logp(logits, response, self.temperature)}
        with torch.no_grad():
            out[names.TOKEN_ENTROPY] = token_entropy(logits.detach(), self.temperature)
            ref_logits = self._ref_logits(prompt, pmask, response, rmask)
            out[names.REF_TOKEN_LOGP] = token_logp(ref_logits, response, self.temperature)
        return out

    def policy_terms(self, batch, fwd_out) -> dict[str, torch.Tensor]:
        """``logp``, ``ref_logp`` and ``entropy`` with the batch's leading dims ``(N, G, T)``."""
        shape = batch[names.MASK].shape
        return {
            "logp": fwd_out[names.TOKEN_LOGP].reshape(shape),
            "ref_logp": fwd_out[names.REF_TOKEN_LOGP].reshape(shape).detach(),
            "entropy": fwd_out[names.TOKEN_ENTROPY].reshape(shape),
        }

    @torch.no_grad()
    def batch_reference_logp(self, batch) -> torch.Tensor:
        """``log pi_ref`` of the batch's response tokens, ``(N, G, T)``."""
        prompt, pmask, response, rmask = self._flat(batch)
        logits = self._ref_logits(prompt, pmask, response, rmask)
        return token_logp(logits, response, self.temperature).reshape(batch[names.MASK].shape)

    @torch.no_grad()
    def policy_logp(self, batch) -> torch.Tensor:
        """``log pi_theta`` of the batch's response tokens, ``(N, G, T)``, without gradient."""
        prompt, pmask, response, rmask = self._flat(batch)
        logits = response_logits(self.lm, prompt, pmask, response, rmask)
        return token_logp(logits, response, self.temperature).reshape(batch[names.MASK].shape)

    def reset_reference(self) -> None:
        if self.lora:
            raise ValueError("with LoRA the reference is the base model (adapters off); it cannot be reset")
        self.ref_lm.load_state_dict(self.lm.state_dict())
