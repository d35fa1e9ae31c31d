"""Supervised fine-tuning of the policy on chosen responses (the starting point of every RL run).

The Pair-GRPO paper starts its LLM runs from a chat model; here, as in the usual RLHF pipeline
(InstructGPT, DPO's "SFT first"), the policy is first fine-tuned on the preferred responses.

Implementation details
1. The loss is the next-token cross-entropy on the response tokens only (prompt tokens and padding
   get label -100), the response followed by EOS so that the policy learns to stop.
2. The prompt is formatted as the RL runs format it (``envs/llm/models.format_prompt``: the chat
   template, else the plain HH form), so SFT and RL see the same text.
3. Rows whose prompt alone does not fit ``max_length`` are dropped (counted); longer responses are cut.
4. ``transformers.Trainer`` runs the optimisation (AdamW, linear schedule, checkpoints, resume).
"""

from __future__ import annotations

import time

from pairgrpo_rllib.algorithms.common.hf_training import job_dataset, save_atomically, start_job, train_job
from pairgrpo_rllib.envs.llm.data import load_sft
from pairgrpo_rllib.envs.llm.models import format_prompt, load_causal_lm


def encode_sft(tokenizer, rows: list[dict], max_length: int) -> tuple[list[dict], int]:
    """Token ids and labels (-100 on the prompt) of each row; and how many rows were dropped."""

    out, dropped = [], 0
    for row in rows:
        p = tokenizer(format_prompt(tokenizer, row["messages"]), add_special_tokens=False)["input_ids"]
        r = tokenizer(row["response"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(p) >= max_length:
            dropped += 1
            continue
        r = r[: max_length - len(p)]
        out.append({"input_ids": p + r, "labels": [-100] * len(p) + r})
    return out, dropped


def pad_collator(pad_id: int):
    """Right-pad ``input_ids`` (pad id), ``labels`` (-100) and build ``attention_mask``."""
    import torch

    def collate(features: list[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.as_tensor(f["input_ids"])
            labels[i, :n] = torch.as_tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def run_sft(spec: dict, report=None) -> dict:
    """Train; returns the summary (also written to ``output/pairgrpo_training.json``)."""
    from transformers import Trainer


    s, tok, start = start_job(spec, "sft")
    m = s["model"]
    model = load_causal_lm(m["name_or_path"], dtype=m["dtype"], trust_remote_code=m["trust_remote_code"])
    max_len = s["training"]["max_length"]

    train, dropped = job_dataset(s["data"], load_sft, encode_sft, tok, max_len, "row")
    evaluation, _ = job_dataset(s["eval_data"], load_sft, encode_sft, tok, max_len, "row")
    trainer, result = train_job(
        Trainer, s, model, train, evaluation, pad_collator(tok.pad_token_id), "sft", report
    )
    summary = {
        "job": "sft",
        "rows": len(train),
        "rows_dropped_too_long": dropped,
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "wall_s": time.monotonic() - start,
        "settings": s,
    }
    if evaluation is not None:
        summary["eval_loss"] = trainer.evaluate()["eval_loss"]
    save_atomically(model, tok, s["output"], summary)
    return summary
