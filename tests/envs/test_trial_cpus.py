"""A trial whose placement group needs more CPUs than there are is refused before Ray starts
(envs/resources.py ``check_trial_cpus``): Tune would wait for it forever."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pairgrpo_rllib.app import experiment as X
from pairgrpo_rllib.envs.resources import check_trial_cpus

SMALL = Path(__file__).resolve().parents[1] / "data" / "small_experiment.yaml"


def _spec(runners: int) -> dict:
    spec = yaml.safe_load(SMALL.read_text())
    spec.update(algorithm="GRPO")
    spec.setdefault("env_runners", {})["num_env_runners"] = runners
    return spec


def test_the_sum_of_the_bundles_is_compared_with_the_cpus_there_are(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    n = os.cpu_count()
    check_trial_cpus("f", 1, [{"CPU": 1}] * n)  # fits exactly
    with pytest.raises(ValueError, match=rf"f=1 is invalid: one trial asks for {n + 1} CPUs .* has {n}"):
        check_trial_cpus("f", 1, [{"CPU": 1}] * (n + 1))
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a cluster's CPUs are known once joined
    check_trial_cpus("f", 1, [{"CPU": 1}] * (n + 1))


def test_a_sweep_asking_for_more_cpus_than_the_machine_has_is_refused_before_ray(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    runners = os.cpu_count() + 1  # with the driver's CPU: two more than there are
    with pytest.raises(X.ExperimentError, match=r"env_runners\.num_env_runners=\d+ is invalid: one trial asks for"):
        X.check(_spec(runners))
    X.check(_spec(0))  # the small experiment as shipped fits
    config = tmp_path / "many.yaml"
    config.write_text(yaml.safe_dump(_spec(runners)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([shutil.which("pairgrpo"), "sweep", str(config), "--output", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=300, env=env, cwd="/tmp")  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "num_env_runners" in lines[0] and "CPUs" in lines[0], out.stderr
    assert "Ray instance" not in out.stderr + out.stdout and not (tmp_path / "runs").exists()
