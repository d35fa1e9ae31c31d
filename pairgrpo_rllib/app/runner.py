"""Run an experiment with Ray Tune: one trial per (algorithm, seed, search point), side by side.

``AlgorithmTrial`` wraps any registered algorithm (the GRPO family and RLlib's PPO) so that one
Tuner holds them all. Tune gives progress output, TensorBoard event files and ``progress.csv`` per
trial, checkpoints every ``checkpoint_every`` iterations (the Algorithm's own ``save_to_path``,
written to a temporary folder and moved into place by Tune) and resume after a kill
(``Tuner.restore``). On a cluster the same code runs unchanged: ``ray.init()`` joins the cluster
named by ``RAY_ADDRESS``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ray import tune

from pairgrpo_rllib.app import experiment as X
from pairgrpo_rllib.app.report import flatten
from pairgrpo_rllib.core import names


class AlgorithmTrial(tune.Trainable):
    """A Tune trial running one algorithm; config ``{"algorithm", "seed", "spec"}``."""

    @staticmethod
    def algorithm_config(config):
        """The trial's AlgorithmConfig (a search tag Tune has not resolved yet counts as its first value)."""
        spec = dict(config["spec"], algorithm=config["algorithm"])
        return X.build_config(spec, config["algorithm"], seed=int(config["seed"]), resolve_search=True)

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
        return checkpoint_dir

    def load_checkpoint(self, checkpoint):
        self.algo.restore_from_path(checkpoint if isinstance(checkpoint, str) else checkpoint.path)

    def cleanup(self):
        self.algo.stop()

    @classmethod
    def default_resource_request(cls, config):
        algo_config = cls.algorithm_config(config)
        return algo_config.algo_class.default_resource_request(algo_config)


class ProgressLines(tune.Callback):
    """One line per trial result: algorithm, seed, iteration, steps, returns, wall time."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.t0 = time.time()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        cfg = trial.config
        flat = flatten(result)
        ev = next((flat[k] for k in names.RESULT_EVAL_RETURNS if k in flat), None)
        tr = flat.get(names.RESULT_TRAIN_RETURN)
        print(
            f"[{time.time() - self.t0:7.1f}s] {cfg['algorithm']:<15} seed={cfg['seed']} "
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


def param_space(spec: dict, algorithm: str | None = None, seed: int | None = None) -> dict:
    algos = [algorithm] if algorithm else X.algorithms_of(spec)
    seeds = [seed] if seed is not None else spec.get("seeds", [0])
    rest = {k: v for k, v in spec.items() if k not in ("algorithm", "seeds")}
    return {
        "algorithm": tune.grid_search(algos),
        "seed": tune.grid_search(seeds),
        "spec": X.to_tune(rest),
    }


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
    import ray

    from pairgrpo_rllib.algorithms.registry import register_with_tune

    storage = Path(output_dir).resolve()
    exp_dir = storage / spec["name"]
    if not ray.is_initialized():
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        ray.init(
            address=os.environ.get("RAY_ADDRESS"),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}},
        )
    register_with_tune()
    if resume:
        if not tune.Tuner.can_restore(str(exp_dir)):
            raise X.ExperimentError(f"--resume: nothing to resume in {exp_dir}; run without --resume first")
        tuner = tune.Tuner.restore(
            str(exp_dir), trainable=AlgorithmTrial, resume_unfinished=True, resume_errored=True
        )
    else:
        ce = int(spec.get("checkpoint_every", 10))
        tuner = tune.Tuner(
            AlgorithmTrial,
            param_space=param_space(spec, algorithm, seed),
            tune_config=tune.TuneConfig(max_concurrent_trials=spec.get("max_concurrent")),
            run_config=tune.RunConfig(
                name=spec["name"],
                storage_path=str(storage),
                stop=X.stop_criteria(spec),
                checkpoint_config=tune.CheckpointConfig(
                    checkpoint_frequency=ce, checkpoint_at_end=True, num_to_keep=2
                ),
                callbacks=[ProgressLines()],
                # A trial that raises (or loses its node) restarts from its last checkpoint.
                failure_config=tune.FailureConfig(max_failures=int(spec.get("max_failures", 0))),
                verbose=verbose,
            ),
        )
    results = tuner.fit()
    failed = [r for r in results if r.error is not None]
    if failed:
        first = str(failed[0].error).strip().splitlines()
        raise TrialsFailed(
            exp_dir,
            f"{len(failed)} of {len(results)} trial(s) failed after max_failures="
            f"{spec.get('max_failures', 0)} retries; first error: {first[-1] if first else '?'} "
            f"(full trace: {failed[0].path}/error.txt); rerun with --resume to retry them",
        )
    return exp_dir


class TrialsFailed(RuntimeError):
    """Some trials failed for good; the message names the first error and where its trace is."""

    def __init__(self, exp_dir: Path, message: str):
        super().__init__(message)
        self.exp_dir = exp_dir
