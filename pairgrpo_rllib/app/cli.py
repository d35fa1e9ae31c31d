"""The ``pairgrpo`` command (also ``python -m pairgrpo_rllib``).

Subcommands:
  theory   reproduce the stationary policies of GRPO in closed form (Vojnovic & Yun) with our losses
  train    run one algorithm and seed of an experiment YAML (checkpoints, resume)
  sweep    run every algorithm x seed x search point of an experiment YAML side by side (Tune)
  report   tables and learning curves from a results folder
  cluster  a local multi-node Ray cluster on loopback (up / down / status / env)
  llm      the LLM side's jobs: make-tiny (tokenizer + tiny model), make-task (the synthetic task's
           data), sft and reward-model (transformers Trainer jobs from a YAML)

Bad input gets one line on stderr naming the option, the value and the allowed range, exit code 2,
and no traceback, before any work starts. Heavy packages are imported by the subcommand that
needs them (``theory`` needs torch only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence

EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 1


class OneLineParser(argparse.ArgumentParser):
    """argparse, but errors are one line (``pairgrpo theory: error: ...``) and exit 2."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _float_in(name: str, low: float, high: float, low_open: bool, high_open: bool, allowed: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; allowed: {allowed}") from None
        ok = math.isfinite(value)
        ok = (
            ok
            and (value > low if low_open else value >= low)
            and (value < high if high_open else value <= high)
        )
        if not ok:
            raise argparse.ArgumentTypeError(f"{text} is out of range; allowed: {allowed}")
        return value

    parse.__name__ = name
    return parse


def _group_size(text: str) -> int | str:
    if text.strip().lower() in ("inf", "infinity"):
        return "inf"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an integer; allowed: an integer >= 2, or inf"
        ) from None
    if not 2 <= value <= MAX_GROUP_SIZE:
        raise argparse.ArgumentTypeError(
            f"{text} is out of range; allowed: an integer in [2, {MAX_GROUP_SIZE}], or inf (a group needs two members)"
        )
    return value


def _int_in(low: int, high: int):
    """An argparse type: an integer in ``[low, high]``, with a one-line message naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an integer; allowed: an integer in [{low}, {high}]"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range; allowed: an integer in [{low}, {high}]"
            )
        return value

    parse.__name__ = "integer"
    return parse


def _folder(text: str) -> str:
    """A folder argument: an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is empty; give a folder, e.g. results")
    return text


MAX_GROUP_SIZE = 1024  # exact mode enumerates group compositions; larger G adds nothing to the check
# Far below the checked range the fixed points crowd pi(a) = 1 and float64 runs out: --beta 1e-300 ran
# 204-248 s (the exact iteration to its cap); 1e-6, 1e-10 and 1e-20 each take 4-9 s for the whole default
# grid here. 1e-6 keeps a binding Hard-Pair trust region (beta_tr 1e-4, docs/theory.md) in reach.
MIN_THEORY_BETA = 1e-6
THEORY_BETA_RANGE = f"{MIN_THEORY_BETA:g} <= beta <= 100 (checked range [0.05, 3])"
_iterations = _int_in(1, 100_000)
_workers = _int_in(0, 64)
_cpus = _int_in(1, 1024)
_seed = _int_in(0, 2**31 - 1)


