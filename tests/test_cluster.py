"""A real two-node Ray cluster on loopback (``pairgrpo cluster``): a sweep submitted with `ray job submit`.

The cluster is two ``ray start --block`` process groups (head + one worker, 1 CPU each) with their own
ports, temp dir and token; the test tears down exactly those processes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from pairgrpo_rllib.app import cluster as K
from pairgrpo_rllib.app.report import reported_iterations, trial_fields

BIN = Path(sys.executable).parent
SPEC = yaml.safe_load((Path(__file__).parent / "data" / "small_experiment.yaml").read_text())
SPEC.update(
    name="cluster_smoke", algorithm=["GRPO", "Soft-Pair-GRPO"], stop={"iterations": 3}, max_concurrent=2
)
SPEC["rl_module"]["model_config"]["normalize_obs"] = True
SPEC["training"]["credit"] = "step"


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _job(cluster: K.Cluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ray"), "job", args[0], "--address", cluster.dashboard_url, *args[1:]],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _wait(predicate, timeout: float) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.5)


def _node_ids(exp_dir: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for result in exp_dir.rglob("result.json"):
        algo, _, _ = trial_fields(json.loads((result.parent / "params.json").read_text()))
        for line in result.read_text().splitlines():
            if line.strip():
                out.setdefault(algo, set()).add(json.loads(line)["node_id"])
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_node_cluster_runs_submitted_sweeps_on_both_nodes_and_resumes_a_resubmitted_job(tmp_path):
    config = tmp_path / "cluster_smoke.yaml"
    config.write_text(yaml.safe_dump(SPEC))
    out = tmp_path / "results"
    t0 = time.time()
    cluster = K.up(tmp_path / "cluster", workers=1, cpus_per_node=1)
    startup_s = time.time() - t0
    try:
        assert K.status(tmp_path / "cluster")["alive"] == [True, True]
        assert stat.S_IMODE(os.stat(cluster.token_path).st_mode) == 0o600
        # per-cluster ports, never Ray's fixed metrics defaults (two clusters would collide)
        assert {cluster.autoscaler_metrics_port, cluster.dashboard_metrics_port}.isdisjoint({44217, 44227})
        # token authentication is on: the job server refuses a request without the token
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{cluster.dashboard_url}/api/jobs/", timeout=30)
        assert denied.value.code in (401, 403)

        res = _job(
            cluster,
            "submit",
            "--submission-id",
            "cluster-smoke",
            "--",
            str(BIN / "pairgrpo"),  # absolute: the entrypoint inherits the `ray start` shell, not ours
            "sweep",
            str(config),
            "--output",
            str(out),
            timeout=600,
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        status = _job(cluster, "status", "cluster-smoke")
        assert "succeeded" in (status.stdout + status.stderr).lower()

        exp = out / "cluster_smoke"
        nodes = _node_ids(exp)
        assert set(nodes) == {"GRPO", "Soft-Pair-GRPO"}
        # one CPU per node and two trials at a time: the trials ran on both nodes
        assert len(set().union(*nodes.values())) == 2, nodes
        assert (exp / "report.md").is_file() and "| Soft-Pair-GRPO |" in (exp / "report.md").read_text()

        # Tune's resume across job resubmission: stop the job (its driver dies) after a checkpoint,
        # resubmit with --resume, and the trial goes on from that checkpoint.
        long = dict(SPEC, name="resubmit", algorithm="GRPO", stop={"iterations": 40}, checkpoint_every=5)
        long_cfg = tmp_path / "resubmit.yaml"
        long_cfg.write_text(yaml.safe_dump(long))
        cmd = [str(BIN / "pairgrpo"), "sweep", str(long_cfg), "--output", str(out), "--no-report"]
        assert _job(cluster, "submit", "--no-wait", "--submission-id", "first", "--", *cmd).returncode == 0
        exp = out / "resubmit"
        _wait(lambda: max(reported_iterations(exp), default=0) >= 7, 300)
        assert _job(cluster, "stop", "first").returncode == 0
        _wait(lambda: "stopped" in _job(cluster, "status", "first").stdout.lower(), 120)
        before = reported_iterations(exp)
        assert max(before) < 40, "the job finished before it was stopped"
        res = _job(cluster, "submit", "--submission-id", "second", "--", *cmd, "--resume", timeout=600)
        assert res.returncode == 0, res.stdout[-3000:]
        after = reported_iterations(exp)
        resumed = after[len(before) :]
        assert resumed and max(after) == 40
        assert 5 < resumed[0] <= max(before) + 1, (before, resumed)  # from a checkpoint, not from scratch
        assert max(before) - resumed[0] + 1 <= 5  # at most one checkpoint interval redone
    finally:
        temp_dir = cluster.temp_dir
        t_down = time.time()
        stopped = K.down(tmp_path / "cluster")
        down_s = time.time() - t_down
    # down waits for Ray's drain: every node left on SIGTERM, none needed SIGKILL
    assert stopped["nodes_killed"] == 0, f"{stopped} after {down_s:.0f} s"
    print(f"cluster down {down_s:.1f} s, leftovers killed: {stopped['leftovers_killed']}")
    survivors = [  # live processes only: a zombie is dead, waiting for its parent to reap it
        pid
        for pid in K._all_pids()
        if temp_dir.encode() in _read(f"/proc/{pid}/cmdline") or _pgid(pid) in cluster.node_pgids
    ]
    shown = [_read(f"/proc/{pid}/cmdline").replace(b"\0", b" ")[:200] for pid in survivors]
    assert not survivors and not K._owned_pids(cluster), f"processes of the cluster survived `down`: {shown}"
    assert not Path(temp_dir).exists() and not Path(cluster.token_path).exists()
    print(f"cluster start-up {startup_s:.1f} s")


def test_cluster_cli_rejects_bad_input_before_starting_anything(tmp_path):
    res = subprocess.run(
        [str(BIN / "pairgrpo"), "cluster", "up", "--workers", "-1", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "--workers" in res.stderr and "-1" in res.stderr
    res = subprocess.run(
        [str(BIN / "pairgrpo"), "cluster", "down", "--dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "no cluster state" in res.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_removed_worker_node_does_not_hang_the_sweep(tmp_path):
    spec = dict(SPEC, name="node_loss", stop={"iterations": 60}, checkpoint_every=5, max_failures=2)
    config = tmp_path / "node_loss.yaml"
    config.write_text(yaml.safe_dump(spec))
    out = tmp_path / "results"
    cluster = K.up(tmp_path / "cluster", workers=1, cpus_per_node=1)
    try:
        res = _job(
            cluster, "submit", "--no-wait", "--submission-id", "node-loss", "--",
            str(BIN / "pairgrpo"), "sweep", str(config), "--output", str(out),
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        exp = out / "node_loss"
        deadline = time.time() + 300
        while time.time() < deadline:  # wait until a trial runs on each node
            try:
                nodes = _node_ids(exp)
            except (json.JSONDecodeError, FileNotFoundError, KeyError):
                nodes = {}
            if len(set().union(*nodes.values()) if nodes else ()) == 2:
                break
            time.sleep(1.0)
        else:
            pytest.fail("the trials never ran on both nodes")
        K.kill_node(cluster, 1)  # the worker node: its raylet, workers and the trial on it
        t_kill = time.time()
        state = ""
        while time.time() < t_kill + 400:
            state = _job(cluster, "status", "node-loss").stdout.lower()
            if any(f"' {s}" in state for s in ("succeeded", "failed", "stopped")):
                break
            time.sleep(2.0)
        assert "' succeeded" in state, state + _job(cluster, "logs", "node-loss").stdout[-3000:]
        # the trial that lost its node was retried on the head and finished all 60 iterations
        report = (exp / "report.md").read_text()
        assert "failed and were retried" in report, report
        for result in exp.rglob("result.json"):
            last = json.loads(result.read_text().strip().splitlines()[-1])
            assert last["training_iteration"] == 60
        print(f"node loss -> job SUCCEEDED in {time.time() - t_kill:.1f} s")
    finally:
        K.down(tmp_path / "cluster")
