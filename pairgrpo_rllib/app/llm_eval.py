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
import json
import os
import statistics
import sys
import time
from pathlib import Path

from pairgrpo_rllib.core.checks import fail
from pairgrpo_rllib.core.defaults import LLM_FIELDS, LM_FIELDS
from pairgrpo_rllib.core.seeding import derive_seed
from pairgrpo_rllib.envs.llm.settings import policy_settings

RESULT_FILE = "llm_eval.json"
TABLES_FILE = "llm_eval.md"
KEYS = ("prompts", "baseline", "samples", "judges", "likert", "engine", "max_new_tokens", "seed", "num_gpus")
SOURCE_KEYS = ("path", "split", "schema", "limit", "data_dir", "subset")
SOURCE_DEFAULTS = {"split": "train", "schema": None, "limit": None, "data_dir": None}


def settings(section, spec: dict, promised=()) -> dict:
    """The ``evaluate`` section checked and filled (no model is loaded). ``promised``: model paths
    an earlier ``prepare`` stage of the same experiment will write, accepted as present."""
    from pairgrpo_rllib.core.names import LLM_ENGINES
    from pairgrpo_rllib.envs.llm.models import check_model_path
    from pairgrpo_rllib.evaluation import SUBSETS
    from pairgrpo_rllib.judges import judge_spec

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
    run_new, run_prompt = (env_config.get(k, LLM_FIELDS[k].default) for k in ("max_new_tokens", "max_prompt_tokens"))
    s = {
        "prompts": section.get("prompts"),
        "baseline": section.get("baseline", "start"),
        "samples": section.get("samples", 4),
        "judges": section.get("judges", [{"kind": "truth"}]),
        "likert": section.get("likert", ["truth"]),
        "engine": section.get("engine", "transformers"),
        "max_new_tokens": section.get("max_new_tokens", run_new),
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
    s["prompts"] = [{**SOURCE_DEFAULTS, "subset": "helpful", **p} for p in prompts]
    b = s["baseline"]
    if b == "start":
        if not s["model"]:
            fail(
                "evaluate.baseline", b, "the run names no rl_module.model_config.name_or_path to start from"
            )
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
    return s


# ---- one trial (a Ray task) ------------------------------------------------------------------------------
def load_prompts(s: dict) -> tuple[list[list[dict]], list[str], list[list[str]] | None]:
    """``(prompts, subsets, chosen)``: chosen responses only for the ``chosen`` baseline."""
    from pairgrpo_rllib.envs.llm.data import load_preferences
    from pairgrpo_rllib.envs.llm.data import load_prompts as load

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


def policy_state(trial_dir: Path) -> tuple[dict, str]:
    """The merged HF weights of the trial's newest complete checkpoint, and that checkpoint's name."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    from pairgrpo_rllib.app.runner import newest_complete_checkpoint

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
    from pairgrpo_rllib.evaluation import sample_responses

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
    from pairgrpo_rllib.evaluation import likert_means
    from pairgrpo_rllib.judges import build_judge

    out = {"likert": {}}
    for spec in s["likert"]:
        rater = build_judge(spec)
        try:
            out["likert"][spec.name] = likert_means(rater, prompts, responses_, seed=seed)
        finally:
            rater.stop()
    if any(spec.kind == "truth" for spec in s["judges"] + s["likert"]):
        from pairgrpo_rllib.envs.llm.synthetic import truth_reward

        vals = [
            statistics.fmean(truth_reward(p[-1]["content"], r) for r in rs)
            for p, rs in zip(prompts, responses_, strict=True)
        ]
        out["truth_reward"] = statistics.fmean(vals)
    return out


def judge_all(s: dict, prompts, subsets, policy, baseline, seed: int) -> dict:
    """Win rates by every judge, then :func:`ratings` of the policy."""
    from pairgrpo_rllib.evaluation import win_rates
    from pairgrpo_rllib.judges import build_judge

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

    from pairgrpo_rllib.app.report import group_trials, load_trials

    stream = stream or sys.stdout
    exp_dir = Path(exp_dir).resolve()  # checkpoints are read by URI: relative paths do not parse
    trials = load_trials(exp_dir)
    if not trials:
        raise FileNotFoundError(f"no trial folders below {exp_dir}")
    labels = {str(t["dir"]): label for label, ts in group_trials(trials).items() for t in ts}
    trials = [t for t in trials if str(t["dir"]) in labels]
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
            _write_json(Path(t["dir"]) / RESULT_FILE, row)
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
    _write_json(out, data)
    tmp = exp_dir / (TABLES_FILE + ".tmp")
    tmp.write_text(render(data, trials=None))
    tmp.replace(exp_dir / TABLES_FILE)
    return out


def _plain(obj):
    """JSON for what the settings hold besides plain data: judge specs as their fields."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else str(obj)


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_plain) + "\n")
    tmp.replace(path)