def build_parser() -> argparse.ArgumentParser:
    from pairgrpo_rllib.algorithms.stages import CLI_NAMES, STAGES, cli_name
    from pairgrpo_rllib.core.names import THEORY_ALGORITHMS as ALGORITHMS
    from pairgrpo_rllib.core.names import THEORY_MODES as MODES

    parser = OneLineParser(prog="pairgrpo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    th = sub.add_parser(
        "theory",
        help='reproduce the stationary policies of GRPO (Vojnovic & Yun, "What is the Alignment Objective of GRPO?")',
        description=(
            "Train a tabular softmax policy on a binary question (a preferred, deterministic rewards) with "
            "the project's loss functions and compare its fixed point with the closed forms of Vojnovic & Yun, "
            "'What is the Alignment Objective of GRPO?' (arXiv 2502.18548) "
            "(spec: docs/algorithms.md, last section). Exits 1 if any row misses its tolerance "
            "(0.01 exact, 0.03 sampled)."
        ),
    )
    th.add_argument(
        "--algorithm",
        nargs="+",
        choices=ALGORITHMS,
        default=None,
        metavar="NAME",
        help=f"algorithms to check (default: all of {', '.join(ALGORITHMS)})",
    )
    th.add_argument(
        "--beta",
        nargs="+",
        default=None,
        metavar="B",
        type=_float_in("beta", MIN_THEORY_BETA, 100.0, False, False, THEORY_BETA_RANGE),
        help="KL coefficients (Hard-Pair-GRPO: its trust-region threshold beta_tr); "
        f"default 0.05 0.1 0.2 0.5 1 2 3; allowed {THEORY_BETA_RANGE}",
    )
    th.add_argument(
        "--pref",
        nargs="+",
        default=None,
        metavar="P",
        type=_float_in("pref", 0.0, 1.0, True, True, "0 < pref < 1 (checked range [0.05, 0.95])"),
        help="reference probabilities pi_ref(a); default 0.05 0.1 0.25 0.5 0.75 0.9 0.95",
    )
    th.add_argument(
        "--group-size",
        nargs="+",
        default=None,
        metavar="G",
        type=_group_size,
        help="group sizes (integers >= 2, or inf for GRPO); default per algorithm",
    )
    th.add_argument(
        "--kl-estimator",
        nargs="+",
        default=None,
        choices=("k3", "k3_is"),
        metavar="EST",
        help="KL estimators for GRPO / Soft-Pair-GRPO: k3 or k3_is (default: the spec's cases)",
    )
    th.add_argument(
        "--iterations",
        nargs="+",
        default=None,
        metavar="T",
        type=_iterations,
        help="Hard-Pair-GRPO: iterations T at which pi_T(a) is compared (default 25)",
    )
    th.add_argument(
        "--mode",
        choices=MODES,
        default="exact",
        help="exact: expected gradients to the fixed point; sampled: seeded sampled groups",
    )
    th.add_argument("--seed", type=_seed, default=0, help="random seed of sampled mode (default 0)")
    th.add_argument(
        "--backend",
        choices=("torch", "rllib"),
        default="torch",
        help="torch: the loss functions on a tabular policy (default); rllib: the real RLlib algorithms "
        "(grpo G=2 and soft_pair_grpo; sampled mode; default grid beta 0.1 0.5 2 x pref 0.25 0.75)",
    )
    th.add_argument("--json", action="store_true", help="print one JSON list of rows instead of a table")
    th.add_argument("--plot", metavar="DIR", default=None, help="also write PNG figures to DIR")
    for name, text in (
        ("train", "run one trial (one algorithm, one seed) of an experiment YAML"),
        ("sweep", "run all trials of an experiment YAML side by side with Ray Tune"),
    ):
        p = sub.add_parser(
            name, help=text, description=text + "; checkpoints every checkpoint_every iterations"
        )
        p.add_argument("config", help="experiment YAML (see tune_configs/)")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a value, e.g. --set training.lr=1e-4 --set stop.env_steps=20000",
        )
        p.add_argument(
            "--resume", action="store_true", help="continue an interrupted run from its checkpoints"
        )
        p.add_argument("--output", type=_folder, default="results", help="results folder (default: results/)")
        p.add_argument("--no-report", action="store_true", help="do not write report.md at the end")
        if name == "train":
            p.add_argument(
                "--algorithm", default=None, help="which algorithm of the file (default: the first)"
            )
            p.add_argument("--seed", type=_seed, default=None, help="which seed (default: the first)")
    rep = sub.add_parser("report", help="tables and learning curves of a results folder")
    rep.add_argument("results_dir", help="an experiment folder written by train/sweep")
    cl = sub.add_parser(
        "cluster",
        help="a local multi-node Ray cluster on loopback (head + workers, token auth)",
        description="Start, inspect or stop a real multi-node Ray cluster on this machine "
        "(the topology of docker/docker-compose.yml without containers).",
    )
    cl.add_argument("action", choices=["up", "down", "status", "env"])
    cl.add_argument(
        "--dir", default="results/local_cluster", help="state folder (default: results/local_cluster)"
    )
    cl.add_argument("--workers", type=_workers, default=1, help="worker nodes besides the head (default 1)")
    cl.add_argument("--cpus-per-node", type=_cpus, default=1, help="CPUs each node offers (default 1)")
    llm = sub.add_parser(
        "llm",
        help="LLM jobs: make-tiny, make-task, sft, reward-model, eval",
        description="make-tiny DIR: a tokenizer trained here and a tiny Qwen2 LM (random init). "
        "make-task DIR: the synthetic alignment task's files in the public schemas. "
        "sft CONFIG / reward-model CONFIG: supervised fine-tuning / a Bradley-Terry reward model "
        "eval EXP_DIR: win rates and Likert ratings of every trial's final policy (the run's evaluate "
        "section, or --config's) (docs/llm.md).",
    )
    llm.add_argument("action", choices=[*CLI_NAMES, "eval"])
    llm.add_argument(
        "target",
        help="a new directory (make-tiny, make-task), a job YAML (sft, reward-model) or an experiment "
        "folder (eval)",
    )
    llm.add_argument(
        "--config",
        default=None,
        help="eval: the experiment YAML whose evaluate section to use (default: the run's saved one)",
    )
    takers: dict[str, list[str]] = {}  # a directory stage's option -> the stages that take it
    for stage, st in STAGES.items():
        for k in st.options:
            takers.setdefault(k, []).append(cli_name(stage))
    for k, users in takers.items():
        f = STAGES[CLI_NAMES[users[0]]].options[k]
        llm.add_argument(
            f"--{k}",
            type=_int_in(f.low, f.high),
            default=f.default,
            help=f"{' / '.join(users)}: {f.meaning} (default {f.default})",
        )
    llm.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="sft / reward-model: override"
    )
    parser.subcommand_parsers = sub.choices
    return parser


