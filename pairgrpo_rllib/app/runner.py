"""Run an experiment with Ray Tune: one trial per (algorithm, seed, search point), side by side.

``AlgorithmTrial`` wraps any registered algorithm (the GRPO family and RLlib's PPO) so that one
Tuner holds them all. Tune gives progress output, TensorBoard event files and ``progress.csv`` per
trial, checkpoints every ``checkpoint_every`` iterations (the Algorithm's own ``save_to_path``
plus a manifest of its files, written to a temporary folder that Tune then copies into the trial
folder) and resume after a kill (``Tuner.restore``). Tune's saved state can name a checkpoint it had
already rotated out (it deletes old checkpoints before its next state snapshot), or one that a kill
or a full disk cut: the manifest is checked on every restore, and the trial then resumes from the
newest complete checkpoint in its folder (complete = every file of the manifest present at its size),
never from a half-copied one; a complete one that does not load gives way to the next older one. On a cluster the same code runs unchanged: ``ray.init()`` joins the cluster
named by ``RAY_ADDRESS``.

Before Ray starts, :func:`prepare` makes sure the run can be written and is the one the user means:
the output folder can be created and written, a new run never lands on an old one, a resumed run has
exactly the settings it started with (saved in ``pairgrpo_experiment.json``), and a lock file keeps a
second process from writing into the same experiment folder. An interrupted run (SIGINT, SIGTERM)
stops its trials at the next result, saves Tune's state and raises :class:`Interrupted`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from ray import tune

from pairgrpo_rllib.algorithms.registry import register_with_tune
from pairgrpo_rllib.app import experiment, llm_eval
from pairgrpo_rllib.app.files import (
    checkpoint_problem,
    complete_checkpoints,
    drop_cut_lines,
    write_json_atomically,
    write_manifest,
)
from pairgrpo_rllib.app.prepare import PrepareError, StageFailed
from pairgrpo_rllib.app.prepare import run as run_stages
from pairgrpo_rllib.app.report import expected_trials, flatten, reached_stop, trial_fields
from pairgrpo_rllib.core import names


class AlgorithmTrial(tune.Trainable):
    """A Tune trial running one algorithm; config ``{"algorithm", "seed", "spec"}``."""

    @staticmethod
    def algorithm_config(config):
        """The trial's AlgorithmConfig (a search tag Tune has not resolved yet counts as its first value)."""
        algorithm, seed, spec = trial_fields(config)
        return experiment.build_config(
            dict(spec, algorithm=algorithm), algorithm, seed=int(seed), resolve_search=True
        )

    def setup(self, config):
        import torch

        torch.set_num_threads(1)
        self.algo = self.algorithm_config(config).build_algo()

    def step(self):
        import ray

        result = self.algo.train()
        # Which Ray node ran the trial (on a cluster several nodes can share an IP and a hostname).
        result[names.RESULT_NODE_ID] = ray.get_runtime_context().get_node_id()
        return result

    def save_checkpoint(self, checkpoint_dir: str):
        self.algo.save_to_path(checkpoint_dir)
        write_manifest(Path(checkpoint_dir))
        return checkpoint_dir

    def load_checkpoint(self, checkpoint):
        self.algo.restore_from_path(checkpoint if isinstance(checkpoint, str) else checkpoint.path)

    def restore(self, checkpoint_path):
        """Tune's restore from a checkpoint that checks out, else from the next older one.

        The checkpoint Tune's state names is used when its manifest checks out (every file there at
        its size) and it loads; otherwise, said on stderr, the trial resumes from the newest complete
        checkpoint of its folder (the named one gone: rotated out after Tune's last state snapshot;
        cut: a kill or a full disk while it was written), and a complete one whose files do not load
        (damaged on disk at the same size) gives way to the next older one.
        """
        path = _checkpoint_fs_path(checkpoint_path)
        if path is None:
            return super().restore(checkpoint_path)  # remote storage: Tune's own
        named = Path(path)
        problem = checkpoint_problem(named)
        if problem is None:
            try:
                return super().restore(checkpoint_path)
            except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises while loading
                problem = f"it does not load ({_one_line(exc)})"
            candidates = [c for c in complete_checkpoints(named.parent) if c.name < named.name]
        else:
            candidates = [c for c in complete_checkpoints(named.parent) if c != named]
        for candidate in candidates:
            _say_resume(
                f"{named.name} cannot be used ({problem}); resuming from {candidate.name}, the newest "
                "complete checkpoint left"
            )
            try:
                super().restore(str(candidate))
            except Exception as exc:  # noqa: BLE001
                named, problem = candidate, f"it does not load ({_one_line(exc)})"
                continue
            # Tune took its counters from the named checkpoint's result: take them from the algorithm.
            self._iteration = self.algo.iteration
            return None
        raise ValueError(
            f"resume: the checkpoint Tune's state names ({path}) cannot be used ({problem}) and no "
            f"complete checkpoint is left in {named.parent}; start the run again without --resume"
        )

    def cleanup(self):
        self.algo.stop()

    @classmethod
    def default_resource_request(cls, config):
        algo_config = cls.algorithm_config(config)
        return algo_config.algo_class.default_resource_request(algo_config)


