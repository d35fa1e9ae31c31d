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
present (``envs.llm.models.promised``). On a multi-node cluster the outputs must lie on storage every
node reads (docs/llm.md).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

STAGES = ("make_tiny", "make_task", "sft", "reward_model")
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
OPTIONS = {"make_tiny": {"seed"}, "make_task": {"seed", "train", "test"}, "sft": set(), "reward_model": set()}


class PrepareError(ValueError):
    """A bad ``prepare`` section: one line naming the stage, the field and the fix."""


def _fail(where: str, value, fix: str):
    raise PrepareError(f"{where}={value!r} is invalid: {fix}")


def normalize(section, base_dir: Path) -> list[dict]:
    """``[{"stage", "output", "options" | "spec"}]``; job files read (strict YAML) and inlined."""
    from pairgrpo_rllib.app import safe_yaml

    if section is None:
        return []
    if not isinstance(section, list):
        _fail(
            "prepare",
            section,
            "give a list of stages, e.g. [{make_tiny: results/llm/tiny}, {sft: jobs/llm_sft.yaml}]",
        )
    stages = []
    for i, item in enumerate(section):
        where = f"prepare[{i}]"
        keys = [k for k in (item if isinstance(item, dict) else {}) if k in STAGES]
        if not isinstance(item, dict) or len(keys) != 1:
            _fail(where, item, f"each stage is a mapping with exactly one of {', '.join(STAGES)}")
        stage = keys[0]
        extra = set(item) - {stage} - OPTIONS[stage]
        if extra:
            k = sorted(extra)[0]
            _fail(
                f"{where}.{k}",
                item[k],
                f"{stage} takes {', '.join(sorted(OPTIONS[stage])) or 'no other key'}",
            )
        value = item[stage]
        if stage in ("make_tiny", "make_task"):
            if not isinstance(value, str) or not value:
                _fail(f"{where}.{stage}", value, "give the directory to write")
            stages.append(
                {
                    "stage": stage,
                    "output": value,
                    "options": {k: item[k] for k in OPTIONS[stage] if k in item},
                }
            )
            continue
        if isinstance(value, str):
            path = (base_dir / value) if not Path(value).is_absolute() else Path(value)
            if not path.is_file():
                _fail(
                    f"{where}.{stage}",
                    value,
                    f"no such job file ({path}); give a path relative to the experiment YAML",
                )
            try:
                value = safe_yaml.load_file(path)
            except safe_yaml.YAMLInputError as exc:
                raise PrepareError(f"{where}.{stage}: {exc}") from None
        if not isinstance(value, dict):
            _fail(f"{where}.{stage}", value, "give a job file or an inline job mapping")
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
    out = []
    for st in stages:
        if not isinstance(st.get("output"), str):
            continue
        out.append(st["output"])
        if st["stage"] == "make_task":
            out += [str(Path(st["output"]) / f) for f in TASK_FILES]
    return out


def check(stages: list[dict]) -> None:
    """Every stage's settings, each seeing the outputs of the stages before it as present."""
    from pairgrpo_rllib.algorithms.common.hf_training import job_settings
    from pairgrpo_rllib.envs.llm.models import promised

    for i, st in enumerate(stages):
        opts = st.get("options", {})
        for k in ("seed", "train", "test"):
            v = opts.get(k)
            if v is not None and (
                not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "seed" else 3)
            ):
                _fail(f"prepare[{i}].{k}", v, "use a non-negative integer (train/test: at least 3)")
        if "spec" in st:
            with promised(promised_outputs(stages[:i])):
                try:
                    job_settings(st["spec"], st["stage"].replace("_", "-"))
                except ValueError as exc:
                    raise PrepareError(f"prepare[{i}] ({st['stage']}): {exc}") from None


def done(st: dict) -> bool:
    out = Path(st["output"]).expanduser()
    if st["stage"] == "make_task":
        return all((out / f).is_file() for f in TASK_FILES)
    return (out / "config.json").is_file()


def run(stages: list[dict]) -> list[dict]:
    """Run the stages whose output is missing; one line per stage on stderr; returns their summaries."""
    summaries = []
    for st in stages:
        tag = f"[prepare] {st['stage']} -> {st['output']}"
        if done(st):
            print(f"{tag}: exists, skipped", file=sys.stderr, flush=True)
            continue
        start = time.monotonic()
        print(f"{tag}: running", file=sys.stderr, flush=True)
        opts = st.get("options", {})
        if st["stage"] == "make_tiny":
            from pairgrpo_rllib.envs.llm.models import make_tiny

            out = Path(st["output"])
            if out.exists() and not any(out.iterdir()):
                out.rmdir()
            make_tiny(out, seed=opts.get("seed", 0))
            summary = {"stage": "make_tiny"}
        elif st["stage"] == "make_task":
            from pairgrpo_rllib.envs.llm.synthetic import write_task

            write_task(
                st["output"],
                n_train=opts.get("train", 3000),
                n_test=opts.get("test", 300),
                seed=opts.get("seed", 0),
            )
            summary = {"stage": "make_task"}
        elif st["stage"] == "sft":
            from pairgrpo_rllib.algorithms.sft.sft import run_sft

            summary = run_sft(st["spec"])
        else:
            from pairgrpo_rllib.algorithms.reward_model.reward_model import run_reward_model

            summary = run_reward_model(st["spec"])
        print(f"{tag}: done in {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)
        summaries.append({k: v for k, v in summary.items() if k != "settings"})
    return summaries
