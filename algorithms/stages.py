"""The preparation stages of an LLM run by name: one literal dict, the only dispatcher.

An experiment's ``prepare:`` section (``app/prepare.py``), the ``pairgrpo llm`` commands
(``app/cli.py``) and the Tune trainables (``registry.register_with_tune``) all look a stage up in
``STAGES``. A stage has one name, the key an experiment YAML writes (``reward_model``); the command
line spells it with dashes (``pairgrpo llm reward-model``) and Tune registers a job stage as
``pairgrpo-<dashed name>`` (``pairgrpo-reward-model``): both derived here (:func:`cli_name`,
:func:`trainable_name`), never written by hand.

Two kinds of stage:

* a *directory* stage (``make_tiny``, ``make_task``) takes the directory it writes and a few
  options (``Stage.options``, checked with ``core.checks.check_field``);
* a *job* stage (``sft``, ``reward_model``) takes a job mapping (model, data, training, output),
  checked by ``hf_training.job_settings`` before any model loads.

A stage is done when every one of its ``files`` is under its output; those paths are promised to
the stages after it (their checks accept them as present).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pairgrpo_rllib.algorithms.common.hf_training import job_settings
from pairgrpo_rllib.core.checks import check_field, fail
from pairgrpo_rllib.core.defaults import Field
from pairgrpo_rllib.envs.llm.synthetic import write_task as write

# The synthetic task's files (``envs.llm.synthetic.write_task``).
TASK_FILES = (
    "hh_rlhf_train.jsonl",
    "hh_rlhf_test.jsonl",
    "ultrafeedback_binarized_train_prefs.jsonl",
    "ultrafeedback_binarized_test_prefs.jsonl",
    "ultrafeedback_train.jsonl",
    "ultrafeedback_test.jsonl",
    "sft_train.jsonl",
    "sft_test.jsonl",
    "eval_prompts.jsonl",
    "eval_helpful.jsonl",
    "eval_harmless.jsonl",
)


@dataclass(frozen=True)
class Stage:
    run: str  # "module:function": f(output, **options) for a directory stage, f(spec, report=None) for a job
    made: str  # what it writes, in words (the command line's report)
    options: dict[str, Field] = field(default_factory=dict)  # a directory stage's options
    job: bool = False  # takes a job mapping instead of a directory
    files: tuple[str, ...] = ("config.json",)  # under the output: all present = done


SEED = Field(0, "seed of the stage's random numbers", "chosen", kind="int", low=0, high=2**31 - 1)
ROWS = {"kind": "int", "low": 3, "high": 10_000_000}

STAGES: dict[str, Stage] = {
    "make_tiny": Stage(
        "pairgrpo_rllib.envs.llm.models:make_tiny",
        "tiny model and tokenizer",
        {"seed": SEED},
    ),
    "make_task": Stage(
        "pairgrpo_rllib.algorithms.stages:write_task",
        "synthetic task",
        {
            "seed": SEED,
            "train": Field(3000, "training rows of the synthetic task", "chosen", **ROWS),
            "test": Field(300, "held-out rows of the synthetic task", "chosen", **ROWS),
        },
        files=TASK_FILES,
    ),
    "sft": Stage("pairgrpo_rllib.algorithms.sft.sft:run_sft", "SFT model", job=True),
    "reward_model": Stage(
        "pairgrpo_rllib.algorithms.reward_model.reward_model:run_reward_model", "reward model", job=True
    ),
}


def write_task(output: str, *, seed: int, train: int, test: int) -> dict[str, str]:
    """``make_task``: the synthetic task's files under ``output`` (its options by their YAML names)."""

    return write(output, n_train=train, n_test=test, seed=seed)


def cli_name(stage: str) -> str:
    """The command line's spelling: ``reward_model`` -> ``reward-model``."""
    return stage.replace("_", "-")


def trainable_name(stage: str) -> str:
    """The name Tune knows a job stage by: ``pairgrpo-reward-model``."""
    return f"pairgrpo-{cli_name(stage)}"


# command-line name -> stage
CLI_NAMES: dict[str, str] = {cli_name(s): s for s in STAGES}
# every option of a directory stage (a prepare item's keys besides its stage)
OPTION_NAMES: frozenset[str] = frozenset(k for st in STAGES.values() for k in st.options)


def check_options(stage: str, options: dict, where: str, error: type[Exception] = ValueError) -> dict:
    """A directory stage's options checked and completed with their defaults."""
    allowed = STAGES[stage].options
    for k in options:
        if k not in allowed:
            fail(f"{where}.{k}", options[k], f"{stage} takes {', '.join(allowed) or 'no other key'}", error)
    return {k: check_field(f"{where}.{k}", f, options.get(k, f.default), error) for k, f in allowed.items()}


def check_job(stage: str, spec: dict, promised=()) -> dict:
    """A job stage's settings (``hf_training.job_settings``); ``promised``: paths earlier stages write."""

    return job_settings(spec, stage, promised=promised)


def outputs(stage: str, output: str) -> list[str]:
    """The paths a stage writes: its output and the files under it."""
    return [output, *(str(Path(output) / f) for f in STAGES[stage].files)]


def done(stage: str, output: str) -> bool:
    out = Path(output).expanduser()
    return all((out / f).is_file() for f in STAGES[stage].files)


def run(stage: str, target, report=None):
    """Run ``stage``: ``target`` is a job mapping (job stage) or ``(output, options)``.

    Nothing half-written is left when it fails: a directory stage writes into a temporary folder
    beside its output and renames it into place at the end; a job's model is saved the same way
    (``hf_training.save_atomically``), and its temporary folder is removed if the save fails. (A
    job's Trainer checkpoints, ``output + ".checkpoints"``, stay: a rerun resumes from them.)"""
    module, _, attr = STAGES[stage].run.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    if STAGES[stage].job:
        out = target.get("output") if isinstance(target, dict) else None
        try:
            return fn(target, report=report)
        except BaseException:
            if isinstance(out, str) and out:
                path = Path(out).expanduser()
                shutil.rmtree(path.with_name(f".{path.name}.tmp-{os.getpid()}"), ignore_errors=True)
            raise
    output, options = target
    out = Path(output).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(
            f"DIR={str(output)!r} is invalid: it exists and is not empty (an older, unfinished output?); "
            "remove it or choose a new directory"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        made = fn(str(scratch / out.name), **options)
        if out.exists():
            out.rmdir()  # an empty folder the user made for it
        (scratch / out.name).rename(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if isinstance(made, dict):  # file paths, as the stage wrote them: where they are now
        made = {k: str(out / Path(v).name) for k, v in made.items()}
    return out if isinstance(made, Path | str) else made


def job_trainable(stage: str):
    """The Tune function trainable of a job stage: ``config = {"spec": <job mapping>}``; every
    Trainer log step is reported to Tune. A restored trial reruns it and the Trainer resumes from its
    newest checkpoint (``output + ".checkpoints"``)."""

    def trainable(config: dict) -> None:
        from ray import tune

        summary = run(stage, config["spec"], report=tune.report)
        tune.report({k: v for k, v in summary.items() if isinstance(v, int | float)} | {"done_job": 1})

    trainable.__name__ = trainable.__qualname__ = f"{stage}_trainable"
    return trainable