# ---- tables ------------------------------------------------------------------------------------------------
def render(data: dict, trials: list[dict] | None) -> str:
    """The paper's LLM tables from ``llm_eval.json`` (mean ± 95% CI across seeds); with the trials'
    training rows (``report.load_trials``) also the stability table, the gradient cosine to GRPO and
    the Hard-Pair ablation."""
    from pairgrpo_rllib.app.report import mean_ci
    from pairgrpo_rllib.core import names
    from pairgrpo_rllib.evaluation import ASPECTS, RATES

    rows = data["trials"]
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    s = data["settings"]
    base = s["baseline"]
    base_name = (
        "the run's initial policy"
        if base["kind"] == "policy" and base["path"] == s["model"]
        else (
            f"the model at {base['path']}" if base["kind"] == "policy" else "the dataset's chosen responses"
        )
    )
    lines = [
        "## LLM evaluation",
        "",
        f"Against {base_name}; {s['samples']} sampled responses per held-out prompt, each judged against the "
        "baseline's in both orders, ties half. Mean ± 95% CI across seeds (t); per-trial bootstrap intervals "
        f"over prompts are in {RESULT_FILE}.",
        "",
    ]
    for judge in rows[0]["win_rates"] if rows else []:
        lines += [f"### Win rates vs the baseline, judge: {judge}", ""]
        lines += [
            "| algorithm | helpfulness (helpful prompts) | harmlessness (harmful prompts) | overall | truth reward | seeds |",
            "|---|---|---|---|---|---|",
        ]
        for label, rs in sorted(by_label.items()):
            cells = [mean_ci([r["win_rates"][judge][name]["rate"] for r in rs]) for name, _, _ in RATES]
            truth = mean_ci([r.get("truth_reward") for r in rs])
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {truth} | {len(rs)} |")
        answers = [r.get("judge_answers", {}).get(judge) for r in rows]
        answers = [a for a in answers if a]
        if answers:
            total, bad = sum(a["answers"] for a in answers), sum(a["unparsable"] for a in answers)
            lines.append(f"\nUnparsable answers of this judge: {bad} of {total}.")
        lines.append("")
    for rater in rows[0]["likert"] if rows else []:
        lines += [f"### Likert 1-5, rater: {rater}", ""]
        lines += ["| algorithm | " + " | ".join(ASPECTS) + " |", "|---|" + "---|" * len(ASPECTS)]
        baseline_likert = [
            b["likert"].get(rater) for b in data.get("baselines", {}).values() if b.get("likert")
        ]
        if baseline_likert:
            cells = [mean_ci([b[a]["mean"] for b in baseline_likert]) for a in ASPECTS]
            lines.append("| baseline | " + " | ".join(cells) + " |")
        for label, rs in sorted(by_label.items()):
            cells = [mean_ci([r["likert"][rater][a]["mean"] for r in rs]) for a in ASPECTS]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    if trials:
        from pairgrpo_rllib.app.report import _last, group_trials

        groups = group_trials(trials)
        lines += [
            "### Training stability over the run",
            "",
            "Gradient-norm variance and KL(pi || pi_ref) std depend on the scale of the advantages (Soft-Pair's are "
            "smaller); their coefficients of variation (std / mean) do not.",
            "",
            "| algorithm | grad-norm variance | grad-norm CV (scale-free) | KL std | KL CV (scale-free) | cosine to GRPO's gradient (mean over the run) |",
            "|---|---|---|---|---|---|",
        ]
        for label, ts in sorted(groups.items()):

            def col(key, ts=ts):
                return mean_ci([_last(t["rows"], key) for t in ts])

            cos = [
                statistics.fmean(v)
                if (
                    v := [
                        r[names.GRAD_COSINE_VS_GRPO]
                        for r in t["rows"]
                        if r.get(names.GRAD_COSINE_VS_GRPO) is not None
                    ]
                )
                else None
                for t in ts
            ]
            lines.append(
                f"| {label} | {col(names.GRAD_NORM_VAR)} | {col(names.GRAD_NORM_CV)} | {col(names.KL_REF_STD)} | "
                f"{col(names.KL_REF_CV)} | {mean_ci(cos)} |"
            )
        lines.append("")
        ablation = sorted(label for label in by_label if label.startswith("Hard-Pair-GRPO")) + [
            label for label in by_label if label == "Soft-Pair-GRPO"
        ]
        if len(ablation) > 1 and rows:
            judge = next(iter(rows[0]["win_rates"]))
            lines += [
                f"### Hard-Pair ablation (judge: {judge})",
                "",
                "| variant | overall win rate | truth reward | grad-norm CV | KL std |",
                "|---|---|---|---|---|",
            ]
            for label in ablation:
                rs, ts = by_label[label], groups.get(label, [])
                lines.append(
                    f"| {label} | {mean_ci([r['win_rates'][judge]['overall']['rate'] for r in rs])} | "
                    f"{mean_ci([r.get('truth_reward') for r in rs])} | "
                    f"{mean_ci([_last(t['rows'], names.GRAD_NORM_CV) for t in ts])} | "
                    f"{mean_ci([_last(t['rows'], names.KL_REF_STD) for t in ts])} |"
                )
            lines.append("")
    return "\n".join(lines) + "\n"
