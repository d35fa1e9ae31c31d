"""The LLM study's tables and the verdict on each claim of the Pair-GRPO paper's section 6.1.

Reads finished `pairgrpo sweep tune_configs/llm_study.yaml` (and, with `--ablation`, the
`llm_hard_pair_ablation.yaml`) folders, their `llm_eval.json` and the trials' training rows, and prints
the Markdown of docs/results/llm_study.md's study section: win rates (truth judge, and the reward model's overall
rate), Likert ratings, stability (raw and scale-free), the Hard-Pair ablation at both step sizes, and
one verdict per claim from the difference of per-seed means with a Welch 95% CI: reproduced (the CI
excludes 0 in the paper's direction), not reproduced (it excludes 0 the other way), or not
distinguishable at this n.

    .venv/bin/python benchmarks/llm_study_verdicts.py results/llm_study \
        --ablation results/llm_hard_pair_ablation --json docs/data/llm_study_per_seed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from pairgrpo_rllib.app.report import group_trials, half_width, last_value, load_trials, welch_diff
from pairgrpo_rllib.core import names
from pairgrpo_rllib.evaluation import ASPECTS

FULL = "Hard-Pair-GRPO [delta_decay=True, trust_region=True]"
FIXED = "Hard-Pair-GRPO [delta_decay=False, trust_region=True]"
NO_TR = "Hard-Pair-GRPO [delta_decay=True, trust_region=False]"
ROWS = ["GRPO", "Soft-Pair-GRPO", FULL, "PG-GRPO", "DPO", "ORPO"]
SHORT = {FULL: "Hard-Pair-GRPO (full)", FIXED: "fixed delta", NO_TR: "no trust region"}
TRAIN_KEYS = {
    "grad_var": names.GRAD_NORM_VAR,
    "grad_cv": names.GRAD_NORM_CV,
    "kl_std": names.KL_REF_STD,
    "kl_cv": names.KL_REF_CV,
}


class Study:
    def __init__(self, exp: Path):
        self.data = json.loads((exp / "llm_eval.json").read_text())
        self.groups = group_trials(load_trials(exp))
        self.labels = sorted({r["label"] for r in self.data["trials"]})
        self.rm = next(j for j in self.data["trials"][0]["win_rates"] if j.startswith("reward_model"))

    def values(self, label: str, what: str, judge: str = "truth") -> list:
        rows = sorted((r for r in self.data["trials"] if r["label"] == label), key=lambda r: str(r["seed"]))
        if what in ("helpfulness", "harmlessness", "overall"):
            return [r["win_rates"][judge][what]["rate"] for r in rows]
        if what == "truth_reward":
            return [r.get("truth_reward") for r in rows]
        if what.startswith("likert_"):
            return [r["likert"]["truth"][what[len("likert_") :]]["mean"] for r in rows]
        if what == "cosine":
            out = []
            for t in self.groups.get(label, []):
                v = [
                    r[names.GRAD_COSINE_VS_GRPO]
                    for r in t["rows"]
                    if r.get(names.GRAD_COSINE_VS_GRPO) is not None
                ]
                out.append(statistics.fmean(v) if v else None)
            return out
        return [last_value(t["rows"], TRAIN_KEYS[what]) for t in self.groups.get(label, [])]

    def baseline(self, what: str) -> list:
        b = self.data["baselines"].values()
        if what == "truth_reward":
            return [x["truth_reward"] for x in b]
        return [x["likert"]["truth"][what[len("likert_") :]]["mean"] for x in b]


def ci(values, digits: int = 3) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    m = statistics.fmean(vals)
    return f"{m:.{digits}f} ± {half_width(vals):.{digits}f}" if len(vals) > 1 else f"{m:.{digits}f}"


def sig(values) -> str:
    """Mean ± CI with two significant digits (variances span orders of magnitude)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    return f"{statistics.fmean(vals):.2g} ± {half_width(vals):.2g}"


def diff(a, b) -> tuple[float, float] | None:
    return welch_diff([v for v in a if v is not None], [v for v in b if v is not None])


def shown(d) -> str:
    return f"{d[0]:+.3g} ± {d[1]:.2g}" if d else "-"