def _say_resume(text: str) -> None:
    print(f"[resume] {text}", file=sys.stderr, flush=True)


def _one_line(exc: BaseException, limit: int = 200) -> str:
    return f"{exc.__class__.__name__}: {' '.join(str(exc).split())}"[:limit]


def _checkpoint_fs_path(checkpoint) -> str | None:
    if isinstance(checkpoint, str):
        return checkpoint
    inner = getattr(checkpoint, "checkpoint", checkpoint)  # Tune's _TrainingResult or a Checkpoint
    fs = getattr(inner, "filesystem", None)
    if fs is None or getattr(fs, "type_name", "local") != "local":
        return None  # remote storage: leave it to Tune
    return getattr(inner, "path", None)


class ProgressLines(tune.Callback):
    """One line per trial result: algorithm, seed, iteration, steps, returns, wall time."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.t0 = time.time()
        self.last_eval: dict[str, float] = {}  # trial id -> its latest evaluation return

    def on_trial_result(self, iteration, trials, trial, result, **info):
        algorithm, seed, _ = trial_fields(trial.config)
        flat = flatten(result)
        ev = next((flat[k] for k in names.RESULT_EVAL_RETURNS if k in flat), None)
        # between evaluations (PPO reports NaN there) the latest one, or none yet ("-")
        if isinstance(ev, int | float) and math.isfinite(ev):
            self.last_eval[trial.trial_id] = ev
        else:
            ev = self.last_eval.get(trial.trial_id)
        tr = flat.get(names.RESULT_TRAIN_RETURN)
        print(
            f"[{time.time() - self.t0:7.1f}s] {algorithm:<15} seed={seed} "
            f"iter={result.get(names.RESULT_ITERATION)} steps={int(flat.get(names.RESULT_STEPS, 0))} "
            f"train_return={_fmt(tr)} eval_return={_fmt(ev)}",
            file=self.stream,
            flush=True,
        )


def _fmt(x) -> str:
    try:
        return f"{float(x):.1f}"
    except (TypeError, ValueError):
        return "-"


def trial_dirname(trial) -> str:
    """``GRPO_seed0_<id>``: a trial folder named by what it runs (Tune's default spells out the whole
    nested config)."""
    algorithm, seed, _ = trial_fields(trial.config)
    return f"{algorithm}_seed{seed}_{trial.trial_id}"


def param_space(spec: dict, algorithm: str | None = None, seed: int | None = None) -> dict:
    """Tune's param space: every (algorithm, search point) x seed.

    Each algorithm's trials carry the shared sections and only its own ``per_algorithm`` entry, so a
    grid under ``per_algorithm: {Hard-Pair-GRPO: ...}`` multiplies Hard-Pair's trials only (Tune
    resolves search spaces nested in a grid value within that value).
    """
    algos = [algorithm] if algorithm else experiment.algorithms_of(spec)
    seeds = [seed] if seed is not None else spec.get("seeds", [0])
    rest = {k: v for k, v in spec.items() if k not in ("algorithm", "seeds")}
    per = rest.pop("per_algorithm", None) or {}
    trials = [
        {
            "algorithm": a,
            "spec": experiment.to_tune({**rest, "per_algorithm": {a: per[a]} if a in per else {}}),
        }
        for a in algos
    ]
    return {"trial": tune.grid_search(trials), "seed": tune.grid_search(seeds)}


SPEC_FILE = "pairgrpo_experiment.json"
LOCK_FILE = ".pairgrpo.lock"
_LOCKS: dict[Path, int] = {}  # experiment folder -> its open lock file, held until the process exits


def prepare(
    spec: dict,
    output_dir: str | Path,
    *,
    resume: bool = False,
    algorithm: str | None = None,
    seed: int | None = None,
) -> Path:
    """Everything that must hold before Ray starts; returns the experiment folder, locked.

    Raises ``ExperimentError`` (one line: what, where, the fix) when the output cannot be written,
    a new run would land on an old one, there is nothing to resume, the resumed settings differ, or
    another process holds the folder.
    """
    out = Path(output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise experiment.ExperimentError(
            f"--output {str(output_dir)!r} is a file; pass a folder (created if missing)"
        )
    storage = out.resolve()
    exp_dir = storage / spec["name"]
    run = {"spec": spec, "algorithm": algorithm, "seed": seed}
    has_run = (exp_dir / "tuner.pkl").exists() or any(exp_dir.glob("experiment_state*.json"))
    if resume:
        if not has_run:
            raise experiment.ExperimentError(
                f"--resume: nothing to resume in {exp_dir}; run without --resume first (or check --output and name)"
            )
        _check_same_settings(exp_dir, run)
    elif has_run:
        raise experiment.ExperimentError(
            f"{exp_dir} already holds a run; continue it with --resume, or start a new one under another "
            "name (--set name=...) or --output"
        )
    try:
        exp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=exp_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise experiment.ExperimentError(
            f"--output {str(output_dir)!r}: cannot write {exp_dir} ({exc.strerror or exc}); choose a writable folder"
        ) from None
    lock(exp_dir)
    if not resume:
        write_json_atomically(exp_dir / SPEC_FILE, run)
    return exp_dir


def lock(exp_dir: Path, fix: str = "wait for it to end, or use another --output or name") -> None:
    """Hold ``exp_dir``'s lock until this process ends (or :func:`unlock`); ``ExperimentError``
    (naming the holder's pid and ``fix``) while another process holds it (a sweep, a resumed run,
    ``pairgrpo llm eval``)."""
    fd = os.open(exp_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise experiment.ExperimentError(
            f"another pairgrpo process (pid {holder}) is writing to {exp_dir}; {fix}"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _LOCKS[exp_dir] = fd  # the lock ends with the process, however it ends


def unlock(exp_dir: Path) -> None:
    """Release a lock of :func:`lock` before the process ends."""
    fd = _LOCKS.pop(exp_dir, None)
    if fd is not None:
        os.close(fd)


def _flat(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not experiment.search_tag(v):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _check_same_settings(exp_dir: Path, run: dict) -> None:
    """``--resume`` continues the run that was started: changed settings are refused, not ignored."""
    saved_path = exp_dir / SPEC_FILE
    if not saved_path.is_file():
        print(
            f"[resume] {saved_path.name} is missing (a run started by an older version): settings not compared"
        )
        return
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, ValueError):
        raise experiment.ExperimentError(
            f"--resume: {saved_path} is unreadable; restore it, or start a new run"
        ) from None
    now, before = _flat(json.loads(json.dumps(run))), _flat(saved)
    changed = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
    if changed:
        shown = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:6])
        more = f" (and {len(changed) - 6} more)" if len(changed) > 6 else ""
        raise experiment.ExperimentError(
            f"--resume: the settings differ from the run in {exp_dir} ({shown}{more}); a resumed run keeps "
            "its settings: resume without the changes, or start a new run under another name or --output"
        )


def _check_checkpoints(exp_dir: Path) -> None:
    """Say which trial will not resume from its newest checkpoint and why (the trials decide in their
    own processes, ``AlgorithmTrial.restore``, whose output does not reach this terminal)."""
    for trial_dir in sorted({c.parent for c in exp_dir.glob("*/checkpoint_*")}):
        complete = complete_checkpoints(trial_dir)
        for c in sorted(trial_dir.glob("checkpoint_*"), reverse=True):
            if complete and c.name <= complete[0].name:
                break
            if (problem := checkpoint_problem(c)) is not None:
                then = f"resumes from {complete[0].name}" if complete else "has no complete checkpoint left"
                _say_resume(f"{trial_dir.name}/{c.name} cannot be used ({problem}); the trial {then}")


class Interrupted(RuntimeError):
    """The run was stopped by a signal before every trial finished; Tune's state is saved.
    ``unfinished``/``total`` are None when the signal came before Tune ran any trial."""

    def __init__(self, exp_dir: Path, signum: int, unfinished: int | None, total: int | None):
        super().__init__(
            f"{unfinished} of {total} trial(s) did not finish" if total else "stopped before the trials ran"
        )
        self.exp_dir, self.signum, self.unfinished, self.total = exp_dir, signum, unfinished, total


def run(
    spec: dict,
    output_dir: str | Path = "results",
    *,
    resume: bool = False,
    algorithm: str | None = None,
    seed: int | None = None,
    verbose: int = 0,
):
    """Run (or resume) the experiment; returns the experiment folder."""
    target = Path(output_dir).expanduser().resolve() / spec["name"]
    made = [p for p in (target, *target.parents) if not p.exists()]  # the folders this run creates
    exp_dir = prepare(spec, output_dir, resume=resume, algorithm=algorithm, seed=seed)
    if resume:
        _check_checkpoints(exp_dir)
        # a line cut by a full disk or a kill would swallow the resumed trial's first line
        for f in drop_cut_lines(exp_dir):
            _say_resume(f"{f.relative_to(exp_dir)}: its cut last line dropped")
    guard = _SignalGuard()
    try:
        with guard:
            if spec.get("prepare"):
                try:
                    run_stages(spec["prepare"])  # what the trials read, made once (skipped where it exists)
                except (PrepareError, StageFailed):
                    _discard(exp_dir, made, resume)
                    raise
            results = _run_tune(
                spec, exp_dir, guard, resume=resume, algorithm=algorithm, seed=seed, verbose=verbose
            )
    except _Stopped as stop:  # a signal before Tune ran the trials: nothing half-done to mark
        raise Interrupted(exp_dir, stop.signum, None, None) from None
    # SIGINT during fit() is handled by Tune's own handler: an error-free trial that did not reach
    # its stop criteria after fit() returned was interrupted.
    unfinished = [
        r for r in results if r.error is None and not reached_stop(flatten(r.metrics or {}), spec["stop"])
    ]
    if unfinished:  # trials Tune had not started yet are not in its results, and did not finish either
        total = max(len(results), expected_trials(exp_dir) or 0)
        raise Interrupted(
            exp_dir, guard.signum or signal.SIGINT, len(unfinished) + total - len(results), total
        )
    failed = [r for r in results if r.error is not None]
    if failed:
        raise TrialsFailed(exp_dir, _failure_message(exp_dir, failed, len(results), spec))
    if spec.get("evaluate") is not None:  # the LLM evaluation of every trial's final policy
        print(f"[eval] evaluating the trials of {exp_dir}", flush=True)
        llm_eval.evaluate_experiment(exp_dir, llm_eval.settings(spec["evaluate"], spec))
    return exp_dir


def _discard(exp_dir: Path, made: list[Path], resume: bool) -> None:
    """A run that failed before Tune started: its lock released, and what it wrote removed (the
    settings file of a new run and the folders it created, where nothing else was put in them)."""
    unlock(exp_dir)
    if resume:
        return
    for name in (SPEC_FILE, LOCK_FILE):
        (exp_dir / name).unlink(missing_ok=True)
    for folder in made:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            break  # not empty: someone else's files


def _run_tune(spec: dict, exp_dir: Path, guard, *, resume: bool, algorithm, seed, verbose: int):
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        try:
            ray.init(
                address=os.environ.get("RAY_ADDRESS"),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}},
            )
        except SystemExit as exc:  # ray.init's own SIGTERM handler exits with the signal number
            if exc.code == signal.SIGTERM:
                raise _Stopped(signal.SIGTERM) from None
            raise
        guard.install()  # ray.init installs SIGTERM handlers of its own (Python and C level)
    register_with_tune()
    _shorten_tune_failure_logs()
    if resume:
        try:
            tuner = tune.Tuner.restore(
                str(exp_dir), trainable=AlgorithmTrial, resume_unfinished=True, resume_errored=True
            )
        except (ImportError, AttributeError, EOFError, ValueError) as exc:  # e.g. an older version's pickles
            raise experiment.ExperimentError(
                f"--resume: {exp_dir} cannot be restored ({exc.__class__.__name__}: {' '.join(str(exc).split())[:200]}); "
                "it was probably written by another version of pairgrpo-rllib: start a new run under another name"
            ) from None
    else:
        ce = int(spec.get("checkpoint_every", 10))
        tuner = tune.Tuner(
            AlgorithmTrial,
            param_space=param_space(spec, algorithm, seed),
            tune_config=tune.TuneConfig(
                max_concurrent_trials=spec.get("max_concurrent"), trial_dirname_creator=trial_dirname
            ),
            run_config=tune.RunConfig(
                name=spec["name"],
                storage_path=str(exp_dir.parent),
                stop=experiment.stop_criteria(spec),
                checkpoint_config=tune.CheckpointConfig(
                    checkpoint_frequency=ce, checkpoint_at_end=True, num_to_keep=2
                ),
                callbacks=[ProgressLines()],
                # A trial that raises (or loses its node) restarts from its last checkpoint.
                failure_config=tune.FailureConfig(max_failures=int(spec.get("max_failures", 0))),
                verbose=verbose,
            ),
        )
    guard.in_fit = True
    tune_log = logging.getLogger("ray.tune.tune")
    tune_log.addFilter(_own_hints)
    try:
        return _fit(tuner, exp_dir)
    finally:
        guard.in_fit = False
        tune_log.removeFilter(_own_hints)


def _own_hints(record: logging.LogRecord) -> bool:
    """Tune's advice after an interruption (``Tuner.restore(...)``, the list of unfinished trials)
    is Python for a user of the library; the command prints its own resume command instead."""
    text = str(record.msg)
    return not text.startswith(("Experiment has been interrupted", "Trials did not complete"))


class _OneLineTrialFailures(logging.Filter):
    """Tune logs each trial failure with its whole traceback (60 lines for a memory kill); it is saved
    in the trial's error.txt, so the terminal gets its last line and where the rest is."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and text.startswith("Trial task failed for trial"):
            exc = record.exc_info[1]
            last = (str(exc).strip().splitlines() or [exc.__class__.__name__])[-1]
            record.msg, record.args, record.exc_info, record.exc_text = (
                f"{text}: {last[:300]} (the whole trace: error.txt in the trial's folder)",
                (),
                None,
                None,
            )
        return not text.startswith("Trials did not complete")  # the command's own last line says it


