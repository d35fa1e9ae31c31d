"""What SFT and reward-model training share: their YAML, progress lines, checkpoints, Tune reporting.

Both run ``transformers.Trainer`` (its optimizer, schedule, checkpoints and ``resume_from_checkpoint``),
on CPU or GPU alike. A job's YAML:

.. code-block:: yaml

    name: sft
    model: {name_or_path: results/tiny, dtype: float32}
    data: {path: results/task/sft_train.jsonl}          # envs/llm/data.py sources
    eval_data: {path: results/task/sft_test.jsonl}      # optional
    training: {epochs: 3, lr: 1.0e-3, batch_size: 32, max_length: 64, seed: 0, save_steps: 100}
    output: results/sft                                 # the final model is written here

The final model is written to a temporary directory beside ``output`` and renamed into place
(atomic); intermediate Trainer checkpoints live in ``output + ".checkpoints"`` and a rerun of the same
command resumes from the newest one.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.checks import check_field, check_value, fail
from pairgrpo_rllib.core.defaults import Field
from pairgrpo_rllib.envs.llm.models import check_model_folder, load_tokenizer
from pairgrpo_rllib.envs.llm.settings import data_source

# A job's ``training`` keys: their defaults (the quick start's tiny model on CPU) and the values
# they accept, checked by ``core.checks.check_field``.
TRAINING: dict[str, Field] = {
    "epochs": Field(3, "passes over the training data", "chosen", kind="int", low=1),
    "lr": Field(
        1e-3,
        "AdamW learning rate",
        "chosen (the tiny model)",
        kind="float",
        low=0,
        high=1,
        low_open=True,
        fix="e.g. 1e-3 for a tiny model, 1e-5 for 7B",
    ),
    "batch_size": Field(32, "training rows per device and step", "chosen", kind="int", low=1),
    "max_length": Field(64, "tokens per row; longer rows are dropped", "chosen", kind="int", low=1),
    "seed": Field(0, "seed of the data order and of fresh weights", "chosen", kind="int", low=0),
    "save_steps": Field(100, "steps between Trainer checkpoints", "chosen", kind="int", low=1),
    "weight_decay": Field(0.0, "AdamW weight decay", "transformers", kind="float", low=0, high=1),
    "warmup_ratio": Field(
        0.0, "share of the steps in linear warmup", "transformers", kind="float", low=0, high=1
    ),
    "eval_batch_size": Field(64, "evaluation rows per device and step", "chosen", kind="int", low=1),
    "logging_steps": Field(
        10, "steps between progress lines (and Tune reports)", "chosen", kind="int", low=1
    ),
}
JOB_KEYS = ("name", "model", "data", "eval_data", "training", "output")


def job_settings(spec: dict, kind: str, promised=()) -> dict:
    """Defaults filled and every value checked (one line naming the field), before any model loads.
    ``kind``: the job's stage name (``algorithms.stages``); ``promised``: paths an earlier stage of
    the same run will write, accepted as present."""

    if not isinstance(spec, dict):
        fail(kind, spec, "the YAML must be a mapping with model, data, training, output")
    unknown = set(spec) - set(JOB_KEYS)
    if unknown:
        k = sorted(unknown)[0]
        fail(k, spec[k], f"unknown key; a {kind} job takes {', '.join(JOB_KEYS)}")
    model = spec.get("model")
    if isinstance(model, str):
        model = {"name_or_path": model}
    if not isinstance(model, dict):
        fail("model", model, "give {name_or_path: <dir or hub name>, dtype: float32}")
    model = {"dtype": "float32", "trust_remote_code": False, **model}
    check_model_folder(
        model.get("name_or_path"), "model.name_or_path", promised, trust_remote_code=model["trust_remote_code"]
    )
    check_value("model.dtype", model["dtype"], "choice", choices=names.LLM_DTYPES)
    if spec.get("data") is None:
        fail("data", None, "give the training data: {path: <hub name or file>}")
    tr = dict(spec.get("training") or {})
    unknown = set(tr) - set(TRAINING)
    if unknown:
        k = sorted(unknown)[0]
        fail(f"training.{k}", tr[k], f"known keys: {', '.join(TRAINING)}")
    tr = {k: check_field(f"training.{k}", f, tr.get(k, f.default)) for k, f in TRAINING.items()}
    out = spec.get("output")
    if not isinstance(out, str) or not out:
        fail("output", out, "give the directory the trained model is written to")
    if Path(out).exists() and not (Path(out) / "config.json").is_file() and any(Path(out).iterdir()):
        fail("output", out, "it exists and holds something other than a model; choose a new directory")
    needs = "pairs" if kind == "reward_model" else "sft"  # a reward model learns from pairs only
    return {
        "name": spec.get("name", kind),
        "model": model,
        "data": data_source("data", spec["data"], promised, needs),
        "eval_data": None
        if spec.get("eval_data") is None
        else data_source("eval_data", spec["eval_data"], promised, needs),
        "training": tr,
        "output": out,
    }


def start_job(spec: dict, stage: str):
    """``(settings, tokenizer, start time)`` of a job stage: its settings checked (:func:`job_settings`),
    one torch thread (the trials beside it have cores of their own), its tokenizer padding right."""
    import torch


    s = job_settings(spec, stage)
    torch.set_num_threads(1)
    start = time.monotonic()
    m = s["model"]
    tok = load_tokenizer(m["name_or_path"], trust_remote_code=m["trust_remote_code"], padding_side="right")
    return s, tok, start


def progress_callback(tag: str, report=None):
    """A ``TrainerCallback`` printing one progress line per log step (and forwarding the metrics to
    ``report``, e.g. ``ray.tune.report``)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.start = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            shown = " ".join(
                f"{k} {v:.4g}"
                for k, v in logs.items()
                if isinstance(v, int | float) and k not in ("epoch", "step")
            )
            print(
                f"[{tag}] {time.monotonic() - self.start:7.1f}s step {state.global_step}/{state.max_steps} "
                f"epoch {state.epoch or 0:.2f} {shown}",
                file=sys.stderr,
                flush=True,
            )
            if report is not None:
                report(
                    {
                        **{k: v for k, v in logs.items() if isinstance(v, int | float)},
                        "step": state.global_step,
                    }
                )

    return Progress()


