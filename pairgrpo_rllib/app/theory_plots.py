"""Figures in the manner of GRPO-objective's Figures 1-3: ``pi(a)`` against ``pi_ref(a)`` for several beta.

Closed-form curves (lines) with the simulated fixed points on them (markers), one PNG per case.
matplotlib is imported here only, with the non-interactive Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pairgrpo_rllib.core.theory.bandit import Case
from pairgrpo_rllib.core.theory.check import closed_form

TITLES = {
    ("grpo", "k3"): "GRPO, G = {g}, k3 penalty",
    ("grpo", "k3_is"): "GRPO, G = {g}, k3_is (direct KL)",
    ("soft_pair_grpo", "k3"): "Soft-Pair-GRPO (pairs = all), G = {g}, k3",
    ("soft_pair_grpo", "k3_is"): "Soft-Pair-GRPO (pairs = all), G = {g}, k3_is",
    ("hard_pair_grpo", "none"): "Hard-Pair-GRPO, G = {g}, fit solved each iteration",
}
FORMULA = {
    ("grpo", 2, "k3"): "closed form: GRPO-objective eq. 14",
    ("grpo", "inf", "k3"): "closed form: GRPO-objective eq. 15",
    ("grpo", "large", "k3"): "closed form: GRPO-objective eq. 15 (G -> inf)",
    ("grpo", 2, "k3_is"): "closed form: tilted reference (GRPO-objective §3)",
}


def case_filename(case: Case, mode: str) -> str:
    return f"theory_{case.algorithm}_G{case.group_size}_{case.kl_estimator}_{mode}.png"


def _series(ax, color, grid, curve, points, label) -> None:
    """One closed-form curve (line) and its simulated points (open circles) in one colour."""
    ax.plot(grid, curve, color=color, lw=1.5, label=label)
    ax.plot([r["pref"] for r in points], [r["simulated"] for r in points], "o", color=color, ms=5, mfc="none")


def plot_rows(rows: Sequence[dict], out_dir: str | Path) -> list[Path]:
    """Write one PNG per case found in ``rows``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases: dict[tuple, list[dict]] = {}
    for r in rows:
        cases.setdefault((r["algorithm"], r["group_size"], r["kl_estimator"], r["mode"]), []).append(r)
    written = []
    grid = np.linspace(0.002, 0.998, 300)
    for (algo, g, est, mode), case_rows in cases.items():
        case = Case(algo, g, est)
        fig, ax = plt.subplots(figsize=(5.2, 4.2), dpi=120)
        if algo == "hard_pair_grpo":
            first_beta = case_rows[0]["beta"]
            series = sorted({r["iterations"] for r in case_rows})
            hp = {k: case_rows[0][k] for k in ("delta0", "gamma", "eps_p")}
            for i, t in enumerate(series):
                pts = [r for r in case_rows if r["iterations"] == t and r["beta"] == first_beta]
                curve = [closed_form(case, 0.0, p, t, **hp) for p in grid]
                _series(ax, plt.cm.viridis(i / max(1, len(series) - 1)), grid, curve, pts, f"T = {t}")
            subtitle = f"delta0 = {hp['delta0']}, gamma = {hp['gamma']}; beta_tr = {first_beta:g}"
        else:
            betas = sorted({r["beta"] for r in case_rows})
            for i, b in enumerate(betas):
                pts = [r for r in case_rows if r["beta"] == b]
                curve = [closed_form(case, b, p) for p in grid]
                _series(ax, plt.cm.viridis(i / max(1, len(betas) - 1)), grid, curve, pts, f"beta = {b:g}")
            key = (algo, "large" if g not in (2, "inf") else g, est)
            subtitle = FORMULA.get(
                key, "closed form: GRPO-objective eq. 14 (expected pair advantage = pi_old(b))"
            )
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
        worst = max(r["abs_error"] for r in case_rows)
        ax.set_title(
            TITLES[(algo, est)].format(g=g) + f"\n{subtitle}; {mode}, max |error| {worst:.1e}", fontsize=8
        )
        ax.set_xlabel("pi_ref(a)")
        ax.set_ylabel("stationary pi(a)" if algo != "hard_pair_grpo" else "pi_T(a)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = out / case_filename(case, mode)
        tmp = path.with_suffix(".tmp.png")
        fig.savefig(tmp)
        plt.close(fig)
        tmp.replace(path)  # atomic: a half-written figure never replaces a good one
        written.append(path)
    return written