def _shorten_tune_failure_logs() -> None:
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _OneLineTrialFailures) for f in log.filters):
            log.addFilter(_OneLineTrialFailures())


def _fit(tuner, exp_dir: Path) -> list:
    """``tuner.fit()``, each trial's outcome as an ``_Outcome``."""
    try:
        return [_Outcome.of_result(r) for r in tuner.fit()]
    except _Stopped:
        raise
    except Exception as exc:
        # Tune builds its results by unpickling each failed trial's error.pkl; a full disk leaves it
        # empty (EOFError). The trials have run: read them from Tune's analysis instead.
        analysis = getattr(getattr(tuner, "_local_tuner", None), "_experiment_analysis", None)
        if analysis is None:
            cause = _cause(_one_line(exc, limit=100_000), exp_dir)
            if cause:  # the driver itself out of disk or memory
                raise TrialsFailed(exp_dir, f"the run failed: {cause}") from exc
            raise
        return [_Outcome.of_trial(t) for t in analysis.trials]


class _Outcome:
    """What the runner needs of a finished trial (Tune's ``Result`` or, where Tune could not build
    one, its ``Trial``): the last metrics, the error text (None: no error) and the trial folder."""

    def __init__(self, metrics: dict | None, error: str | None, path: str | None):
        self.metrics, self.error, self.path = metrics, error, path

    @classmethod
    def of_result(cls, result) -> _Outcome:
        error = None if result.error is None else str(result.error)
        return cls(result.metrics, error, result.path)

    @classmethod
    def of_trial(cls, trial) -> _Outcome:
        if trial.status != "ERROR":
            return cls(trial.last_result, None, trial.path)
        text = ""
        try:  # the text trace; may be empty or cut
            text = Path(trial.path, "error.txt").read_text(errors="replace")
        except OSError:
            pass
        return cls(trial.last_result, text or "(error.txt empty or unreadable)", trial.path)


