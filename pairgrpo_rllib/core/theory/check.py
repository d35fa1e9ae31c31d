"""``pairgrpo theory``: which cases have a closed form, running them, and the result rows.

A row compares the simulated ``pi(a)`` of one ``(case, beta, pref)`` with its closed form. Rows are
plain dicts (JSON-ready); their keys are part of the command's interface:
``algorithm, group_size, kl_estimator, beta, pref, mode, closed_form, simulated, abs_error`` plus
``tolerance, passed, iterations`` and, for Hard-Pair-GRPO, ``delta0, gamma, eps_p``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pairgrpo_rllib.core.names import THEORY_ALGORITHMS, THEORY_MODES
from pairgrpo_rllib.core.theory import closed_forms as cf
from pairgrpo_rllib.core.theory.bandit import (
    DTYPE,
    INF,
    Case,
    SimulationSettings,
    simulate_exact,
    simulate_hard_pair,
    simulate_sampled,
)

ALGORITHMS = THEORY_ALGORITHMS
MODES = THEORY_MODES
TOLERANCE = {"exact": 0.01, "sampled": 0.03}
DEFAULT_BETAS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0)
DEFAULT_PREFS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
DEFAULT_ITERATIONS = (25,)
# GRPO's G -> infinity form (eq. 15) is checked at G = 256 too: the exact G = 256 fixed point is
# within 0.0016 of it over the whole grid (docs/theory.md), so smaller G would not be a fair check.
LARGE_G = 256


class TheoryInputError(ValueError):
    """A case with no closed form, or an option outside its range; the CLI prints it on one line."""


def default_cases(algorithms: Sequence[str]) -> list[Case]:
    """The cases the spec lists, for the chosen algorithms."""
    cases: list[Case] = []
    if "grpo" in algorithms:
        cases += [Case("grpo", 2), Case("grpo", INF), Case("grpo", LARGE_G), Case("grpo", 2, "k3_is")]
    if "soft_pair_grpo" in algorithms:
        cases += [Case("soft_pair_grpo", g) for g in (2, 4, 8)]
    if "hard_pair_grpo" in algorithms:
        cases.append(Case("hard_pair_grpo", 8, "none"))
    return cases


def build_cases(
    algorithms: Sequence[str],
    group_sizes: Sequence[int | str] | None,
    kl_estimators: Sequence[str] | None,
) -> list[Case]:
    """The cases for explicit ``--group-size`` / ``--kl-estimator`` lists; raises on a case without a closed form."""
    if group_sizes is None and kl_estimators is None:
        return default_cases(algorithms)
    cases: list[Case] = []
    for algo in algorithms:
        if algo == "hard_pair_grpo":
            for g in group_sizes or (8,):
                if g == INF:
                    raise TheoryInputError(
                        "--group-size inf: hard_pair_grpo samples real groups; use an integer >= 2"
                    )
                cases.append(Case(algo, g, "none"))  # kl_coeff = 0: no estimator involved
            continue
        sizes = group_sizes or ((2, 4, 8) if algo == "soft_pair_grpo" else (2, LARGE_G, INF))
        for g in sizes:
            for est in kl_estimators or ("k3",):
                cases.append(_checked_case(algo, g, est))
    return cases


def _checked_case(algo: str, g: int | str, est: str) -> Case:
    if est not in ("k3", "k3_is"):
        raise TheoryInputError(f"--kl-estimator {est}: no closed form; use k3 or k3_is")
    if algo == "soft_pair_grpo":
        if g == INF:
            raise TheoryInputError(
                "--group-size inf: soft_pair_grpo samples real groups; use an integer >= 2"
            )
        return Case(algo, g, est)
    if est == "k3_is" and g != 2:
        raise TheoryInputError(
            f"--group-size {g} with --kl-estimator k3_is: the direct-KL closed form is for GRPO with G = 2; use 2"
        )
    if g != INF and 2 < g < LARGE_G:
        raise TheoryInputError(
            f"--group-size {g}: GRPO has closed forms for G = 2 (eq. 14) and G -> inf (eq. 15, checked "
            f"for G >= {LARGE_G}); use 2, >= {LARGE_G} or inf"
        )
    return Case(algo, g, est)


def closed_form(case: Case, beta: float, pref: float, iterations: int | None = None, **hp) -> float:
    """The closed-form ``pi(a)`` of a case."""
    if case.algorithm == "hard_pair_grpo":
        return cf.hard_pair(pref, iterations, hp["delta0"], hp["gamma"], hp["eps_p"])
    if case.algorithm == "soft_pair_grpo":
        return cf.soft_pair_all(beta, pref, case.kl_estimator)
    if case.kl_estimator == "k3_is":
        return cf.grpo_g2_direct_kl(beta, pref)
    return cf.grpo_g2(beta, pref) if case.group_size == 2 else cf.grpo_large_g(beta, pref)


def run_case(
    case: Case, betas: Sequence[float], prefs: Sequence[float], mode: str, settings: SimulationSettings
) -> list[dict]:
    """Simulate one case over the grid ``betas x prefs`` (all configurations at once)."""
    grid_b = torch.tensor([b for b in betas for _ in prefs], dtype=DTYPE)
    grid_p = torch.tensor([p for _ in betas for p in prefs], dtype=DTYPE)
    tol = TOLERANCE[mode]
    base = {"algorithm": case.algorithm, "group_size": case.group_size, "kl_estimator": case.kl_estimator}
    rows: list[dict] = []
    if case.algorithm == "hard_pair_grpo":
        hp = {"delta0": settings.delta0, "gamma": settings.gamma, "eps_p": settings.eps_p}
        results = simulate_hard_pair(case, grid_b, grid_p, settings, mode)
        for t, pi_a in sorted(results.items()):
            for b, p, sim in zip(grid_b.tolist(), grid_p.tolist(), pi_a.tolist()):
                exact = closed_form(case, b, p, t, **hp)
                rows.append(result_row(base, b, p, mode, exact, sim, tol, iterations=t, **hp))
        return rows
    simulate = simulate_exact if mode == "exact" else simulate_sampled
    pi_a, info = simulate(case, grid_b, grid_p, settings)
    residual = info.get("residual")
    for i, (b, p, sim) in enumerate(zip(grid_b.tolist(), grid_p.tolist(), pi_a.tolist())):
        extra = {"iterations": info["iterations"]}
        if residual is not None:
            extra["residual"] = float(residual[i])
        rows.append(result_row(base, b, p, mode, closed_form(case, b, p), sim, tol, **extra))
    return rows


def result_row(
    base: dict, beta: float, pref: float, mode: str, exact: float, sim: float, tol: float, **extra
) -> dict:
    err = abs(sim - exact)
    return {
        **base,
        "beta": beta,
        "pref": pref,
        "mode": mode,
        "closed_form": exact,
        "simulated": sim,
        "abs_error": err,
        "tolerance": tol,
        "passed": bool(err <= tol),
        **extra,
    }


def run_theory(
    cases: Sequence[Case],
    betas: Sequence[float] = DEFAULT_BETAS,
    prefs: Sequence[float] = DEFAULT_PREFS,
    mode: str = "exact",
    settings: SimulationSettings | None = None,
    progress=None,
) -> list[dict]:
    """Every case over the grid; ``progress(case, rows)`` is called after each case."""
    if mode not in MODES:
        raise TheoryInputError(f"--mode {mode}: use one of {', '.join(MODES)}")
    settings = settings or SimulationSettings()
    rows: list[dict] = []
    for case in cases:
        case_rows = run_case(case, betas, prefs, mode, settings)
        rows += case_rows
        if progress is not None:
            progress(case, case_rows)
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A readable fixed-width table of the rows, one block per case, with each case's worst error."""
    header = (
        f"{'algorithm':<15} {'G':>4} {'kl':>6} {'beta':>6} {'pref':>5} {'T':>4} "
        f"{'closed_form':>12} {'simulated':>12} {'abs_error':>10}  ok"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        t = str(r["iterations"]) if r["algorithm"] == "hard_pair_grpo" else ""
        lines.append(
            f"{r['algorithm']:<15} {r['group_size']!s:>4} {r['kl_estimator']:>6} {r['beta']:>6g} {r['pref']:>5g} "
            f"{t:>4} {r['closed_form']:>12.6f} {r['simulated']:>12.6f} {r['abs_error']:>10.2e}  "
            f"{'yes' if r['passed'] else 'NO'}"
        )
    return "\n".join(lines)


def summarize(rows: Sequence[dict]) -> list[dict]:
    """One line per case: number of rows, worst error, tolerance, all passed."""
    out: dict[tuple, dict] = {}
    for r in rows:
        key = (r["algorithm"], str(r["group_size"]), r["kl_estimator"], r["mode"])
        s = out.setdefault(
            key,
            {
                "algorithm": key[0],
                "group_size": r["group_size"],
                "kl_estimator": key[2],
                "mode": key[3],
                "rows": 0,
                "max_abs_error": 0.0,
                "tolerance": r["tolerance"],
                "passed": True,
            },
        )
        s["rows"] += 1
        s["max_abs_error"] = max(s["max_abs_error"], r["abs_error"])
        s["passed"] = s["passed"] and r["passed"]
    return list(out.values())
