"""``pairgrpo report RESULTS_DIR``: tables and learning curves from Tune trial folders.

Reads every trial folder (``params.json`` + ``result.json``) below RESULTS_DIR and writes
``report.md`` and ``learning_curves.png`` next to them:

* evaluation return (deterministic episodes) mean +- 95% CI across seeds at fixed env-step budgets
  (Student t, n - 1 degrees of freedom);
* the mean of each trial's last 3 evaluations (mean +- 95% CI across seeds), a less noisy final number;
* gradient-norm variance and KL std over the run (Pair-GRPO §6.1.3), throughput (env steps / s);
* learning curves: each seed thin, the mean across seeds bold with its 95% CI band.

The CI of a single seed is not defined and is shown as "n=1".
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from pairgrpo_rllib.app.files import write_text_atomically
from pairgrpo_rllib.core import names
from pairgrpo_rllib.evaluation import ASPECTS, RATES

STEPS = names.RESULT_STEPS
EVAL_KEYS = names.RESULT_EVAL_RETURNS
EVAL_STEPS = names.EVALUATION_STEPS
# two-sided 95% Student t quantiles for n - 1 = 1..30 degrees of freedom
T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def _num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested result dicts -> one level with ``/``-joined keys (Tune's own naming)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


class ReportInputError(ValueError):
    """A damaged trial folder; the message names the file and the fix."""


def _read_text(path: Path, results_dir) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ReportInputError(
            f"{path}: not a text file; the trial folder is damaged: move {path.parent.name} out of {results_dir}"
        ) from None
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None


def load_trials(results_dir: str | Path) -> list[dict]:
    """Every trial below ``results_dir``: algorithm, seed and its rows (flat dicts of floats).

    Rows come from ``result.json`` (one JSON object per iteration): ``progress.csv`` fixes its
    columns at the first iteration and drops keys that appear later (evaluation results). A line
    that is not a JSON object (cut by a kill) is skipped; a params.json or result.json that cannot
    be read at all raises ``ReportInputError`` naming the file.
    """
    trials = []
    for params in sorted(Path(results_dir).rglob("params.json")):
        folder = params.parent
        result = folder / "result.json"
        if not result.is_file():
            continue
        try:
            cfg = json.loads(_read_text(params, results_dir))
        except json.JSONDecodeError as exc:
            cfg = exc
        if not isinstance(cfg, dict):
            raise ReportInputError(
                f"{params}: not a Tune trial's params.json (not a JSON object); the trial folder is damaged: "
                f"move {folder.name} out of {results_dir}"
            )
        rows = []
        for line in _read_text(result, results_dir).splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: the rest of the file is still good
            if isinstance(row, dict):
                rows.append({k: _num(v) for k, v in flatten(row).items()})
        if rows:
            algorithm, seed, spec = trial_fields(cfg)
            trials.append(
                {
                    "algorithm": algorithm,
                    "seed": seed,
                    "rows": rows,
                    "dir": folder,
                    "failures": count_failures(folder),
                    "spec": spec,
                    "finished": reached_stop(rows[-1], spec.get("stop") or {}),
                    "rllib_eval_interval": rllib_eval_interval(spec, algorithm),
                }
            )
    return trials


def trial_fields(config: dict) -> tuple[str, object, dict]:
    """``(algorithm, seed, spec)`` of a trial's config (``{"trial": {algorithm, spec}, "seed"}``; the
    flat ``{algorithm, seed, spec}`` of runs made before per-algorithm grids were kept apart)."""
    inner = config.get("trial") if isinstance(config.get("trial"), dict) else config
    spec = inner.get("spec")
    return str(inner.get("algorithm", "?")), config.get("seed"), spec if isinstance(spec, dict) else {}


def _grid_points(node) -> int:
    """How many grid points the ``grid_search`` tags below ``node`` make (other tags: one sample)."""
    if isinstance(node, dict):
        if len(node) == 1 and "grid_search" in node and isinstance(node["grid_search"], list):
            return max(1, len(node["grid_search"]))
        out = 1
        for v in node.values():
            out *= _grid_points(v)
        return out
    return 1


def expected_trials(results_dir: str | Path) -> int | None:
    """How many trials the run was started with (from ``pairgrpo_experiment.json``; None if absent):
    per algorithm, the shared grids times its own ``per_algorithm`` grids, times the seeds."""
    path = Path(results_dir) / "pairgrpo_experiment.json"
    try:
        saved = json.loads(path.read_text())
        spec = saved["spec"]
        algos = [saved["algorithm"]] if saved.get("algorithm") else spec["algorithm"]
        algos = [algos] if isinstance(algos, str) else list(algos)
        seeds = [saved["seed"]] if saved.get("seed") is not None else spec.get("seeds", [0])
        shared = _grid_points(
            {k: v for k, v in spec.items() if k not in ("per_algorithm", "algorithm", "seeds")}
        )
        per = spec.get("per_algorithm") or {}
        return sum(shared * _grid_points(per.get(a) or {}) for a in algos) * len(seeds)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def reached_stop(flat_row: dict, stop: dict) -> bool:
    """Whether a result (flattened with "/") met any of the experiment's stop criteria, as Tune stops
    a trial. With no stop criteria known the trial counts as finished."""
    if not isinstance(stop, dict) or not stop:
        return True
    keys = {"env_steps": STEPS, "iterations": names.RESULT_ITERATION, "time_s": names.RESULT_TIME}
    for k, v in stop.items():
        got = flat_row.get(keys.get(k, ""))
        if isinstance(got, int | float) and isinstance(v, int | float) and got >= v:
            return True
    return False


def group_trials(trials: list[dict]) -> dict[str, list[dict]]:
    """Trials grouped by algorithm and search point: ``GRPO`` or ``Hard-Pair-GRPO [delta_decay=False]``.

    A search point is the set of spec values that differ between trials of one algorithm, leaving
    out other algorithms' ``per_algorithm`` sections (a grid there expands every algorithm's trials
    in Tune; the copies it gives an algorithm it does not apply to are identical, and only the first
    of each (group, seed) is kept).
    """

    def relevant(t: dict) -> dict:
        flat = flatten(t["spec"])
        return {
            k: v
            for k, v in flat.items()
            if k != "name"
            and not (k.startswith("per_algorithm/") and not k.startswith(f"per_algorithm/{t['algorithm']}/"))
        }

    by_algo: dict[str, list[dict]] = defaultdict(list)
    for t in trials:
        by_algo[t["algorithm"]].append(t)
    groups: dict[str, list[dict]] = defaultdict(list)
    for algo, ts in sorted(by_algo.items()):
        specs = [relevant(t) for t in ts]
        keys = sorted(
            {k for s in specs for k in s if len({json.dumps(x.get(k), sort_keys=True) for x in specs}) > 1}
        )
        seen = set()
        for t, spec in zip(ts, specs):
            point = ", ".join(f"{k.rsplit('/', 1)[-1]}={spec.get(k)}" for k in keys)
            label = f"{algo} [{point}]" if point else algo
            if (label, t["seed"]) in seen:
                continue
            seen.add((label, t["seed"]))
            groups[label].append(t)
    return dict(groups)


def reported_iterations(exp_dir: str | Path) -> list[int]:
    """Every ``training_iteration`` the trials below ``exp_dir`` reported, in file order (a resumed
    trial appends to its result.json, so redone iterations appear twice); cut lines are skipped."""
    out = []
    for result in Path(exp_dir).rglob("result.json"):
        for line in result.read_text().splitlines():
            try:
                out.append(json.loads(line)[names.RESULT_ITERATION])
            except (json.JSONDecodeError, KeyError):
                pass
    return out


def count_failures(trial_dir: Path) -> int:
    """How often the trial failed (Tune appends a "Failure # k" record to error.txt each time)."""
    err = Path(trial_dir) / "error.txt"
    if not err.is_file():
        return 0
    return max(1, sum(line.startswith("Failure #") for line in err.read_text(errors="replace").splitlines()))


def eval_curve(rows: list[dict], rllib_eval_interval: int | None = None) -> list[tuple[float, float]]:
    """(env steps, evaluation return) at each evaluation, each evaluation counted once.

    Ours carry the step at which the evaluation ran (``evaluation_env_steps``). RLlib's own
    evaluation (PPO) repeats its last result in the rows of iterations where none ran: a row counts
    only at iterations that are multiples of ``evaluation_interval`` (from the trial's spec), or,
    where the interval is unknown, only when the value changed.
    """
    out, seen = [], set()
    last_rllib = None
    for r in rows:
        for key in EVAL_KEYS:
            v = r.get(key)
            if v is None:
                continue
            if key == EVAL_KEYS[0]:
                step = r.get(EVAL_STEPS)
            else:
                it = r.get(names.RESULT_ITERATION)
                if rllib_eval_interval and isinstance(it, int | float):
                    if int(it) % rllib_eval_interval:
                        continue  # a stale copy of the last evaluation
                elif v == last_rllib:
                    continue
                last_rllib = v
                step = r.get(STEPS)
            if step is None or step in seen:
                continue
            seen.add(step)
            out.append((step, v))
    return out


def rllib_eval_interval(spec: dict, algorithm: str) -> int | None:
    """RLlib's ``evaluation_interval`` of a trial: the spec's, or its algorithm's override."""
    interval = (spec.get("evaluation") or {}).get("evaluation_interval")
    override = ((spec.get("per_algorithm") or {}).get(algorithm) or {}).get("evaluation") or {}
    interval = override.get("evaluation_interval", interval)
    return int(interval) if isinstance(interval, int | float) and interval >= 1 else None


def value_at(curve: list[tuple[float, float]], budget: float):
    """The last evaluation at or before ``budget`` steps (None if none yet)."""
    vals = [v for s, v in curve if s <= budget]
    return vals[-1] if vals else None


def _v(x: float) -> str:
    """A table number: one decimal for returns in the tens and more, three significant digits for
    scores in [0, 10) (an LLM's reward, a win rate)."""
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def mean_ci(values: list[float]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    m = statistics.fmean(vals)
    if len(vals) == 1:
        return f"{_v(m)} (n=1)"
    return f"{_v(m)} ± {_v(half_width(vals))} (n={len(vals)})"


def welch_diff(a: list[float], b: list[float]) -> tuple[float, float] | None:
    """Mean of ``a`` minus mean of ``b`` and the half-width of its 95% CI (Welch's t, degrees of
    freedom rounded down: conservative); None with fewer than two values on a side."""
    a = [v for v in a if v is not None]
    b = [v for v in b if v is not None]
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return statistics.fmean(a) - statistics.fmean(b), 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = T95[min(max(int(df), 1), len(T95)) - 1]
    return statistics.fmean(a) - statistics.fmean(b), t * se


def verdict(diff: tuple[float, float] | None) -> str:
    """ "higher" / "lower" when the 95% CI of a difference excludes 0, else "not distinguishable"."""
    if diff is None:
        return "n too small"
    d, h = diff
    return "higher" if d - h > 0 else "lower" if d + h < 0 else "not distinguishable"


def mean_curve(curves: list[dict]) -> tuple[list[float], list[float], list[float]]:
    """Mean and 95% CI half-width across seeds at the steps every seed evaluated."""
    common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    means, halves = [], []
    for step in common:
        vals = [c[step] for c in curves]
        means.append(statistics.fmean(vals))
        halves.append(half_width(vals))
    return common, means, halves


def half_width(vals: list[float]) -> float:
    if len(vals) < 2:
        return 0.0
    return T95[min(len(vals) - 1, len(T95)) - 1] * statistics.stdev(vals) / math.sqrt(len(vals))


def last_value(rows, key):
    for r in reversed(rows):
        if r.get(key) is not None:
            return r[key]
    return None


def _evaluation_meaning(results_dir) -> str:
    try:
        spec = json.loads((Path(results_dir) / "pairgrpo_experiment.json").read_text())["spec"]
    except (OSError, ValueError, KeyError, TypeError):
        spec = {}
    if (spec.get("environment") or {}).get("env") == names.LLM_ENV:
        return "the evaluation scorer's mean over sampled responses to held-out prompts (steps = response tokens)"
    return "deterministic full episodes"


def build_report(results_dir: str | Path, budgets: list[float] | None = None) -> str:
    trials = load_trials(results_dir)
    if not trials:
        raise FileNotFoundError(f"no trial folders (params.json + result.json) below {results_dir}")
    by_algo = group_trials(trials)
    trials = [t for ts in by_algo.values() for t in ts]  # identical copies dropped
    reached = min(last_value(t["rows"], STEPS) or 0 for t in trials)
    budgets = budgets or sorted({round(reached * f) for f in (0.25, 0.5, 1.0)})
    lines = [f"# Report: {Path(results_dir).resolve().name}", ""]
    lines.append(
        f"{len(trials)} trials; evaluation return = {_evaluation_meaning(results_dir)}; mean ± 95% CI across seeds."
    )
    lines.append("")
    header = "| algorithm | " + " | ".join(f"eval return @ {int(b):,} steps" for b in budgets) + " |"
    lines += [header, "|---|" + "---|" * len(budgets)]
    for algo, ts in sorted(by_algo.items()):
        cells = [
            mean_ci([value_at(eval_curve(t["rows"], t.get("rllib_eval_interval")), b) for t in ts])
            for b in budgets
        ]
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| algorithm | eval return, mean of last 3 evaluations | train return (last) | grad-norm variance "
        "| grad-norm CV (scale-free) | KL std | env steps / s | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for algo, ts in sorted(by_algo.items()):
        tr = mean_ci([last_value(t["rows"], names.RESULT_TRAIN_RETURN) for t in ts])
        final = mean_ci([_tail_mean(eval_curve(t["rows"], t.get("rllib_eval_interval")), 3) for t in ts])
        kl = [last_value(t["rows"], names.KL_REF_STD) for t in ts]
        rate = [
            (last_value(t["rows"], STEPS) or 0) / max(last_value(t["rows"], names.RESULT_TIME) or 1e-9, 1e-9)
            for t in ts
        ]
        lines.append(
            f"| {algo} | {final} | {tr} | {_sci([last_value(t['rows'], names.GRAD_NORM_VAR) for t in ts])} | "
            f"{_sci([last_value(t['rows'], names.GRAD_NORM_CV) for t in ts])} | {_sci(kl)} | "
            f"{statistics.fmean(rate):.0f} | {sorted(t['seed'] for t in ts)} |"
        )
    if len(by_algo) > 1:
        baseline = "GRPO" if "GRPO" in by_algo else sorted(by_algo)[0]
        base = [_tail_mean(eval_curve(t["rows"], t.get("rllib_eval_interval")), 3) for t in by_algo[baseline]]
        lines += [
            "",
            f"Per seed, and each algorithm against {baseline} (mean of the last 3 evaluations; difference of "
            "means with a Welch 95% CI; a verdict only where the CI excludes 0):",
            "",
            f"| algorithm | per seed | minus {baseline} | verdict |",
            "|---|---|---|---|",
        ]
        for algo, ts in sorted(by_algo.items()):
            finals = [_tail_mean(eval_curve(t["rows"], t.get("rllib_eval_interval")), 3) for t in ts]
            per_seed = ", ".join(
                f"{t['seed']}: {_v(v)}" if v is not None else f"{t['seed']}: -"
                for t, v in sorted(zip(ts, finals), key=lambda x: str(x[0]["seed"]))
            )
            diff = welch_diff(finals, base) if algo != baseline else None
            shown = f"{_v(diff[0])} ± {_v(diff[1])}" if diff else "-"
            lines.append(f"| {algo} | {per_seed} | {shown} | {verdict(diff) if algo != baseline else '-'} |")
    unfinished = [t for t in trials if not t["finished"]]
    expected = expected_trials(results_dir)
    never = max(0, (expected or 0) - len(trials))
    if unfinished or never:
        total = max(expected or 0, len(trials))
        lines[2:2] = [
            f"**Incomplete run: {len(unfinished) + never} of {total} trials did not reach their stop criteria** "
            f"({never} never started; interrupted, or still running); the numbers are partial. Continue "
            "with `--resume`.",
            "",
            "| algorithm | seed | env steps reached | iterations | folder |",
            "|---|---|---|---|---|",
            *(
                f"| {t['algorithm']} | {t['seed']} | {int(last_value(t['rows'], STEPS) or 0):,} | "
                f"{int(last_value(t['rows'], names.RESULT_ITERATION) or 0)} | {t['dir'].name} |"
                for t in unfinished
            ),
            "",
        ]
    failed = [t for t in trials if t["failures"]]
    if failed:
        lines += [
            "",
            "Trials that failed and were retried from their last checkpoint (Tune `max_failures`); a trial",
            "whose env steps fall short of the others did not finish:",
            "",
            "| algorithm | seed | failures | env steps reached | folder |",
            "|---|---|---|---|---|",
        ]
        for t in failed:
            lines.append(
                f"| {t['algorithm']} | {t['seed']} | {t['failures']} | {int(last_value(t['rows'], STEPS) or 0):,} "
                f"| {t['dir'].name} |"
            )
    evaluation = Path(results_dir) / names.LLM_EVAL_FILE
    if evaluation.is_file():
        fix = f"rerun `pairgrpo llm eval {results_dir}`"
        try:
            data = json.loads(evaluation.read_text())
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
            raise ReportInputError(f"{evaluation}: unreadable ({exc}); {fix}") from None
        try:
            tables = llm_tables(data, trials)
        except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
            raise ReportInputError(
                f"{evaluation}: not what `pairgrpo llm eval` writes ({exc.__class__.__name__}: {exc}); {fix}"
            ) from None
        lines += ["", tables.rstrip()]
    lines.append("")
    lines.append("![learning curves](learning_curves.png)")
    return "\n".join(lines) + "\n"


def _tail_mean(curve: list[tuple[float, float]], k: int):
    """Mean of the last ``k`` evaluations (a less noisy final number than the last one alone)."""
    return statistics.fmean(v for _, v in curve[-k:]) if curve else None


def _sci(values) -> str:
    vals = [v for v in values if v is not None]
    return f"{statistics.fmean(vals):.3g}" if vals else "-"


def plot_curves(results_dir: str | Path, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    trials = load_trials(results_dir)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    by_algo = group_trials(trials)
    for i, (algo, ts) in enumerate(sorted(by_algo.items())):
        color = plt.cm.tab10(i)
        curves = [dict(eval_curve(t["rows"], t.get("rllib_eval_interval"))) for t in ts]
        for curve in curves:  # each seed, thin
            if curve:
                xs, ys = zip(*sorted(curve.items()))
                ax.plot(xs, ys, color=color, alpha=0.3, lw=0.8)
        steps, means, halves = mean_curve(curves)
        if steps:
            ax.plot(steps, means, color=color, lw=1.8, label=f"{algo} (n={len(ts)})")
            if any(h > 0 for h in halves):
                lo = [m - h for m, h in zip(means, halves)]
                hi = [m + h for m, h in zip(means, halves)]
                ax.fill_between(steps, lo, hi, color=color, alpha=0.15, lw=0)
    ax.xaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(
            lambda x, _: f"{x / 1e6:g}M" if x >= 1e6 else (f"{x / 1e3:g}k" if x else "0")
        )
    )
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return (mean, 95% CI across seeds)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    tmp = out.with_suffix(".tmp.png")
    try:
        fig.savefig(tmp)
        tmp.replace(out)
    except BaseException:  # a full disk: the old figure stays, no half-written one beside it
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return out


def write_report(results_dir: str | Path) -> Path:
    results_dir = Path(results_dir)
    text = build_report(results_dir)
    plot_curves(results_dir, results_dir / "learning_curves.png")
    out = results_dir / "report.md"
    write_text_atomically(out, text)
    return out


# ---- the LLM evaluation's tables (llm_eval.json of `pairgrpo llm eval` / an evaluate: stage) ----------
def llm_tables(data: dict, trials: list[dict] | None) -> str:
    """The paper's LLM tables from ``llm_eval.json`` (mean ± 95% CI across seeds); with the trials'
    training rows (:func:`load_trials`) also the stability table, the gradient cosine to GRPO and
    the Hard-Pair ablation."""

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
        f"over prompts are in {names.LLM_EVAL_FILE}.",
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
                return mean_ci([last_value(t["rows"], key) for t in ts])

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
                    f"{mean_ci([last_value(t['rows'], names.GRAD_NORM_CV) for t in ts])} | "
                    f"{mean_ci([last_value(t['rows'], names.KL_REF_STD) for t in ts])} |"
                )
            lines.append("")
    return "\n".join(lines) + "\n"
