"""``evaluate:`` of an LLM experiment, and ``pairgrpo llm eval EXP_DIR``: every trial's final policy
against a baseline, by every configured judge, as Ray tasks (``pairgrpo_rllib/evaluation`` has the
definitions: both presentation orders, ties half, bootstrap intervals over prompts; the judges are
``pairgrpo_rllib/judges``).

.. code-block:: yaml

    evaluate:
      prompts:                               # held-out prompts, each source tagged with its subset
        - {path: results/llm/task/eval_helpful.jsonl, subset: helpful}
        - {path: results/llm/task/eval_harmless.jsonl, subset: harmless}
      baseline: start                        # the run's initial policy (model_config.name_or_path);
                                             # or {path: <model>}; or {chosen: {path: <pairs>}}
      samples: 4                             # responses per prompt (policy sample s vs baseline sample s)
      judges: [{kind: truth}, {kind: reward_model, path: results/llm/reward_model}]
      likert: [truth]                        # or {kind: generative, path: <judge model>}
      engine: transformers                   # generation of the policies' responses (or vllm)
      max_new_tokens: null                   # default: the run's env_config.max_new_tokens
      seed: 0
      num_gpus: 0                            # per evaluation task (a GPU cluster: 1, for vLLM)

Seeds: trial ``s`` samples its policy and the baseline with seeds derived from ``(seed, s)``: the
comparison within a trial is paired, trials stay independent. Written: ``llm_eval.json`` in each
trial folder and, for the experiment, ``llm_eval.json`` (every number) and ``llm_eval.md`` (tables
across seeds); ``pairgrpo report`` adds the tables to ``report.md``.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

from pairgrpo_rllib.app.files import newest_complete_checkpoint, write_json_atomically
from pairgrpo_rllib.app.report import group_trials, llm_tables, load_trials
from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.checks import fail
from pairgrpo_rllib.core.defaults import LLM_FIELDS, LM_FIELDS
from pairgrpo_rllib.core.names import LLM_ENGINES
from pairgrpo_rllib.core.seeding import derive_seed
from pairgrpo_rllib.envs.llm.data import load_preferences
from pairgrpo_rllib.envs.llm.data import load_prompts as load
from pairgrpo_rllib.envs.llm.models import check_model_path
from pairgrpo_rllib.envs.llm.settings import data_source, policy_settings
from pairgrpo_rllib.envs.llm.synthetic import truth_reward
from pairgrpo_rllib.envs.resources import check_gpus
from pairgrpo_rllib.evaluation import SUBSETS, likert_means, sample_responses, win_rates
from pairgrpo_rllib.judges import build_judge, judge_spec

RESULT_FILE = names.LLM_EVAL_FILE
TABLES_FILE = "llm_eval.md"
KEYS = ("prompts", "baseline", "samples", "judges", "likert", "engine", "max_new_tokens", "seed", "num_gpus")
SOURCE_KEYS = ("path", "split", "schema", "limit", "data_dir", "subset")
SOURCE_DEFAULTS = {"split": "train", "schema": None, "limit": None, "data_dir": None}


def settings(section, spec: dict, promised=()) -> dict:
    """The ``evaluate`` section checked and filled (no model is loaded). ``promised``: model paths
    an earlier ``prepare`` stage of the same experiment will write, accepted as present."""

    if not isinstance(section, dict):
        fail("evaluate", section, "give a mapping: {prompts: [...], judges: [{kind: truth}], ...}")
    unknown = set(section) - set(KEYS)
    if unknown:
        k = sorted(unknown)[0]
        fail(f"evaluate.{k}", section[k], f"known keys: {', '.join(KEYS)}")
    env_config = (spec.get("environment") or {}).get("env_config") or {}
    model_config = (spec.get("rl_module") or {}).get("model_config") or {}
    # the run's policy and lengths, with the run's defaults (core.defaults: one table)
    policy = policy_settings(model_config, promised) if model_config.get("name_or_path") else None
    run_new, run_prompt = (
        env_config.get(k, LLM_FIELDS[k].default) for k in ("max_new_tokens", "max_prompt_tokens")
    )
    s = {
        "prompts": section.get("prompts"),
        "baseline": section.get("baseline", "start"),
        "samples": section.get("samples", 4),
        "judges": section.get("judges", [{"kind": "truth"}]),
        "likert": section.get("likert", ["truth"]),
        "engine": section.get("engine", "transformers"),
        # null (the documented default) means the run's; 0 is refused below, not replaced
        "max_new_tokens": run_new if section.get("max_new_tokens") is None else section["max_new_tokens"],
        "max_prompt_tokens": run_prompt,
        "seed": section.get("seed", 0),
        "num_gpus": section.get("num_gpus", 0),
        "model": policy and policy.name_or_path,
        "dtype": policy.dtype if policy else LM_FIELDS["dtype"].default,
        "temperature": policy.temperature if policy else LM_FIELDS["temperature"].default,
    }
    prompts = s["prompts"]
    if isinstance(prompts, dict):
        prompts = [prompts]
    if not isinstance(prompts, list) or not prompts:
        fail(
            "evaluate.prompts",
            s["prompts"],
            "give held-out prompt sources tagged with their subset: [{path: ..., subset: helpful}, ...]",
        )
    for i, src in enumerate(prompts):
        where = f"evaluate.prompts[{i}]"
        if not isinstance(src, dict) or "path" not in src:
            fail(where, src, "give {path: <hub name or file>, subset: helpful|harmless}")
        bad = set(src) - set(SOURCE_KEYS)
        if bad:
            k = sorted(bad)[0]
            fail(f"{where}.{k}", src[k], f"known keys: {', '.join(SOURCE_KEYS)}")
        if src.get("subset", "helpful") not in SUBSETS:
            fail(f"{where}.subset", src.get("subset"), f"use one of {', '.join(SUBSETS)}")
        # the file there, with a prompt column (or a known schema's), and a positive limit
        data_source(where, {k: v for k, v in src.items() if k != "subset"}, promised)
    s["prompts"] = [{**SOURCE_DEFAULTS, "subset": "helpful", **p} for p in prompts]
    b = s["baseline"]
    if b == "start":
        if not s["model"]:
            fail("evaluate.baseline", b, "the run names no rl_module.model_config.name_or_path to start from")
        s["baseline"] = {"kind": "policy", "path": s["model"]}
    elif isinstance(b, dict) and set(b) == {"path"}:
        check_model_path(str(b["path"]), "evaluate.baseline.path", promised)
        s["baseline"] = {"kind": "policy", "path": str(b["path"])}
    elif (
        isinstance(b, dict)
        and set(b) == {"chosen"}
        and isinstance(b["chosen"], dict)
        and "path" in b["chosen"]
    ):
        data_source("evaluate.baseline.chosen", b["chosen"], promised, needs="pairs")  # rows of pairs
        s["baseline"] = {
            "kind": "chosen",
            "source": dict(SOURCE_DEFAULTS, **b["chosen"]),
        }
    else:
        fail(
            "evaluate.baseline",
            b,
            "use start (the run's initial policy), {path: <model>} or {chosen: {path: <preference pairs>}}",
        )
    n = s["samples"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
        fail("evaluate.samples", n, "responses per prompt: an integer in [1, 64]")
    if s["engine"] not in LLM_ENGINES:
        fail("evaluate.engine", s["engine"], f"use one of {', '.join(LLM_ENGINES)}")
    t = s["max_new_tokens"]
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 1 << 20:
        fail("evaluate.max_new_tokens", t, "a positive integer (tokens per response)")
    if isinstance(s["seed"], bool) or not isinstance(s["seed"], int) or s["seed"] < 0:
        fail("evaluate.seed", s["seed"], "a non-negative integer")
    g = s["num_gpus"]
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g <= 8:
        fail("evaluate.num_gpus", g, "GPUs per evaluation task: a number in [0, 8] (0 on CPU)")
    check_gpus("evaluate.num_gpus", g, g, "the evaluation tasks")  # a task no node can run waits forever
    judges = s["judges"]
    if not isinstance(judges, list) or not judges:
        fail("evaluate.judges", judges, "give a list, e.g. [{kind: truth}, {kind: reward_model, path: ...}]")
    s["judges"] = [
        judge_spec(f"evaluate.judges[{i}]", j, purpose="eval", promised=promised)
        for i, j in enumerate(judges)
    ]
    likert = s["likert"] or []
    if not isinstance(likert, list):
        fail("evaluate.likert", likert, "give a list: [truth] or [{kind: generative, path: ...}]")
    s["likert"] = [
        judge_spec(f"evaluate.likert[{i}]", j, purpose="likert", promised=promised)
        for i, j in enumerate(likert)
    ]
    return s  # judge_spec checked each judge's model folder and kind (judges/registry.py)


# ---- one trial (a Ray task) ------------------------------------------------------------------------------
def load_prompts(s: dict) -> tuple[list[list[dict]], list[str], list[list[str]] | None]:
    """``(prompts, subsets, chosen)``: chosen responses only for the ``chosen`` baseline."""

    def read(fn, src):
        return fn(src["path"], **{k: src[k] for k in ("split", "schema", "limit", "data_dir")})

    if s["baseline"]["kind"] == "chosen":
        rows = read(load_preferences, s["baseline"]["source"])
        # a preference set's prompts carry no helpful/harmless split: the overall rate only
        return [r["messages"] for r in rows], ["general"] * len(rows), [[r["chosen"]] for r in rows]
    prompts, subsets = [], []
    for src in s["prompts"]:
        got = read(load, src)
        prompts += got
        subsets += [src["subset"]] * len(got)
    return prompts, subsets, None


def evaluable_trials(exp_dir: Path) -> tuple[list[dict], dict[str, str]]:
    """The trials of ``exp_dir`` that the evaluation judges (those :func:`group_trials` labels) and
    their labels (by folder), each trial with a checkpoint to load; a ValueError (one line naming the folder and the fix) where there
    are none, or where a trial has none: found before Ray starts, not after the baseline is sampled."""
    trials = load_trials(exp_dir)  # ReportInputError (a ValueError) names a damaged trial file
    if not trials:
        raise ValueError(
            f"{exp_dir}: no trial folders (params.json and result.json); pass an experiment folder written by sweep"
        )
    labels = {str(t["dir"]): label for label, ts in group_trials(trials).items() for t in ts}
    trials = [t for t in trials if str(t["dir"]) in labels]
    for t in trials:
        trial_dir = Path(t["dir"])
        if newest_complete_checkpoint(trial_dir) is None and not any(
            c.is_dir() for c in trial_dir.glob("checkpoint_*")
        ):
            raise ValueError(
                f"{trial_dir}: no checkpoint to evaluate; run the experiment to its end (or --resume it), "
                "or set checkpoint_every"
            )
    return trials, labels


def policy_state(trial_dir: Path) -> tuple[dict, str]:
    """The merged HF weights of the trial's newest complete checkpoint, and that checkpoint's name."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    ckpt = newest_complete_checkpoint(trial_dir)
    if ckpt is None:
        found = sorted(trial_dir.glob("checkpoint_*"))
        if not found:
            raise FileNotFoundError(
                f"{trial_dir}: no checkpoint to evaluate (set checkpoint_every, or run to the end)"
            )
        ckpt = found[-1]  # written before checkpoints carried a manifest
    module = RLModule.from_checkpoint(
        str(ckpt / "learner_group" / "learner" / "rl_module" / "default_policy")
    )
    return {k: v.detach().clone() for k, v in module.merged_state_dict().items()}, ckpt.name