def _cmd_llm(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """A preparation stage (``algorithms.stages``, by its command-line name) or ``eval``."""
    from pathlib import Path

    from pairgrpo_rllib.algorithms import stages as stage_table

    if args.action == "eval":
        return _cmd_llm_eval(args, parser)
    stage = stage_table.CLI_NAMES[args.action]
    if args.config:
        parser.error(f"--config {args.config}: only eval takes it; {args.action} reads {args.target}")
    try:
        if not stage_table.STAGES[stage].job:
            if args.set:
                parser.error(
                    f"--set {args.set[0]}: {args.action} takes no job file to override; use its options"
                )
            target = Path(args.target)
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                parser.error(
                    f"DIR={args.target!r} is invalid: it exists and is not empty; choose a new directory"
                )
            options = {k: getattr(args, k) for k in stage_table.STAGES[stage].options}
            options = stage_table.check_options(stage, options, args.action)
            _run_stage(stage_table, stage, (args.target, options), args.action, parser)
            print(f"[llm] {stage_table.STAGES[stage].made} written to {target}")
            return 0
        from pairgrpo_rllib.app import experiment

        spec = experiment.read(Path(args.target))
        for item in args.set:
            experiment.apply_override(spec, item)
        stage_table.check_job(stage, spec)  # every value checked before a model loads
    except (ValueError, OSError) as exc:
        parser.error(str(exc).splitlines()[0])
    summary = _run_stage(stage_table, stage, spec, args.action, parser)
    shown = {k: v for k, v in summary.items() if k != "settings"}
    print(f"[llm] {args.action} done: {json.dumps(shown, default=str)}")
    print(f"[llm] model written to {summary['settings']['output']}")
    return 0


def _run_stage(stage_table, stage: str, target, action: str, parser: argparse.ArgumentParser):
    """A checked stage run under the command's error handling: bad input found while it runs (a data
    row, a model's files) is one line and exit 2; any other failure (out of memory, disk full) one
    line and exit 1; nothing half-written is left (``stages.run``)."""
    try:
        return stage_table.run(stage, target)
    except ValueError as exc:
        parser.error(" ".join((str(exc).strip().splitlines() or [exc.__class__.__name__])[0].split()))
    except (OSError, RuntimeError, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"[llm] {action} failed: {exc.__class__.__name__}: {first}", file=sys.stderr)
        sys.exit(EXIT_CHECK_FAILED)


def _cmd_llm_eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Everything checked before Ray: the folder, its lock, the settings, every trial's checkpoint."""
    from pathlib import Path

    from pairgrpo_rllib.app import experiment, llm_eval, runner

    exp_dir = Path(args.target)
    if not exp_dir.is_dir():
        parser.error(
            f"EXP_DIR={args.target!r} is invalid: not a folder; pass an experiment folder written by sweep"
        )
    if args.set and not args.config:
        parser.error(
            f"--set {args.set[0]}: eval takes overrides of --config's file only; pass --config EXPERIMENT.yaml "
            "(the run's saved settings are evaluated as they were)"
        )
    saved = exp_dir / runner.SPEC_FILE
    where = args.config or saved
    try:
        if args.config:
            spec = experiment.load(args.config, args.set)
        else:
            try:
                spec = json.loads(saved.read_text())["spec"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else f"{exc.__class__.__name__}: {exc}"
                raise ValueError(
                    f"{saved}: cannot read the run's settings ({why}); pass --config EXPERIMENT.yaml"
                ) from None
            if not isinstance(spec, dict):
                raise ValueError(
                    f"{saved}: its spec is not a mapping (a damaged file); pass --config EXPERIMENT.yaml"
                )
        if spec.get("evaluate") is None:
            raise ValueError(f"{where}: no evaluate section; add one (docs/llm.md) or pass --config")
        s = llm_eval.settings(spec["evaluate"], spec)
        runner.lock(
            exp_dir.resolve(),
            fix="evaluate it once that run has ended (a running experiment has no final policies)",
        )
        try:
            llm_eval.evaluable_trials(exp_dir)
        except ValueError:
            runner.unlock(exp_dir.resolve())
            raise
    except OSError as exc:  # the lock file cannot be made: the evaluation could not write its files either
        parser.error(f"EXP_DIR={args.target!r}: cannot write there ({exc.strerror}); check its permissions")
    except ValueError as exc:  # ExperimentError, a settings check, a damaged trial folder
        parser.error(" ".join(str(exc).split()))
    except (TypeError, AttributeError, KeyError) as exc:  # saved settings of the wrong shape
        parser.error(
            f"{where}: could not be checked ({exc.__class__.__name__}: {' '.join(str(exc).split())}); "
            "pass --config EXPERIMENT.yaml"
        )
    try:
        out = llm_eval.evaluate_experiment(exp_dir, s)
    except Exception as exc:  # a Ray task's error: its last line says what went wrong
        lines = str(exc).strip().splitlines() or [exc.__class__.__name__]
        print(f"[llm] evaluation of {exp_dir} failed: {lines[-1]}", file=sys.stderr)
        return 1
    finally:
        runner.unlock(exp_dir.resolve())
    print(f"[llm] evaluation written to {out} and {exp_dir / llm_eval.TABLES_FILE}")
    return 0


def _resume_command(args: argparse.Namespace, resume: bool = True) -> str:
    """The exact command that continues this run (``resume=False``: that starts it again)."""
    import shlex

    cmd = ["pairgrpo", args.command, args.config, *(["--resume"] if resume else []), "--output", args.output]
    for item in args.set:
        cmd += ["--set", item]
    if args.command == "train":
        if args.algorithm:
            cmd += ["--algorithm", args.algorithm]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
    if args.no_report:
        cmd.append("--no-report")
    return shlex.join(cmd)


def _cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import signal

    from pairgrpo_rllib.app import experiment

    try:
        spec = experiment.load(args.config, args.set)
        algorithm = seed = None
        if args.command == "train":
            algos = experiment.algorithms_of(spec)
            algorithm = args.algorithm or algos[0]
            if algorithm not in algos:
                raise experiment.ExperimentError(
                    f"--algorithm {algorithm!r} is not in the file's algorithm list {algos}"
                )
            seeds = spec.get("seeds", [0])
            seed = seeds[0] if args.seed is None else args.seed
            spec = dict(spec, name=f"{spec['name']}_{algorithm}_seed{seed}")
    except experiment.ExperimentError as exc:
        parser.error(str(exc))
    except Exception as exc:  # a check that itself failed: still one line, never a traceback
        parser.error(
            f"{args.config}: could not be checked ({exc.__class__.__name__}: {' '.join(str(exc).split())})"
        )
    from pairgrpo_rllib.app import runner
    from pairgrpo_rllib.app.report import write_report

    def report(exp_dir) -> None:
        if args.no_report:
            return
        try:
            print(f"[{args.command}] report: {write_report(exp_dir)}")
        except (OSError, ValueError) as exc:  # OSError: also a full disk
            print(f"[{args.command}] no report: {exc}", file=sys.stderr)

    from pairgrpo_rllib.app.prepare import PrepareError, StageFailed

    try:
        exp_dir = runner.run(spec, args.output, resume=args.resume, algorithm=algorithm, seed=seed)
    except (experiment.ExperimentError, PrepareError) as exc:
        parser.error(" ".join(str(exc).split()))
    except StageFailed as exc:  # its output, the lock and a new run's folder are gone
        print(f"[{args.command}] {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except runner.Interrupted as exc:
        name = signal.Signals(exc.signum).name
        # Tune had saved nothing yet: the command starts the run again
        again = _resume_command(args, resume=(exc.exp_dir / "tuner.pkl").exists())
        print(
            f"[{args.command}] interrupted by {name}: {exc}; results so far in {exc.exp_dir}; "
            f"continue with: {again}",
            file=sys.stderr,
        )
        if exc.total:
            report(exc.exp_dir)  # marked incomplete
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"[{args.command}] interrupted; continue with: {_resume_command(args)}", file=sys.stderr)
        return 128 + signal.SIGINT
    except runner.TrialsFailed as exc:
        report(exc.exp_dir)  # what did finish is still worth a table; the report marks the failures
        # last, so that it is the line the user sees: the cause and how to go on
        print(f"[{args.command}] {exc}; then continue with: {_resume_command(args)}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(f"[{args.command}] results in {exp_dir}")
    report(exp_dir)
    return 0


def _cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pathlib import Path

    from pairgrpo_rllib.app.report import write_report

    if not Path(args.results_dir).is_dir():
        parser.error(
            f"argument results_dir: {args.results_dir!r} is not a folder; pass an experiment folder under results/"
        )
    try:
        out = write_report(args.results_dir)
    except (FileNotFoundError, ValueError) as exc:  # no trials; a damaged trial folder (ReportInputError)
        parser.error(str(exc))
    except OSError as exc:
        parser.error(
            f"cannot write the report into {args.results_dir} ({exc.strerror}); check its permissions"
        )
    print(out.read_text())
    print(f"[report] wrote {out}")
    return 0


def _cmd_theory(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pairgrpo_rllib.core.theory.check import (
        ALGORITHMS,
        DEFAULT_BETAS,
        DEFAULT_ITERATIONS,
        DEFAULT_PREFS,
        TheoryInputError,
        build_cases,
        format_table,
        run_theory,
        summarize,
    )

    default_algos = ("grpo", "soft_pair_grpo") if args.backend == "rllib" else ALGORITHMS
    algorithms = tuple(dict.fromkeys(args.algorithm)) if args.algorithm else default_algos
    try:
        if args.backend == "rllib":
            sizes = args.group_size or (2,)
            cases = build_cases(algorithms, sizes, args.kl_estimator)
            bad = [
                c
                for c in cases
                if c.algorithm == "hard_pair_grpo" or (c.algorithm == "grpo" and c.group_size != 2)
            ]
            if bad:
                raise TheoryInputError(
                    f"--backend rllib: {bad[0].algorithm} with G={bad[0].group_size} is not offered; "
                    "use grpo with --group-size 2, or soft_pair_grpo with any finite G"
                )
        else:
            cases = build_cases(algorithms, args.group_size, args.kl_estimator)
    except TheoryInputError as exc:
        parser.error(str(exc))
    if args.plot is not None:
        try:
            os.makedirs(args.plot, exist_ok=True)
        except OSError as exc:
            parser.error(f"argument --plot: cannot create directory {args.plot!r}: {exc.strerror}")

    import torch

    torch.set_num_threads(1)  # 2 shared cores: a second thread only adds contention
    from pairgrpo_rllib.core.theory.bandit import SimulationSettings

    settings = SimulationSettings(
        seed=args.seed, hard_pair_iterations=tuple(args.iterations or DEFAULT_ITERATIONS)
    )
    started = time.perf_counter()

    def progress(case, rows):
        worst = max(r["abs_error"] for r in rows)
        print(
            f"[theory] {case.algorithm} G={case.group_size} kl={case.kl_estimator} {args.mode}: "
            f"{len(rows)} rows, max |error| {worst:.2e} ({time.perf_counter() - started:.1f}s)",
            file=sys.stderr,
            flush=True,
        )

    if args.backend == "rllib":
        from pairgrpo_rllib.app.theory_rllib import run_theory_rllib

        rows = run_theory_rllib(
            cases, tuple(args.beta or (0.1, 0.5, 2.0)), tuple(args.pref or (0.25, 0.75)), args.seed, progress
        )
    else:
        rows = run_theory(
            cases,
            tuple(args.beta or DEFAULT_BETAS),
            tuple(args.pref or DEFAULT_PREFS),
            args.mode,
            settings,
            progress,
        )
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows))
        print()
        for s in summarize(rows):
            print(
                f"{s['algorithm']:<15} G={s['group_size']!s:<4} kl={s['kl_estimator']:<5} {s['mode']:<7} "
                f"rows={s['rows']:<3} max|error|={s['max_abs_error']:.2e} tol={s['tolerance']} "
                f"{'PASS' if s['passed'] else 'FAIL'}"
            )
    if args.plot is not None:
        from pairgrpo_rllib.app.theory_plots import plot_rows

        for path in plot_rows(rows, args.plot):
            print(f"[theory] wrote {path}", file=sys.stderr)
    failed = [r for r in rows if not r["passed"]]
    if failed:
        print(f"[theory] {len(failed)} of {len(rows)} rows miss their tolerance", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return 0


def _cmd_cluster(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pairgrpo_rllib.app import cluster

    try:
        if args.action == "up":
            c = cluster.up(args.dir, workers=args.workers, cpus_per_node=args.cpus_per_node)
            print(f"[cluster] {1 + args.workers} nodes up: GCS {c.address}, dashboard/jobs {c.dashboard_url}")
            print(f'[cluster] for `ray job submit`, run:  eval "$(pairgrpo cluster env --dir {args.dir})"')
            print(f"[cluster] {cluster.LISTEN_NOTE}")
        elif args.action == "down":
            res = cluster.down(args.dir)
            left = res["leftovers_killed"]
            print(
                f"[cluster] stopped: {res['nodes_killed']} node(s) did not drain in {cluster.DRAIN_SECONDS:.0f} s and were "
                f"killed; {len(left)} leftover process(es) killed{(': ' + ', '.join(left)) if left else ''}"
            )
        elif args.action == "status":
            print(json.dumps(cluster.status(args.dir), indent=2))
        else:
            print(cluster.shell_exports(cluster.Cluster.load(args.dir)))
    except cluster.ClusterError as exc:
        parser.error(str(exc))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = parser.subcommand_parsers[args.command]  # the subcommand's own parser (its errors name it)
    if args.command == "theory":
        return _cmd_theory(args, sub)
    if args.command in ("train", "sweep"):
        return _cmd_run(args, sub)
    if args.command == "report":
        return _cmd_report(args, sub)
    if args.command == "cluster":
        return _cmd_cluster(args, sub)
    if args.command == "llm":
        return _cmd_llm(args, sub)
    parser.error(f"unknown command {args.command!r}")
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
