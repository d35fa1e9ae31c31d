"""Cluster figures on a real two-node Ray cluster on loopback (``pairgrpo cluster``), run by hand.

Measures, for a sweep submitted with ``ray job submit``:
* cluster start-up (head + one worker alive),
* job start-up (submission -> the entrypoint runs) and time to the first training iteration,
* resume loss: the job is stopped (``ray job stop``, the driver dies) after a checkpoint, resubmitted
  with ``--resume``, and the iterations redone are counted (at most ``checkpoint_every`` expected).

Usage: ``.venv/bin/python benchmarks/cluster.py [--out docs/data/cluster.json]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pairgrpo_rllib.app import cluster as K
from pairgrpo_rllib.app.report import reported_iterations

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def job(cluster: K.Cluster, *args: str, timeout: float = 120) -> str:
    res = subprocess.run(
        [str(BIN / "ray"), "job", args[0], "--address", cluster.dashboard_url, *args[1:]],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return (res.stdout + res.stderr).lower()


def wait_for(predicate, timeout: float, poll: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"condition not met within {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pairgrpo-cluster-bench-"))
    spec = yaml.safe_load((REPO / "tune_configs" / "smoke.yaml").read_text())
    spec.update(name="cluster_bench", algorithm="GRPO", stop={"iterations": 40}, checkpoint_every=5)
    spec.pop("per_algorithm", None)  # PPO-only overrides
    spec["training"]["eval_interval"] = 0
    config = work / "bench.yaml"
    config.write_text(yaml.safe_dump(spec))
    out = work / "results"
    exp = out / "cluster_bench"
    cmd = [str(BIN / "pairgrpo"), "sweep", str(config), "--output", str(out), "--no-report"]
    figures: dict[str, float] = {}

    t0 = time.time()
    cluster = K.up(work / "cluster", workers=1, cpus_per_node=1)
    figures["cluster_up_s"] = time.time() - t0
    try:
        t0 = time.time()
        job(cluster, "submit", "--no-wait", "--submission-id", "bench-1", "--", *cmd)
        wait_for(lambda: "running" in job(cluster, "status", "bench-1"), 120)
        figures["job_submit_to_running_s"] = time.time() - t0
        wait_for(lambda: reported_iterations(exp), 300)
        figures["job_submit_to_first_iteration_s"] = time.time() - t0
        # a checkpoint after iteration 5, then kill the driver mid-interval
        wait_for(lambda: max(reported_iterations(exp), default=0) >= 7, 300)
        job(cluster, "stop", "bench-1")
        wait_for(lambda: "stopped" in job(cluster, "status", "bench-1"), 120)
        reached = max(reported_iterations(exp))
        before = len(reported_iterations(exp))
        t0 = time.time()
        job(cluster, "submit", "--no-wait", "--submission-id", "bench-2", "--", *cmd, "--resume")
        wait_for(lambda: len(reported_iterations(exp)) > before, 300)
        figures["resubmit_to_first_iteration_s"] = time.time() - t0
        resumed_at = reported_iterations(exp)[before]
        figures["iteration_reached_before_stop"] = reached
        figures["first_iteration_after_resume"] = resumed_at
        figures["iterations_redone"] = reached - resumed_at + 1
        wait_for(lambda: "succeeded" in job(cluster, "status", "bench-2"), 600, poll=1.0)
        figures["final_iteration"] = max(reported_iterations(exp))
    finally:
        K.down(work / "cluster")
    figures["checkpoint_every"] = spec["checkpoint_every"]
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