def responses(s: dict, prompts, seed: int, state_dict=None, path: str | None = None) -> list[list[str]]:

    return sample_responses(
        path or s["model"],
        prompts,
        samples=s["samples"],
        seed=seed,
        max_prompt_tokens=s["max_prompt_tokens"],
        max_new_tokens=s["max_new_tokens"],
        temperature=s["temperature"],
        state_dict=state_dict,
        engine=s["engine"],
        dtype=s["dtype"],
    )


def ratings(s: dict, prompts, responses_: list[list[str]], seed: int) -> dict:
    """Likert ratings by every rater, and the truth reward where the truth is a judge or rater."""

    out = {"likert": {}}
    for spec in s["likert"]:
        rater = build_judge(spec)
        try:
            out["likert"][spec.name] = likert_means(rater, prompts, responses_, seed=seed)
        finally:
            rater.stop()
    if any(spec.kind == "truth" for spec in s["judges"] + s["likert"]):
        vals = [
            statistics.fmean(truth_reward(p[-1]["content"], r) for r in rs)
            for p, rs in zip(prompts, responses_, strict=True)
        ]
        out["truth_reward"] = statistics.fmean(vals)
    return out


def judge_all(s: dict, prompts, subsets, policy, baseline, seed: int) -> dict:
    """Win rates by every judge, then :func:`ratings` of the policy."""

    out = {"win_rates": {}, "judge_answers": {}}
    for spec in s["judges"]:
        judge = build_judge(spec)
        try:
            out["win_rates"][spec.name] = win_rates(judge, prompts, subsets, policy, baseline, seed=seed)
            if judge.answers:  # a judge that writes answers: how many could be read
                out["judge_answers"][spec.name] = {"answers": judge.answers, "unparsable": judge.unparsable}
        finally:
            judge.stop()
    out.update(ratings(s, prompts, policy, seed))
    return out


