"""The HalfCheetah study's tables and the verdict on each claim of the Pair-GRPO paper it can test.

Reads a finished `pairgrpo sweep tune_configs/halfcheetah_comparison.yaml` folder and prints
Markdown for docs/results/halfcheetah_study.md: one row per algorithm (evaluation return at the budget, per seed, mean
of the last 3 evaluations, training return, gradient-norm variance and its scale-free CV, KL std,
KL moved per iteration), then one verdict line per claim, each from a Welch 95% CI of the
difference of per-seed values (reproduced / not reproduced / not distinguishable at this n).
Also writes the per-trial curves as JSON.

    .venv/bin/python benchmarks/study_verdicts.py results/halfcheetah_comparison \
        --curves docs/data/halfcheetah_comparison_curves.json \
        --also "results/halfcheetah_ppo_tuned=PPO (tuned)"
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from pairgrpo_rllib.app.report import (
    _half_width,
    _last,
    _tail_mean,
    eval_curve,
    group_trials,
    load_trials,
    value_at,
    welch_diff,
)
from pairgrpo_rllib.core import names

ORDER = ["PPO", "PPO (tuned)", "GRPO", "Soft-Pair-GRPO", "Hard-Pair-GRPO", "PG-GRPO"]


def _ci(values) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:,.0f} (n=1)"
    return f"{statistics.fmean(vals):,.0f} ± {_half_width(vals):,.0f}"


def _g(values) -> str:
    vals = [v for v in values if v is not None]
    return f"{statistics.fmean(vals):.3g}" if vals else "-"


def claim(text: str, better: list[float], worse: list[float], unit: str = "") -> str:
    """Verdict on "``better`` is higher than ``worse``" from the Welch CI of their difference."""
    diff = welch_diff(better, worse)
    if diff is None:
        return f"* {text}: n too small."
    d, h = diff
    if d - h > 0:
        v = "**reproduced**"
    elif d + h < 0:
        v = "**not reproduced** (the opposite holds)"
    else:
        v = f"**not distinguishable at n = {min(len(better), len(worse))}**"
    return f"* {text}: difference {d:,.4g} ± {h:,.4g}{unit} (Welch 95% CI): {v}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir")
    parser.add_argument("--budget", type=float, default=1_000_000)
    parser.add_argument("--curves", default=None, help="write per-trial curves as JSON here")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="DIR=LABEL",
        help="another results folder whose trials join the table under LABEL (e.g. a tuned PPO)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="DIR=TAG",
        help="a folder of the same algorithms with one setting changed (ours): its trials join as "
        "'<algorithm> (TAG)' rows, each compared with the algorithm's own row",
    )
    args = parser.parse_args()
    by_algo = group_trials(load_trials(args.results_dir))
    for item in args.also:
        folder, _, label = item.partition("=")
        by_algo[label] = [t for ts in group_trials(load_trials(folder)).values() for t in ts]
    variants = []
    for item in args.variant:
        folder, _, tag = item.partition("=")
        for algo, trials in group_trials(load_trials(folder)).items():
            by_algo[f"{algo} ({tag})"] = trials
            variants.append((f"{algo} ({tag})", algo))
    algos = [a for a in ORDER if a in by_algo] + sorted(set(by_algo) - set(ORDER))

    def per_trial(algo, fn):
        return [fn(t) for t in sorted(by_algo[algo], key=lambda t: t["seed"])]

    def final(t):
        return value_at(eval_curve(t["rows"], t.get("rllib_eval_interval")), args.budget)

    def last3(t):
        return _tail_mean(eval_curve(t["rows"], t.get("rllib_eval_interval")), 3)

    def kl_moved(t):
        vals = [r.get(names.KL_NEW_OLD) for r in t["rows"] if r.get(names.KL_NEW_OLD) is not None]
        return statistics.fmean(vals) if vals else None

    n = max(len(ts) for ts in by_algo.values())
    print(
        f"| algorithm | eval return @ {args.budget:,.0f} (mean ± 95% CI, n = {n}) | per seed | mean of last 3 "
        "evaluations | stochastic train return | grad-norm variance | grad-norm CV | KL std | KL moved / iteration |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for a in algos:
        finals = per_trial(a, final)
        seeds = " / ".join(f"{v:,.0f}" if v is not None else "-" for v in finals)
        print(
            f"| {a} | {_ci(finals)} | {seeds} | {_ci(per_trial(a, last3))} | "
            f"{_ci(per_trial(a, lambda t: _last(t['rows'], names.RESULT_TRAIN_RETURN)))} | "
            f"{_g(per_trial(a, lambda t: _last(t['rows'], names.GRAD_NORM_VAR)))} | "
            f"{_g(per_trial(a, lambda t: _last(t['rows'], names.GRAD_NORM_CV)))} | "
            f"{_g(per_trial(a, lambda t: _last(t['rows'], names.KL_REF_STD)))} | {_g(per_trial(a, kl_moved))} |"
        )
    print()
    lines = []
    ret = {a: per_trial(a, last3) for a in algos}
    pairs = [("GRPO", "PPO"), ("Soft-Pair-GRPO", "GRPO"), ("Hard-Pair-GRPO", "Soft-Pair-GRPO")]
    pairs += [
        (a, extra.partition("=")[2])
        for extra in args.also
        for a in ("GRPO", "Soft-Pair-GRPO", "Hard-Pair-GRPO")
    ]
    for better, worse in pairs:
        if better in ret and worse in ret:
            lines.append(
                claim(f"§6.2, {better} > {worse} (mean of the last 3 evaluations)", ret[better], ret[worse])
            )
    for variant, base in variants:
        if base in ret:
            lines.append(
                claim(f"ours, {variant} > {base} (mean of the last 3 evaluations)", ret[variant], ret[base])
            )
            train = {
                a: per_trial(a, lambda t: _last(t["rows"], names.RESULT_TRAIN_RETURN))
                for a in (variant, base)
            }
            lines.append(
                claim(f"ours, {variant} > {base} (stochastic train return)", train[variant], train[base])
            )
    for key, label in (
        (names.GRAD_NORM_VAR, "gradient-norm variance"),
        (names.GRAD_NORM_CV, "gradient-norm CV (scale-free)"),
        (names.KL_REF_STD, "KL std"),
    ):
        vals = {a: per_trial(a, lambda t, k=key: _last(t["rows"], k)) for a in algos}
        for higher, lower in (("GRPO", "Soft-Pair-GRPO"), ("Soft-Pair-GRPO", "Hard-Pair-GRPO")):
            if higher in vals and lower in vals:
                lines.append(
                    claim(f"§6.1.3 (on HalfCheetah), {label}: {higher} > {lower}", vals[higher], vals[lower])
                )
    print("\n".join(lines))
    if args.curves:
        out = []
        for a in algos:
            for t in sorted(by_algo[a], key=lambda t: t["seed"]):
                out.append(
                    {
                        "algorithm": a,
                        "seed": t["seed"],
                        "eval_curve": eval_curve(t["rows"], t.get("rllib_eval_interval")),
                        "train_return_curve": [
                            (r.get(names.RESULT_STEPS), r.get(names.RESULT_TRAIN_RETURN))
                            for r in t["rows"]
                            if r.get(names.RESULT_TRAIN_RETURN) is not None
                        ],
                    }
                )
        Path(args.curves).write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
