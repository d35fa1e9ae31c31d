"""An experiment's ``prepare`` section: what an LLM sweep needs made first, made once.

.. code-block:: yaml

    prepare:
      - make_tiny: results/llm/tiny                      # tokenizer + tiny Qwen2 LM (seed: 0)
      - make_task: results/llm/task                      # the synthetic task's files (seed, train, test)
      - sft: jobs/llm_sft.yaml                           # a job file (relative to this YAML) or inline
      - reward_model: jobs/llm_reward_model.yaml

Stages run in order, in the driver process, before Ray starts; a stage whose output already exists is
skipped (so a rerun, a ``--resume`` or a second experiment on the same data reuses it). Every stage is
checked before the first one runs: a later stage may name an earlier stage's output, which counts as
present (:func:`promised_outputs`). On a multi-node cluster the outputs must lie on storage every
node reads (docs/llm.md). What each stage runs, its options and its outputs: ``algorithms.stages``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pairgrpo_rllib.algorithms import stages as stage_table
from pairgrpo_rllib.app import safe_yaml
from pairgrpo_rllib.core.checks import fail, suggest


class PrepareError(ValueError):
    """A bad ``prepare`` section: one line naming the stage, the field and the fix."""


class StageFailed(RuntimeError):
    """A stage that was checked failed while it ran (out of memory, disk full, ...): one line naming
    the stage, its output and the error; nothing of its output is left half-written."""


def normalize(section, base_dir: Path) -> list[dict]:
    """``[{"stage", "output", "options" | "spec"}]``; job files read (strict YAML) and inlined."""

    if section is None:
        return []
    if not isinstance(section, list):
        fail(
            "prepare",
            section,
            "give a list of stages, e.g. [{make_tiny: results/llm/tiny}, {sft: jobs/llm_sft.yaml}]",
            PrepareError,
        )
    stages = []
    for i, item in enumerate(section):
        where = f"prepare[{i}]"
        keys = [k for k in (item if isinstance(item, dict) else {}) if k in stage_table.STAGES]
        if not isinstance(item, dict) or len(keys) != 1:
            unknown = [
                k for k in (item if isinstance(item, dict) else {}) if k not in stage_table.OPTION_NAMES
            ]
            hint = suggest(unknown[0], stage_table.STAGES) if unknown and not keys else ""
            fail(
                where,
                item,
                f"each stage is a mapping with exactly one of {', '.join(stage_table.STAGES)}{hint}",
                PrepareError,
            )
        stage = keys[0]
        options = {k: v for k, v in item.items() if k != stage}
        stage_table.check_options(stage, options, where, PrepareError)
        value = item[stage]
        if not stage_table.STAGES[stage].job:
            if not isinstance(value, str) or not value:
                fail(f"{where}.{stage}", value, "give the directory to write", PrepareError)
            stages.append({"stage": stage, "output": value, "options": options})
            continue
        if isinstance(value, str):
            path = (base_dir / value) if not Path(value).is_absolute() else Path(value)
            if not path.is_file():
                fail(
                    f"{where}.{stage}",
                    value,
                    f"no such job file ({path}); give a path relative to the experiment YAML",
                    PrepareError,
                )
            try:
                value = safe_yaml.load_file(path)
            except safe_yaml.YAMLInputError as exc:
                raise PrepareError(f"{where}.{stage}: {exc}") from None
        if not isinstance(value, dict):
            fail(f"{where}.{stage}", value, "give a job file or an inline job mapping", PrepareError)
        stages.append({"stage": stage, "output": value.get("output"), "spec": value})
    return stages


def _absolute(value, promised: set[Path]):
    """A local path made absolute (Tune runs trials in their own folders); a hub name unchanged."""
    if not isinstance(value, str) or not value or "://" in value:
        return value
    p = Path(value).expanduser()
    local = (
        value.startswith((".", "/", "~")) or value.count("/") != 1 or p.exists() or p.resolve() in promised
    )
    return str(p.resolve()) if local else value


def absolute_paths(spec: dict) -> None:
    """Every model, data and output path of an LLM experiment, made absolute in place (relative to
    the directory the command runs in): the prepare stages' and the trials' alike."""
    stages = spec.get("prepare") or []
    promised = {Path(p).expanduser().resolve() for p in promised_outputs(stages)}
    for st in stages:
        st["output"] = _absolute(st.get("output"), promised)
        job = st.get("spec")
        if isinstance(job, dict):
            if isinstance(job.get("model"), dict):
                job["model"]["name_or_path"] = _absolute(job["model"].get("name_or_path"), promised)
            elif isinstance(job.get("model"), str):
                job["model"] = _absolute(job["model"], promised)
            for key in ("data", "eval_data"):
                if isinstance(job.get(key), dict):
                    job[key]["path"] = _absolute(job[key].get("path"), promised)
                elif isinstance(job.get(key), str):
                    job[key] = _absolute(job[key], promised)
            job["output"] = _absolute(job.get("output"), promised)
    sections = [spec, *((spec.get("per_algorithm") or {}).values())]
    for sec in sections:
        if not isinstance(sec, dict):
            continue
        env_config = (sec.get("environment") or {}).get("env_config")
        if isinstance(env_config, dict):
            for key in ("prompts", "pairs", "eval_prompts", "scorer", "eval_scorer"):
                item = env_config.get(key)
                if isinstance(item, list):
                    env_config[key] = [
                        dict(x, path=_absolute(x.get("path"), promised))
                        if isinstance(x, dict)
                        else _absolute(x, promised)
                        for x in item
                    ]
                elif isinstance(item, dict) and "path" in item:
                    item["path"] = _absolute(item["path"], promised)
                elif isinstance(item, str):
                    env_config[key] = _absolute(item, promised)
        mc = (sec.get("rl_module") or {}).get("model_config")
        if isinstance(mc, dict) and "name_or_path" in mc:
            mc["name_or_path"] = _absolute(mc["name_or_path"], promised)
    ev = spec.get("evaluate")
    if isinstance(ev, dict):
        items = [ev.get("prompts"), ev.get("baseline"), ev.get("judges"), ev.get("likert")]
        if isinstance(ev.get("baseline"), dict):
            items.append(ev["baseline"].get("chosen"))
        for item in items:
            for x in item if isinstance(item, list) else [item]:
                if isinstance(x, dict) and isinstance(x.get("path"), str):
                    x["path"] = _absolute(x["path"], promised)


def promised_outputs(stages: list[dict]) -> list[str]:
    """Every path the stages write (their outputs and the files under them)."""
    return [
        p
        for st in stages
        if isinstance(st.get("output"), str)
        for p in stage_table.outputs(st["stage"], st["output"])
    ]


def check(stages: list[dict]) -> None:
    """Every stage's settings, each seeing the outputs of the stages before it as present."""
    for i, st in enumerate(stages):
        where = f"prepare[{i}]"
        if "spec" not in st:
            stage_table.check_options(st["stage"], st.get("options", {}), where, PrepareError)
            continue
        try:
            stage_table.check_job(st["stage"], st["spec"], promised=promised_outputs(stages[:i]))
        except ValueError as exc:
            raise PrepareError(f"{where} ({st['stage']}): {exc}") from None