_ENOSPC = re.compile(rf"\[Errno {errno.ENOSPC}\]|No space left on device|ENOSPC")
# ray.exceptions.OutOfMemoryError (a task), or an actor's death with the memory monitor's reason
_OOM = re.compile(r"OutOfMemoryError|running low on memory|memory pressure \(OOM\)|Memory on the node \(")
# Ray's memory monitor: "Memory on the node (IP: ..., ID: ...) was 7.45GB used / 7.77GB limit (0.96)"
_OOM_NUMBERS = re.compile(r"([0-9.]+)\s*GB used / ([0-9.]+)\s*GB limit|was ([0-9.]+)GB / ([0-9.]+)GB")
_GB = 1024**3


def _cause(text: str, exp_dir: Path) -> str | None:
    """A known cause of a failure named with its numbers (disk full, out of memory), else None."""
    if _ENOSPC.search(text):
        where = exp_dir if exp_dir.exists() else exp_dir.parent
        try:
            usage = shutil.disk_usage(where)
            space = f"{usage.free / _GB:.2f} GB free of {usage.total / _GB:.1f} GB on the disk of {where}"
        except OSError:
            space = f"free space of {where} unknown"
        return f"no space left on device (OSError errno ENOSPC; now {space}); free some space"
    if _OOM.search(text):
        found = _OOM_NUMBERS.search(text)
        if found:
            used, limit = (float(x) for x in found.groups() if x is not None)
            numbers = f"{used:.2f} GB used of a {limit:.2f} GB limit, as Ray reported"
        else:
            import psutil

            vm = psutil.virtual_memory()
            numbers = f"now {(vm.total - vm.available) / _GB:.2f} GB used of {vm.total / _GB:.2f} GB on this machine"
        return (
            f"Ray's memory monitor killed trial workers, the node running low on memory ({numbers}); "
            "close other programs or run fewer trials at a time (max_concurrent)"
        )
    return None


