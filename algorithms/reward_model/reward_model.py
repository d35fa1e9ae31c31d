"""A Bradley-Terry reward model trained on chosen/rejected pairs (the scorer of GRPO-family LLM runs).

Implementation details
1. Model: ``AutoModelForSequenceClassification`` with one output, initialised from the given causal
   LM (usually the SFT policy: InstructGPT's recipe) or any sequence-classification path; the score
   of a response is the output at the last real token of the chat-formatted conversation with the
   response as the assistant's turn (``judges/reward_model.reward_model_text``, the text the rollout
   actors score).
2. Loss: ``-log sigmoid(r(x, y_w) - r(x, y_l))`` averaged over pairs (Bradley-Terry).
3. Reported: pair accuracy (``r(y_w) > r(y_l)``) on the held-out pairs and on the training pairs.
   With noisy labels the held-out accuracy is bounded by the labels' own agreement with the truth.
4. ``transformers.Trainer`` runs the optimisation (only ``compute_loss`` is ours).
"""

from __future__ import annotations

import time

from pairgrpo_rllib.algorithms.common.hf_training import job_dataset, save_atomically, start_job, train_job
from pairgrpo_rllib.envs.llm.data import load_preferences
from pairgrpo_rllib.envs.llm.models import torch_dtype
from pairgrpo_rllib.judges.reward_model import reward_model_text


def encode_pairs(tokenizer, rows: list[dict], max_length: int) -> tuple[list[dict], int]:

    out, dropped = [], 0
    for row in rows:
        c = tokenizer(reward_model_text(tokenizer, row["messages"], row["chosen"]), add_special_tokens=False)
        r = tokenizer(
            reward_model_text(tokenizer, row["messages"], row["rejected"]), add_special_tokens=False
        )
        if len(c["input_ids"]) > max_length or len(r["input_ids"]) > max_length:
            dropped += 1
            continue
        out.append({"chosen_ids": c["input_ids"], "rejected_ids": r["input_ids"]})
    return out, dropped


def pair_collator(pad_id: int):
    import torch

    def pad(seqs):
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.as_tensor(s)
            mask[i, : len(s)] = 1
        return ids, mask

    def collate(features):
        c_ids, c_mask = pad([f["chosen_ids"] for f in features])
        r_ids, r_mask = pad([f["rejected_ids"] for f in features])
        return {"chosen_ids": c_ids, "chosen_mask": c_mask, "rejected_ids": r_ids, "rejected_mask": r_mask}

    return collate


def bradley_terry_loss(chosen_scores, rejected_scores):
    import torch

    return -torch.nn.functional.logsigmoid(chosen_scores - rejected_scores).mean()


def pair_accuracy(model, dataset, collate, batch_size: int = 64) -> float:
    import torch

    model.eval()
    right = total = 0
    with torch.no_grad():
        for i in range(0, len(dataset), batch_size):
            b = collate([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))])
            rc = model(input_ids=b["chosen_ids"], attention_mask=b["chosen_mask"]).logits[:, 0]
            rr = model(input_ids=b["rejected_ids"], attention_mask=b["rejected_mask"]).logits[:, 0]
            right += int((rc > rr).sum())
            total += len(rc)
    return right / total if total else float("nan")


def run_reward_model(spec: dict, report=None) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, Trainer, set_seed


    s, tok, start = start_job(spec, "reward_model")
    m = s["model"]
    # a fresh head (the reward model's score layer) is drawn from the job's seed, not from
    # whatever the process drew before: the same job gives the same model in any process
    set_seed(s["training"]["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(
        m["name_or_path"],
        num_labels=1,
        dtype=torch_dtype(m["dtype"]),
        trust_remote_code=m["trust_remote_code"],
    )
    model.config.pad_token_id = tok.pad_token_id
    max_len = s["training"]["max_length"]

    train, dropped = job_dataset(s["data"], load_preferences, encode_pairs, tok, max_len, "pair")
    evaluation, _ = job_dataset(s["eval_data"], load_preferences, encode_pairs, tok, max_len, "pair")
    collate = pair_collator(tok.pad_token_id)

    class PairTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            rc = model(input_ids=inputs["chosen_ids"], attention_mask=inputs["chosen_mask"]).logits[:, 0]
            rr = model(input_ids=inputs["rejected_ids"], attention_mask=inputs["rejected_mask"]).logits[:, 0]
            loss = bradley_terry_loss(rc, rr)
            return (loss, {"margin": rc - rr}) if return_outputs else loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            with torch.no_grad():
                loss = self.compute_loss(model, inputs)
            return loss.detach(), None, None

    trainer, result = train_job(PairTrainer, s, model, train, evaluation, collate, "reward_model", report)
    summary = {
        "job": "reward_model",
        "pairs": len(train),
        "pairs_dropped_too_long": dropped,
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "train_pair_accuracy": pair_accuracy(model, train, collate),
        "settings": s,
    }
    if evaluation is not None:
        summary["eval_pair_accuracy"] = pair_accuracy(model, evaluation, collate)
        summary["eval_pairs"] = len(evaluation)
    summary["wall_s"] = time.monotonic() - start
    if report is not None:
        report({k: v for k, v in summary.items() if isinstance(v, int | float)})
    save_atomically(model, tok, s["output"], summary)
    return summary
