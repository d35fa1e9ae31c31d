"""The LLM study's verdict on each claim of the Pair-GRPO paper's section 6.1 it can test.

Reads a finished `pairgrpo sweep tune_configs/llm_study.yaml` folder (its `llm_eval.json` and the
trials' training rows) and prints Markdown for docs/llm.md: per claim, the paper's statement, the
measured difference of per-seed means with a Welch 95% CI, and the verdict: reproduced (the CI
excludes 0 in the paper's direction), not reproduced (it excludes 0 the other way), or not
distinguishable at this n.

    .venv/bin/python benchmarks/llm_study_verdicts.py results/llm_study [--judge truth] \
        [--json docs/data/llm_study.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pairgrpo_rllib.app.report import _last, _v, group_trials, load_trials, mean_ci, welch_diff
from pairgrpo_rllib.core import names

HARD = "Hard-Pair-GRPO [delta_decay=True, trust_region=True]"
FIXED = "Hard-Pair-GRPO [delta_decay=False, trust_region=True]"
NO_TR = "Hard-Pair-GRPO [delta_decay=True, trust_region=False]"


def per_seed(data: dict, groups: dict, label: str, what: str, judge: str):
    """Per-seed values of one quantity for one group label (None where missing)."""
    rows = [r for r in data["trials"] if r["label"] == label]
    if what in ("helpfulness", "harmlessness", "overall"):
        return [r["win_rates"][judge][what]["rate"] for r in rows]
    if what == "truth_reward":
        return [r.get("truth_reward") for r in rows]
    if what.startswith("likert_"):
        return [r["likert"]["truth"][what[len("likert_") :]]["mean"] for r in rows]
    key = {
        "grad_var": names.GRAD_NORM_VAR,
        "grad_cv": names.GRAD_NORM_CV,
        "kl_std": names.KL_REF_STD,
        "kl_cv": names.KL_REF_CV,
    }[what]
    return [_last(t["rows"], key) for t in groups.get(label, [])]


def verdict(diff, sign: int) -> str:
    """``sign`` +1: the paper says a > b; -1: a < b."""
    if diff is None:
        return "n too small"
    d, h = diff
    if sign * d - h > 0:
        return "reproduced"
    if sign * d + h < 0:
        return "not reproduced"
    return f"not distinguishable at n = {N}"


N = 3


def main() -> None:
    global N
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("exp_dir")
    ap.add_argument("--judge", default="truth")
    ap.add_argument("--json", default=None, help="also write every per-seed value here")
    args = ap.parse_args()
    exp = Path(args.exp_dir)
    data = json.loads((exp / "llm_eval.json").read_text())
    groups = group_trials(load_trials(exp))
    labels = sorted({r["label"] for r in data["trials"]})
    hard = HARD if HARD in labels else "Hard-Pair-GRPO"
    N = min(len([r for r in data["trials"] if r["label"] == label]) for label in labels)

    def get(label, what):
        return per_seed(data, groups, label, what, args.judge)

    claims = []  # (claim, a, b, quantity, sign)
    for what, name in (
        ("helpfulness", "helpfulness"),
        ("harmlessness", "harmlessness"),
        ("overall", "overall"),
    ):
        for other in ("GRPO", "Soft-Pair-GRPO", "DPO", "ORPO"):
            claims.append(
                (f"Hard-Pair-GRPO wins more often than {other} ({name} win rate)", hard, other, what, +1)
            )
        claims.append((f"Soft-Pair-GRPO above GRPO ({name} win rate)", "Soft-Pair-GRPO", "GRPO", what, +1))
    for other in ("GRPO", "Soft-Pair-GRPO", "DPO", "ORPO"):
        claims.append(
            (f"Hard-Pair-GRPO rated higher than {other} (Likert overall)", hard, other, "likert_overall", +1)
        )
    claims.append(
        (
            "Soft-Pair-GRPO rated higher than GRPO (Likert overall)",
            "Soft-Pair-GRPO",
            "GRPO",
            "likert_overall",
            +1,
        )
    )
    for q, qname in (("grad_var", "gradient-norm variance"), ("grad_cv", "gradient-norm CV (scale-free)"),
                     ("kl_std", "KL std"), ("kl_cv", "KL CV (scale-free)")):  # fmt: skip
        claims.append((f"Soft-Pair-GRPO below GRPO ({qname})", "Soft-Pair-GRPO", "GRPO", q, -1))
        claims.append((f"Hard-Pair-GRPO below Soft-Pair-GRPO ({qname})", hard, "Soft-Pair-GRPO", q, -1))
    if FIXED in labels:
        claims.append(
            ("ablation: full Hard-Pair above fixed delta (overall win rate)", hard, FIXED, "overall", +1)
        )
    if NO_TR in labels:
        claims.append(
            ("ablation: full Hard-Pair above no trust region (overall win rate)", hard, NO_TR, "overall", +1)
        )
        claims.append(
            ("ablation: no trust region less stable (gradient-norm CV)", NO_TR, hard, "grad_cv", +1)
        )
    claims.append(
        (
            "ablation: full Hard-Pair above Soft-Pair-GRPO (overall win rate)",
            hard,
            "Soft-Pair-GRPO",
            "overall",
            +1,
        )
    )

    print(f"Judge: {args.judge}. Per algorithm (mean ± 95% CI across seeds):\n")
    cols = [
        "helpfulness",
        "harmlessness",
        "overall",
        "truth_reward",
        "likert_overall",
        "grad_var",
        "grad_cv",
        "kl_std",
        "kl_cv",
    ]
    print("| algorithm | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    dump = {}
    for label in labels:
        vals = {c: get(label, c) for c in cols}
        dump[label] = vals
        print(f"| {label} | " + " | ".join(mean_ci(vals[c]) for c in cols) + " |")
    print("\n| claim (paper) | difference, 95% CI | verdict |\n|---|---|---|")
    for claim, a, b, q, sign in claims:
        if a not in labels or b not in labels:
            continue
        diff = welch_diff(get(a, q), get(b, q))
        shown = f"{_v(diff[0])} ± {_v(diff[1])}" if diff else "-"
        print(f"| {claim} | {shown} | {verdict(diff, sign)} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"judge": args.judge, "per_seed": dump}, indent=2, default=str) + "\n"
        )


if __name__ == "__main__":
    main()