def _failure_message(exp_dir: Path, failed: list, total: int, spec: dict) -> str:
    """One line: how many trials failed, the cause with its numbers where it is a known one, else
    the first error's last line and where its trace is (never an error of its own: the error files
    may be empty or cut when the disk is full)."""
    head = (
        f"{len(failed)} of {total} trial(s) failed after max_failures={spec.get('max_failures', 0)} retries"
    )
    for r in failed:
        cause = _cause(r.error or "", exp_dir)
        if cause:
            return f"{head}: {cause}"
    lines = (failed[0].error or "").strip().splitlines()
    return f"{head}; first error: {lines[-1] if lines else '?'} (full trace: {failed[0].path}/error.txt)"


class _Stopped(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _SignalGuard:
    """SIGINT and SIGTERM end a run cleanly at any point. Before Tune runs the trials, a signal stops
    the run at once (``_Stopped``); while it runs them, SIGTERM becomes Tune's graceful SIGINT stop
    (trials stop at their next result, the experiment state is saved). Not on a non-main thread
    (signal handlers cannot be installed there): then the defaults apply."""

    def __init__(self):
        self.signum: int | None = None
        self.in_fit = False
        self._previous = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, frame):
        self.signum = self.signum or signum
        if self.in_fit and signum == signal.SIGTERM:
            os.kill(os.getpid(), signal.SIGINT)  # Tune's own SIGINT handler stops gracefully
            return
        raise _Stopped(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
            self.install()
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous[0])
            signal.signal(signal.SIGINT, self._previous[1])
        return False


class TrialsFailed(RuntimeError):
    """Some trials failed for good; the message (one line) names the cause with its numbers where it
    is a known one (disk full, out of memory), else the first error and where its trace is. The
    command adds how to resume: Tune's state is saved, ``--resume`` retries the failed trials."""

    def __init__(self, exp_dir: Path, message: str):
        super().__init__(message)
        self.exp_dir = exp_dir