def _baseline_task(s: dict, data: tuple, trial_seed) -> dict:
    import torch

    torch.set_num_threads(1)
    prompts, _, chosen = data
    seed = derive_seed(s["seed"], int(trial_seed), "evaluation")
    if chosen is not None:  # the data set's responses: nothing to sample or rate
        return {"responses": chosen, "likert": {}, "truth_reward": None}
    base = responses(s, prompts, seed, path=s["baseline"]["path"])
    own = ratings(s, prompts, base, seed)
    return {"responses": base, "likert": own["likert"], "truth_reward": own.get("truth_reward")}


def _trial_task(s: dict, data: tuple, trial: dict, baseline: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    clock = time.time()
    prompts, subsets, _ = data
    seed = derive_seed(s["seed"], int(trial["seed"]), "evaluation")
    state, ckpt = policy_state(Path(trial["dir"]))
    policy = responses(s, prompts, seed, state_dict=state)
    out = judge_all(s, prompts, subsets, policy, baseline["responses"], seed)
    out.update(
        checkpoint=ckpt,
        seconds=time.time() - clock,
        examples=[
            {
                "prompt": prompts[i][-1]["content"],
                "policy": policy[i][0],
                "baseline": baseline["responses"][i][0],
            }
            for i in range(min(3, len(prompts)))
        ],
    )
    return out


# ---- the experiment ----------------------------------------------------------------------------------
def evaluate_experiment(exp_dir: str | Path, s: dict, stream=None) -> Path:
    """Evaluate every trial of ``exp_dir`` (Ray tasks, one CPU each); returns the experiment's JSON."""
    import ray

    stream = stream or sys.stdout
    exp_dir = Path(exp_dir).resolve()  # checkpoints are read by URI: relative paths do not parse
    trials, labels = evaluable_trials(exp_dir)
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=os.environ.get("RAY_ADDRESS"),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    t0 = time.time()
    try:
        baseline_task = ray.remote(num_cpus=1, num_gpus=s["num_gpus"])(_baseline_task)
        trial_task = ray.remote(num_cpus=1, num_gpus=s["num_gpus"])(_trial_task)
        data = ray.put(load_prompts(s))  # read once, shared by every task
        seeds = sorted({int(t["seed"]) for t in trials})
        base_refs = {sd: baseline_task.remote(s, data, sd) for sd in seeds}
        baselines = {sd: ray.get(ref) for sd, ref in base_refs.items()}
        print(
            f"[eval {time.time() - t0:6.1f}s] baseline responses for seeds {seeds}", file=stream, flush=True
        )
        pending = {}
        for t in trials:
            info = {"dir": str(t["dir"]), "seed": t["seed"]}
            pending[trial_task.remote(s, data, info, baselines[int(t["seed"])])] = t
        results = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            t = pending.pop(done[0])
            got = ray.get(done[0])
            row = {
                "label": labels[str(t["dir"])],
                "algorithm": t["algorithm"],
                "seed": t["seed"],
                "dir": str(t["dir"]),
                **got,
            }
            write_json_atomically(Path(t["dir"]) / RESULT_FILE, row, default=_plain, sort_keys=False)
            results.append(row)
            overall = next(iter(got["win_rates"].values()))["overall"]["rate"]
            print(
                f"[eval {time.time() - t0:6.1f}s] {row['label']:<40} seed={t['seed']} win rate (overall, "
                f"{next(iter(got['win_rates']))}) {overall:.3f}  truth reward {got.get('truth_reward', float('nan')):.3f}",
                file=stream,
                flush=True,
            )
    finally:
        if started:
            ray.shutdown()
    data = {
        "settings": s,
        "baselines": {
            str(sd): {k: v for k, v in b.items() if k != "responses"} for sd, b in baselines.items()
        },
        "trials": sorted(results, key=lambda r: (r["label"], str(r["seed"]))),
    }
    out = exp_dir / RESULT_FILE
    write_json_atomically(out, data, default=_plain, sort_keys=False)
    tmp = exp_dir / (TABLES_FILE + ".tmp")
    tmp.write_text(llm_tables(data, trials=None))
    tmp.replace(exp_dir / TABLES_FILE)
    return out


def _plain(obj):
    """JSON for what the settings hold besides plain data: judge specs as their fields."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else str(obj)


# ---- tables ------------------------------------------------------------------------------------------------