def run(stages: list[dict]) -> list[dict]:
    """Run the stages whose output is missing; one line per stage on stderr; returns their summaries."""
    summaries = []
    for i, st in enumerate(stages):
        stage = st["stage"]
        tag = f"[prepare] {stage} -> {st['output']}"
        if stage_table.done(stage, st["output"]):
            print(f"{tag}: exists, skipped", file=sys.stderr, flush=True)
            continue
        start = time.monotonic()
        print(f"{tag}: running", file=sys.stderr, flush=True)
        where = f"prepare[{i}] ({stage} -> {st['output']})"
        try:
            if "spec" in st:
                summary = stage_table.run(stage, st["spec"])
            else:
                stage_table.run(
                    stage, (st["output"], stage_table.check_options(stage, st.get("options", {}), "prepare"))
                )
                summary = {"stage": stage}
        except ValueError as exc:  # bad input found while running (data rows, a model's files)
            raise PrepareError(f"{where}: {_first_line(exc)}") from None
        except (OSError, RuntimeError, MemoryError) as exc:  # disk full, out of memory, a library's error
            raise StageFailed(f"{where} failed: {exc.__class__.__name__}: {_first_line(exc)}") from exc
        print(f"{tag}: done in {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)
        summaries.append({k: v for k, v in summary.items() if k != "settings"})
    return summaries


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__