def verdict(d, sign: int, n: int) -> str:
    if d is None:
        return "n too small"
    m, h = d
    if sign * m - h > 0:
        return "reproduced"
    if sign * m + h < 0:
        return "not reproduced"
    return f"not distinguishable at n = {n}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("exp_dir")
    ap.add_argument("--ablation", default=None, help="the llm_hard_pair_ablation folder (larger step)")
    ap.add_argument("--json", default=None, help="write every per-seed value here")
    args = ap.parse_args()
    st = Study(Path(args.exp_dir))
    ab = Study(Path(args.ablation)) if args.ablation else None
    n = min(len(st.values(label, "overall")) for label in st.labels)
    out = []
    p = out.append

    p(f"SFT policy (the baseline): truth reward {ci(st.baseline('truth_reward'))}, Likert overall "
      f"{ci(st.baseline('likert_overall'), 2)}.\n")  # fmt: skip
    p("| algorithm | helpfulness (helpful prompts) | harmlessness (harmful prompts) | overall | overall, "
      "reward-model judge | truth reward |")  # fmt: skip
    p("|---|---|---|---|---|---|")
    for label in ROWS:
        v = [ci(st.values(label, w)) for w in ("helpfulness", "harmlessness", "overall")]
        p(f"| {SHORT.get(label, label)} | {' | '.join(v)} | {ci(st.values(label, 'overall', st.rm))} | "
          f"{ci(st.values(label, 'truth_reward'))} |")  # fmt: skip
    p("\nLikert 1-5 from the truth (" + " / ".join(ASPECTS) + "):")
    likert = [("SFT", [ci(st.baseline(f"likert_{a}"), 2) for a in ASPECTS])]
    likert += [(SHORT.get(x, x), [ci(st.values(x, f"likert_{a}"), 2) for a in ASPECTS]) for x in ROWS]
    p("\n| policy | " + " | ".join(ASPECTS) + " |\n|---|" + "---|" * len(ASPECTS))
    for name, cells in likert:
        p(f"| {name} | " + " | ".join(cells) + " |")
    p("\n| algorithm | grad-norm variance | grad-norm CV | KL std | KL CV | cosine to GRPO's gradient |")
    p("|---|---|---|---|---|---|")
    for label in ROWS:
        cells = [sig(st.values(label, k)) for k in ("grad_var", "grad_cv", "kl_std", "kl_cv", "cosine")]
        p(f"| {SHORT.get(label, label)} | " + " | ".join(cells) + " |")
    if ab:
        p(
            "\n| variant | lr 5e-5 (`llm_study`): win rate; truth reward | lr 5e-4 (`llm_hard_pair_ablation`) |"
        )
        p("|---|---|---|")
        for label in (FULL, FIXED, NO_TR, "Soft-Pair-GRPO"):
            cells = [
                f"{ci(s.values(label, 'overall'))}; {ci(s.values(label, 'truth_reward'))}" for s in (st, ab)
            ]
            p(f"| {SHORT.get(label, label)} | " + " | ".join(cells) + " |")

    p("\n| claim of the paper (section 6.1) | measured (difference, 95% CI) | verdict |\n|---|---|---|")
    others = ("GRPO", "Soft-Pair-GRPO", "DPO", "ORPO")
    for what in ("helpfulness", "harmlessness", "overall"):
        ds = {o: diff(st.values(FULL, what), st.values(o, what)) for o in others}
        vs = {o: verdict(ds[o], +1, n) for o in others}
        p(f"| Hard-Pair-GRPO has the highest {what} win rate | "
          + "; ".join(f"vs {o} {shown(ds[o])}" for o in others)
          + " | " + "; ".join(f"{o}: {vs[o]}" for o in others) + " |")  # fmt: skip
    d_rm = {o: diff(st.values(FULL, "overall", st.rm), st.values(o, "overall", st.rm)) for o in others}
    p("| the same, overall rate by the reward-model judge | "
      + "; ".join(f"vs {o} {shown(d_rm[o])}" for o in others) + " | "
      + "; ".join(f"{o}: {verdict(d_rm[o], +1, n)}" for o in others) + " |")  # fmt: skip
    for what in ("helpfulness", "overall"):
        d = diff(st.values("Soft-Pair-GRPO", what), st.values("GRPO", what))
        p(f"| Soft-Pair-GRPO above GRPO ({what} win rate) | {shown(d)} | {verdict(d, +1, n)} |")
    ds = {o: diff(st.values(FULL, "likert_overall"), st.values(o, "likert_overall")) for o in others}
    p("| Hard-Pair-GRPO rated highest (Likert overall) | "
      + "; ".join(f"vs {o} {shown(ds[o])}" for o in others) + " | "
      + "; ".join(f"{o}: {verdict(ds[o], +1, n)}" for o in others) + " |")  # fmt: skip
    d = diff(st.values("Soft-Pair-GRPO", "likert_overall"), st.values("GRPO", "likert_overall"))
    p(f"| Soft-Pair-GRPO rated above GRPO (Likert overall) | {shown(d)} | {verdict(d, +1, n)} |")
    for raw, free, name in (("grad_var", "grad_cv", "gradient-norm variance"), ("kl_std", "kl_cv", "KL std")):
        for a, b in (("Soft-Pair-GRPO", "GRPO"), (FULL, "Soft-Pair-GRPO")):
            dr, df = diff(st.values(a, raw), st.values(b, raw)), diff(st.values(a, free), st.values(b, free))
            p(f"| {name}: {SHORT.get(a, a)} below {b} | raw {shown(dr)}; scale-free (CV) {shown(df)} | "
              f"raw: {verdict(dr, -1, n)}; CV: {verdict(df, -1, n)} |")  # fmt: skip
    for s, lr in ((st, "lr 5e-5"), (ab, "lr 5e-4")):
        if s is None:
            continue
        for other, name in (
            (FIXED, "fixed delta"),
            (NO_TR, "no trust region"),
            ("Soft-Pair-GRPO", "Soft-Pair-GRPO"),
        ):
            d = diff(s.values(FULL, "overall"), s.values(other, "overall"))
            identical = s.values(FULL, "overall") == s.values(other, "overall")
            p(f"| ablation ({lr}): full Hard-Pair above {name} (overall win rate) | "
              f"{'identical runs' if identical else shown(d)} | {verdict(d, +1, n)} |")  # fmt: skip
    print("\n".join(out))
    if args.json:
        dump = {"study": {x: {w: st.values(x, w) for w in ("helpfulness", "harmlessness", "overall", "truth_reward",
                "likert_overall", "grad_var", "grad_cv", "kl_std", "kl_cv", "cosine")} for x in st.labels}}  # fmt: skip
        dump["study_reward_model_overall"] = {x: st.values(x, "overall", st.rm) for x in st.labels}
        if ab:
            dump["ablation"] = {
                x: {w: ab.values(x, w) for w in ("overall", "truth_reward")} for x in ab.labels
            }
        Path(args.json).write_text(json.dumps(dump, indent=2) + "\n")


if __name__ == "__main__":
    main()
