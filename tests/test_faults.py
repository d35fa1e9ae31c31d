"""Fault tolerance on a real local Ray instance: a killed env runner is replaced and the run completes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import yaml

from pairgrpo_rllib.algorithms.registry import algorithm_class
from pairgrpo_rllib.core import names
from pairgrpo_rllib.envs.group_runner import GroupEnvRunner


@pytest.fixture
def ray_3cpu():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_a_killed_env_runner_is_restarted_and_every_batch_stays_whole(ray_3cpu):
    cfg = (
        algorithm_class("GRPO")
        .get_default_config()
        .environment("HalfCheetah-v4")
        .env_runners(env_runner_cls=GroupEnvRunner, num_env_runners=2)
        .fault_tolerance(restart_failed_env_runners=True)
        .training(
            group_size=4,
            group_mode="branch",
            segment_length=20,
            train_batch_size_per_learner=320,  # 4 groups: 2 per runner
            num_epochs=1,
            eval_interval=0,
            grad_cosine_every=0,
        )
        .debugging(seed=0)
    )
    algo = cfg.build_algo()
    try:
        runners = algo.env_runner_group
        assert runners.num_healthy_remote_workers() == 2
        algo.train()
        pids = dict(
            zip(
                runners.healthy_worker_ids(),
                runners.foreach_env_runner(lambda r: os.getpid(), local_env_runner=False),
            )
        )
        os.kill(pids[1], signal.SIGKILL)  # the runner's process dies, as in a crash or OOM kill
        steps = [algo.train()["env_runners"]["num_env_steps_sampled_lifetime"] for _ in range(3)]
        # every iteration still trained on a whole batch (the dead runner's share was resampled)
        assert steps == [640, 960, 1280], steps
        # Ray restarts the actor process (a few seconds); RLlib's probe before an iteration re-syncs it
        deadline = time.time() + 120
        while runners.num_healthy_remote_workers() < 2 and time.time() < deadline:
            algo.train()
            time.sleep(0.5)
        assert runners.num_healthy_remote_workers() == 2
        new_pids = dict(
            zip(
                runners.healthy_worker_ids(),
                runners.foreach_env_runner(lambda r: os.getpid(), local_env_runner=False),
            )
        )
        assert new_pids[1] != pids[1] and new_pids[2] == pids[2]
        # the restarted runner samples with the current weights
        batch = algo._sample()
        assert batch[names.MASK].shape[0] == 4 and np.isfinite(batch[names.ACTION_LOGP]).all()
    finally:
        algo.stop()


@pytest.mark.slow
def test_a_trial_that_raises_is_retried_and_the_report_marks_it(tmp_path):
    marker = tmp_path / "crashed"
    spec = yaml.safe_load((Path(__file__).parent / "data" / "small_experiment.yaml").read_text())
    spec.update(name="crash_once", algorithm="GRPO", stop={"iterations": 4}, max_failures=1)
    spec["environment"] = {
        "env": "pairgrpo/CrashOnce-v0",
        "env_config": {"inner": "HalfCheetah-v4", "crash_after_steps": 60, "marker": str(marker)},
    }
    spec["training"]["eval_interval"] = 0
    cfg = tmp_path / "crash.yaml"
    cfg.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    res = subprocess.run(
        [shutil.which("pairgrpo"), "sweep", str(cfg), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd="/tmp",
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert marker.is_file(), "the injected failure never happened"
    report = (out / "crash_once" / "report.md").read_text()
    assert "failed and were retried" in report
    row = next(line for line in report.splitlines() if line.startswith("| GRPO | 0 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "1" and cells[3] == "640", row  # one failure, all 4 x 160 steps reached

    # Without retries the same failure fails the sweep with a clear message, exit code non-zero.
    marker.unlink()
    res = subprocess.run(
        [
            shutil.which("pairgrpo"),
            "sweep",
            str(cfg),
            "--output",
            str(tmp_path / "out2"),
            "--set",
            "max_failures=0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd="/tmp",
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert res.returncode != 0 and "CrashOnce: injected failure" in res.stdout + res.stderr