def training_arguments(settings: dict, checkpoints: str, **extra):
    from transformers import TrainingArguments

    tr = settings["training"]
    return TrainingArguments(
        output_dir=checkpoints,
        num_train_epochs=tr["epochs"],
        learning_rate=tr["lr"],
        per_device_train_batch_size=tr["batch_size"],
        per_device_eval_batch_size=tr["eval_batch_size"],
        weight_decay=tr["weight_decay"],
        warmup_steps=float(
            tr["warmup_ratio"]
        ),  # a float in [0, 1) is a fraction of the steps (transformers 5)
        seed=tr["seed"],
        data_seed=tr["seed"],
        save_steps=tr["save_steps"],
        save_total_limit=2,
        logging_steps=tr["logging_steps"],
        eval_strategy="epoch" if settings["eval_data"] else "no",
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        **extra,
    )


def newest_checkpoint(checkpoints: str) -> str | None:
    root = Path(checkpoints)
    found = (
        sorted(root.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if root.is_dir() else []
    )
    return str(found[-1]) if found else None


def save_atomically(model, tokenizer, out: str, extra: dict | None = None) -> Path:
    """``save_pretrained`` into a temporary sibling, then replace ``out`` with it."""
    import json

    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if extra:
        (tmp / "pairgrpo_training.json").write_text(json.dumps(extra, indent=2, default=str) + "\n")
    if out_path.exists():
        old = out_path.with_name(f".{out_path.name}.old-{os.getpid()}")
        out_path.rename(old)
        tmp.rename(out_path)
        shutil.rmtree(old)
    else:
        tmp.rename(out_path)
    return out_path


def job_dataset(source, loader, encode, tokenizer, max_len: int, what: str):
    """``(datasets.Dataset | None, rows dropped as too long)`` of one data source of a job: rows read
    by ``loader`` (``envs/llm/data.py``), tokenised by ``encode(tokenizer, rows, max_len)``."""
    from datasets import Dataset

    if source is None:
        return None, 0
    rows = loader(source.path, **source.load_kwargs())
    enc, dropped = encode(tokenizer, rows, max_len)
    if not enc:
        raise ValueError(
            f"training.max_length={max_len} is invalid: no {what} of {source.path!r} fits; raise it"
        )
    return Dataset.from_list(enc), dropped


def train_job(trainer_cls, settings: dict, model, train, evaluation, collator, tag: str, report=None):
    """Run ``trainer_cls`` (``transformers.Trainer`` or a subclass) with the job's arguments, our
    progress line instead of Trainer's raw dicts, and resume from the newest checkpoint if any;
    returns ``(trainer, TrainOutput)``."""
    from transformers import PrinterCallback

    checkpoints = settings["output"] + ".checkpoints"
    trainer = trainer_cls(
        model=model,
        args=training_arguments(settings, checkpoints),
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=collator,
        callbacks=[progress_callback(tag, report)],
    )
    trainer.remove_callback(PrinterCallback)
    return trainer, trainer.train(resume_from_checkpoint=newest_checkpoint(checkpoints))
