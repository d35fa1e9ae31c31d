"""Experiment files, `pairgrpo train/sweep/report`, Tune trials, checkpoint -> kill -> resume."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pairgrpo_rllib.app import experiment as X

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "tests" / "data" / "small_experiment.yaml").read_text())


def _write(tmp_path, spec, name="exp.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(spec) if isinstance(spec, dict) else spec)
    return p


def _cli(*args, timeout=300, cwd=None):
    exe = shutil.which("pairgrpo") or sys.executable
    cmd = [exe, *args] if exe.endswith("pairgrpo") else [exe, "-m", "pairgrpo_rllib", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_DEDUP_LOGS="0")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or "/tmp", env=env)


def _start(*args: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    """`pairgrpo ARGS` in its own session (so a test can signal the whole process group)."""
    return subprocess.Popen(
        [shutil.which("pairgrpo"), *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd="/tmp",
        start_new_session=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )


def _with(**changes):
    spec = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        X.apply_override(
            spec, f"{dotted.replace('__', '.')}={yaml.safe_dump(value, default_flow_style=True).strip()}"
        )
    return spec


# ---- checks before Ray starts ------------------------------------------------------------------


def _load_shipped(f: Path, monkeypatch) -> dict:
    """A shipped file loaded as where it runs: the GPU recipes as on their cluster (``ray job submit``
    sets RAY_ADDRESS, and the GPUs are the cluster's to count), the rest on this machine."""
    if "gpu" in f.name:
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return X.load(f)


def test_shipped_configs_load_and_validate(monkeypatch):
    files = sorted((REPO / "tune_configs").glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        spec = _load_shipped(f, monkeypatch)
        assert X.algorithms_of(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_with(algorithm="DAPO"), "algorithm='DAPO' is unknown"),
        (_with(algorithm=["GRPO", "Hard-Pair-GRP"]), "did you mean 'Hard-Pair-GRPO'"),
        (_with(environment__env="HalfCheeta-v4"), "environment.env='HalfCheeta-v4'"),
        (dict(_with(), trainig={"lr": 1e-4}), "did you mean 'training'"),
        (
            _with(training__grup_size=4),
            "training.grup_size is not an option of GRPO (did you mean 'group_size'?)",
        ),
        (_with(training__group_size=1), "group_size=1"),
        (_with(training__train_batch_size_per_learner=150), "train_batch_size_per_learner=150"),
        (_with(training__segment_length=5000), "segment_length=5000"),
        (_with(training__kl_coeff=-0.5), "kl_coeff=-0.5"),
        (_with(stop={"steps": 10}), "stop.steps is unknown"),
        (_with(seeds="0"), "seeds='0'"),
        (_with(checkpoint_every=-1), "checkpoint_every=-1"),
    ],
)
def test_bad_experiments_are_rejected_with_the_field(spec, message):
    with pytest.raises(X.ExperimentError) as info:
        X.check(spec)
    assert message in str(info.value)


def test_cli_bad_config_is_one_line_exit_2_before_ray(tmp_path):
    cases = {
        "typo.yaml": yaml.safe_dump(_with(training__grup_size=4)),
        "syntax.yaml": "algorithm: [GRPO\nstop: {",
        "scalar.yaml": "just a string\n",
    }
    for name, text in cases.items():
        path = _write(tmp_path, text, name)
        t0 = time.time()
        res = _cli("sweep", str(path), timeout=120)
        assert res.returncode == 2, (name, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert "Started a local Ray instance" not in res.stdout + res.stderr
        assert time.time() - t0 < 60
    res = _cli("train", str(tmp_path / "missing.yaml"), timeout=60)
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = _cli("sweep", str(_write(tmp_path, yaml.safe_dump(BASE))), "--set", "training.lr", timeout=60)
    assert res.returncode == 2 and "key=value" in res.stderr


# ---- inheritance: configs that cannot drift ---------------------------------------------------


def _config_dicts(spec: dict) -> dict:
    """Every algorithm's built AlgorithmConfig as a comparable dict (callables by type name)."""
    out = {}
    for algo in X.algorithms_of(spec):
        d = X.build_config(spec, algo, seed=0, resolve_search=True).to_dict()
        out[algo] = {k: (type(v).__name__ if callable(v) else repr(v)) for k, v in d.items()}
    return out


def test_base_merges_mappings_and_replaces_other_values(tmp_path):
    base = _write(tmp_path, yaml.safe_dump(BASE), "base.yaml")
    derived = _write(
        tmp_path,
        "base: base.yaml\nseeds: [3, 4]\ntraining: {lr: 0.001, group_size: 2}\n",
        "derived.yaml",
    )
    spec = X.load(derived)
    assert spec["name"] == "derived"  # a base's name is not inherited
    assert spec["seeds"] == [3, 4] and "base" not in spec
    assert spec["training"]["lr"] == 0.001 and spec["training"]["group_size"] == 2
    assert spec["training"]["segment_length"] == BASE["training"]["segment_length"]  # kept from the base
    assert spec["environment"] == BASE["environment"]
    assert X.load(base)["training"] == BASE["training"]  # the base itself is unchanged


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "base: missing.yaml\n"}, "missing.yaml"),
        ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "cycle"),
        ({"a.yaml": "base: [b.yaml]\n"}, "base=['b.yaml'] is invalid"),
        ({"a.yaml": "base: b.yaml\n", "b.yaml": "- a list\n"}, "must be a mapping"),
    ],
)
def test_bad_base_is_rejected_with_the_field(tmp_path, files, message):
    for name, text in files.items():
        _write(tmp_path, text, name)
    with pytest.raises(X.ExperimentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        X.load(tmp_path / "a.yaml")


def test_quickstart_is_the_comparison_with_one_seed_and_a_smaller_budget():
    quick = X.load(REPO / "tune_configs" / "quickstart.yaml")
    full = X.load(REPO / "tune_configs" / "halfcheetah_comparison.yaml")
    differ = {k for k in set(quick) | set(full) if quick.get(k) != full.get(k)}
    assert differ == {"name", "seeds", "stop", "checkpoint_every"}
    assert _config_dicts(quick) == _config_dicts(full)  # every algorithm's settings, exactly


def test_ablation_runs_its_algorithms_with_the_comparison_settings():
    ablation = X.load(REPO / "tune_configs" / "hard_pair_ablation.yaml")
    full = X.load(REPO / "tune_configs" / "halfcheetah_comparison.yaml")
    mine = _config_dicts(ablation)
    theirs = _config_dicts(full)
    assert set(mine) == {"Hard-Pair-GRPO", "Soft-Pair-GRPO"}
    assert mine["Soft-Pair-GRPO"] == theirs["Soft-Pair-GRPO"]
    # Hard-Pair differs only in the two ablated options (here at their grids' first values)
    hard = {k for k in mine["Hard-Pair-GRPO"] if mine["Hard-Pair-GRPO"][k] != theirs["Hard-Pair-GRPO"][k]}
    assert hard <= {"delta_decay", "trust_region"}


PPO_OWN = ("clip_param", "lambda_", "use_kl_loss", "vf_clip_param", "vf_loss_coeff", "entropy_coeff")


def test_files_comparing_against_ppo_state_its_settings(monkeypatch):
    """RLlib's defaults (clip 0.3, an adaptive KL penalty, lambda 1.0) are not left implicit."""
    for f in sorted((REPO / "tune_configs").glob("*.yaml")):
        spec = _load_shipped(f, monkeypatch)
        if "PPO" not in X.algorithms_of(spec):
            continue
        stated = set(spec.get("training") or {}) | set(
            ((spec.get("per_algorithm") or {}).get("PPO") or {}).get("training") or {}
        )
        missing = [k for k in PPO_OWN if k not in stated]
        assert not missing, f"{f.name} leaves PPO's {missing} at RLlib's defaults"


def test_overrides_and_search_tags():
    spec = yaml.safe_load(yaml.safe_dump(BASE))
    X.apply_override(spec, "training.lr=0.001")
    X.apply_override(spec, "stop.env_steps=320")
    assert spec["training"]["lr"] == 0.001 and spec["stop"]["env_steps"] == 320
    spec["training"]["lr"] = {"grid_search": [1e-3, 1e-4]}
    X.check(spec)  # checks use the first grid value
    cfg = X.build_config(spec, "GRPO", seed=3, resolve_search=True)
    assert cfg.lr == 1e-3 and cfg.seed == 3 and cfg.group_size == 4
    ppo = X.build_config(spec, "PPO", seed=0, resolve_search=True)  # family keys are dropped for PPO
    assert not hasattr(ppo, "group_size")
    assert list(ppo.model_config["fcnet_hiddens"]) == [16, 16]


# ---- Tune: two trials side by side, a report --------------------------------------------------------


@pytest.mark.slow
def test_sweep_two_trials_and_report(tmp_path):
    cfg = _write(tmp_path, yaml.safe_dump(BASE))
    res = _cli("sweep", str(cfg), "--output", str(tmp_path / "out"), timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "GRPO" in res.stdout and "Hard-Pair-GRPO" in res.stdout and "iter=2" in res.stdout
    exp = tmp_path / "out" / "t"
    report = (exp / "report.md").read_text()
    assert "| GRPO |" in report and "| Hard-Pair-GRPO |" in report
    assert (exp / "learning_curves.png").stat().st_size > 5000
    trials = sorted(p.parent for p in exp.rglob("progress.csv"))
    assert len(trials) == 2
    for t in trials:
        assert list(t.glob("events.out.tfevents*")), "TensorBoard event file missing"
        assert list(t.glob("checkpoint_*"))


# ---- checkpoint -> kill -> resume --------------------------------------------------------------------


def _iterations(progress: Path) -> list[int]:
    with progress.open(newline="") as f:
        return [int(float(r["training_iteration"])) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_kill_and_resume_continues_where_it_stopped(tmp_path):
    spec = _with(algorithm="GRPO", stop={"iterations": 40}, checkpoint_every=2)
    spec["training"]["eval_interval"] = 0
    cfg = _write(tmp_path, yaml.safe_dump(spec))
    out = tmp_path / "out"
    proc = _start("train", str(cfg), "--output", str(out), "--no-report", stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        ckpt = None
        while time.time() < deadline:
            found = sorted(out.rglob("checkpoint_00000[2-9]"))
            if found:
                ckpt = found[0]
                break
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        assert ckpt is not None, "no checkpoint appeared before the deadline"
        # Kill between checkpoints (once the trial has reported past this one): a kill in the instant
        # Tune persists a checkpoint is a different test (its state may then name a missing folder).
        rows = len(_iterations(next(out.rglob("progress.csv"))))
        while time.time() < deadline and len(_iterations(next(out.rglob("progress.csv")))) <= rows:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole session: driver, raylet, workers
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    progress = next(out.rglob("progress.csv"))
    before = _iterations(progress)
    assert before and max(before) < 40, "the run finished before it was killed; nothing to resume"
    kept = tmp_path / "kept"  # Tune keeps 2 checkpoints and rotates older ones out
    for c in out.rglob("checkpoint_0*"):
        shutil.copytree(c, kept / c.name)

    res = _cli("train", str(cfg), "--output", str(out), "--resume", "--no-report", timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    after = _iterations(next(out.rglob("progress.csv")))
    assert max(after) == 40
    resumed = after[len(before) :] if after[: len(before)] == before else after
    # It went on from a checkpoint (iteration >= 2), not from scratch, losing at most one interval.
    assert resumed[0] >= 3, (before, after)
    assert resumed[0] >= max(before) - 2 + 1, (before, resumed)
    assert all(b > a for a, b in zip(resumed, resumed[1:]))

    # Same numbers on CPU as an uninterrupted run from that checkpoint.
    rows = {}
    for line in next(out.rglob("result.json")).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[r["training_iteration"]] = r  # the resumed attempt's rows come last
    import ray

    from pairgrpo_rllib.algorithms.registry import algorithm_class

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        # the checkpoint the resume started from: the one whose iteration precedes resumed[0]
        for c in sorted(kept.iterdir()):
            algo = algorithm_class("GRPO").from_checkpoint(str(c))
            if algo.iteration == resumed[0] - 1:
                break
            algo.stop()
        else:
            pytest.fail(f"no kept checkpoint at iteration {resumed[0] - 1}: {sorted(kept.iterdir())}")
        try:
            for _ in range(2):
                mine = algo.train()
                theirs = rows[mine["training_iteration"]]
                for key in ("loss", "grad_norm", "kl_ref", "entropy"):
                    a = mine["learners"]["default_policy"][key]
                    b = theirs["learners"]["default_policy"][key]
                    assert a == pytest.approx(b, rel=1e-6, abs=1e-9), (mine["training_iteration"], key, a, b)
        finally:
            algo.stop()
    finally:
        ray.shutdown()


def test_resume_falls_back_when_the_named_checkpoint_was_rotated_out_cut_or_damaged(tmp_path, capfd):
    """Tune deletes rotated-out checkpoints before its next state snapshot, so a kill in between
    leaves a state naming a missing folder (seen in CI). The trial then resumes from the newest
    complete checkpoint of its folder, skipping a half-copied one; the same when the named one is
    there but cut, and a complete one that does not load gives way to the next older one."""
    import ray

    from pairgrpo_rllib.app.files import MANIFEST, checkpoint_complete
    from pairgrpo_rllib.app.runner import AlgorithmTrial

    spec = _with(algorithm="GRPO")
    spec["training"]["eval_interval"] = 0
    config = {"trial": {"algorithm": "GRPO", "spec": spec}, "seed": 0}
    trial_dir = tmp_path / "GRPO_seed0"
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        first = AlgorithmTrial(config=config)
        for i in range(3):
            first.train()
            first.save(str(trial_dir / f"checkpoint_00000{i}"))
        first.stop()
        assert all(checkpoint_complete(trial_dir / f"checkpoint_00000{i}") for i in range(3))
        # checkpoint 2 half-copied: one file short of its manifest; checkpoint 3 (named) gone
        listed = json.loads((trial_dir / "checkpoint_000002" / MANIFEST).read_text())["files"]
        victim = max(listed, key=listed.get)
        (trial_dir / "checkpoint_000002" / victim).write_bytes(b"")
        assert not checkpoint_complete(trial_dir / "checkpoint_000002")

        second = AlgorithmTrial(config=config)
        try:
            second.restore(str(trial_dir / "checkpoint_000003"))
            assert second.algo.iteration == 2 and second.iteration == 2  # from checkpoint 1
            assert second.train()["training_iteration"] == 3
        finally:
            second.stop()
        assert "checkpoint_000003 cannot be used (it is gone); resuming from checkpoint_000001" in (
            capfd.readouterr().err
        )

        # the named checkpoint there but cut (the manifest is checked on every restore, issue 18)
        cut = AlgorithmTrial(config=config)
        try:
            cut.restore(str(trial_dir / "checkpoint_000002"))
            assert cut.algo.iteration == 2 and cut.iteration == 2  # from checkpoint 1
        finally:
            cut.stop()
        err = capfd.readouterr().err
        assert f"checkpoint_000002 cannot be used ({victim} has 0 bytes" in err
        assert "from checkpoint_000001" in err

        # complete by its manifest but its bytes damaged at the same size: the next older one loads
        listed = json.loads((trial_dir / "checkpoint_000001" / MANIFEST).read_text())["files"]
        for name, size in listed.items():
            if name.endswith(".pkl"):
                (trial_dir / "checkpoint_000001" / name).write_bytes(b"\0" * size)
        assert checkpoint_complete(trial_dir / "checkpoint_000001")
        damaged = AlgorithmTrial(config=config)
        try:
            damaged.restore(str(trial_dir / "checkpoint_000001"))
            assert damaged.algo.iteration == 1 and damaged.iteration == 1  # from checkpoint 0
            assert damaged.train()["training_iteration"] == 2
        finally:
            damaged.stop()
        err = capfd.readouterr().err
        assert "checkpoint_000001 cannot be used (it does not load (" in err
        assert "from checkpoint_000000" in err

        shutil.rmtree(trial_dir / "checkpoint_000000")
        shutil.rmtree(trial_dir / "checkpoint_000001")
        third = AlgorithmTrial(config=config)
        try:
            with pytest.raises(ValueError, match="no complete checkpoint"):
                third.restore(str(trial_dir / "checkpoint_000003"))
        finally:
            third.stop()
    finally:
        ray.shutdown()


def test_report_statistics_hand_values():
    from pairgrpo_rllib.app.report import _tail_mean, mean_ci, mean_curve, value_at

    # [1, 2, 3]: mean 2, sample std 1, t(0.975, 2) = 4.303 -> half-width 4.303 / sqrt(3) = 2.484
    assert mean_ci([1.0, 2.0, 3.0]) == "2 ± 2.48 (n=3)"  # scores below 10: three significant digits
    assert mean_ci([5.0, None]) == "5 (n=1)" and mean_ci([None]) == "-"
    assert mean_ci([100.0, 200.0, 300.0]) == "200.0 ± 248.4 (n=3)"  # returns: one decimal
    steps, means, halves = mean_curve([{10: 1.0, 20: 3.0, 30: 9.0}, {10: 3.0, 20: 5.0}])
    assert steps == [10, 20] and means == [2.0, 4.0]  # only the steps both seeds evaluated
    assert halves[0] == pytest.approx(12.706 * 2**0.5 / 2**0.5)
    curve = [(10, 1.0), (20, 2.0), (30, 6.0), (40, 7.0)]
    assert _tail_mean(curve, 3) == 5.0 and value_at(curve, 25) == 2.0 and value_at(curve, 5) is None


def test_normalize_obs_is_one_key_for_both_kinds_of_algorithm():
    spec = _with(rl_module__model_config={"fcnet_hiddens": [16, 16], "normalize_obs": True})
    X.check(spec)
    ppo = X.build_config(spec, "PPO", seed=0, resolve_search=True)
    connector = ppo.build_env_to_module_connector(env=None, spaces=None)  # RLlib's own pipeline
    assert "MeanStdFilter" in repr(connector)
    grpo = X.build_config(spec, "GRPO", seed=0, resolve_search=True)
    assert grpo.model_config["normalize_obs"] is True
    with pytest.raises(X.ExperimentError, match="credit='token'"):
        X.check(_with(training__credit="token"))


def test_report_groups_search_points_and_drops_copies_a_grid_made_for_other_algorithms():
    from pairgrpo_rllib.app.report import group_trials

    def trial(algo, seed, decay):
        spec = {"name": "x", "training": {"lr": 1e-3}}
        spec["per_algorithm"] = {"Hard-Pair-GRPO": {"training": {"delta_decay": decay}}}
        return {"algorithm": algo, "seed": seed, "spec": spec, "rows": []}

    trials = [
        trial(a, s, d) for d in (True, False) for s in (0, 1) for a in ("Hard-Pair-GRPO", "Soft-Pair-GRPO")
    ]
    groups = group_trials(trials)
    assert sorted(groups) == [
        "Hard-Pair-GRPO [delta_decay=False]",
        "Hard-Pair-GRPO [delta_decay=True]",
        "Soft-Pair-GRPO",
    ]
    assert [t["seed"] for t in groups["Soft-Pair-GRPO"]] == [0, 1]  # the grid's copies are gone
    assert all(len(v) == 2 for v in groups.values())


def _start_sweep(cfg: Path, out: Path, *extra: str) -> subprocess.Popen:
    return _start("sweep", str(cfg), "--output", str(out), *extra)


def _wait_for_iterations(
    exp: Path, proc: subprocess.Popen, at_least: int, trials: int = 2, timeout: float = 240
) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        done = [len(p.read_text().splitlines()) for p in exp.rglob("result.json")]
        if len(done) >= trials and min(done) >= at_least:
            return
        time.sleep(0.5)
    raise AssertionError(f"no {at_least} iterations in every trial before the deadline (rc {proc.poll()})")


def _signal_when(proc: subprocess.Popen, sig: int, ready) -> str:
    """Run ``ready()``, send ``sig`` to the process, return its stderr (the group is killed on failure)."""
    try:
        ready()
        os.kill(proc.pid, sig)
        return proc.communicate(timeout=180)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_interrupted_sweep_exits_non_zero_says_how_to_resume_and_marks_the_report(tmp_path):
    spec = _with(stop={"iterations": 400}, checkpoint_every=2)
    spec["training"]["eval_interval"] = 0
    cfg = _write(tmp_path, yaml.safe_dump(spec))
    out = tmp_path / "out"
    exp = out / spec["name"]

    # SIGINT (Ctrl-C): exit 130, the exact resume command, a report marked incomplete
    proc = _start_sweep(cfg, out)
    err = _signal_when(proc, signal.SIGINT, lambda: _wait_for_iterations(exp, proc, 3))
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted by SIGINT" in err and f"pairgrpo sweep {cfg} --resume --output {out}" in err, err[
        -2000:
    ]
    report = (exp / "report.md").read_text()
    assert "Incomplete run: 2 of 2 trials did not reach their stop criteria" in report, report

    # a new run without --resume does not land on it; a resume with changed settings is refused
    res = _cli("sweep", str(cfg), "--output", str(out), timeout=120)
    assert res.returncode == 2 and "already holds a run" in res.stderr
    res = _cli("sweep", str(cfg), "--output", str(out), "--resume", "--set", "training.lr=0.001", timeout=120)
    assert res.returncode == 2 and "settings differ" in res.stderr and "training.lr" in res.stderr

    # resumed: a second process on the same folder is refused; SIGTERM ends it as cleanly (143)
    before = min(len(p.read_text().splitlines()) for p in exp.rglob("result.json"))
    proc = _start_sweep(cfg, out, "--resume", "--no-report")

    def second_process_refused_then_trials_run():
        time.sleep(3)  # past the lock, into Tune
        res = _cli("sweep", str(cfg), "--output", str(out), "--resume", timeout=120)
        assert res.returncode == 2 and "another pairgrpo process" in res.stderr, res.stderr
        _wait_for_iterations(exp, proc, before + 2)  # the trials run again

    err = _signal_when(proc, signal.SIGTERM, second_process_refused_then_trials_run)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted by SIGTERM" in err and "--resume" in err and "Traceback" not in err, err[-2000:]


def test_yaml_numbers_as_people_write_them_and_strictness():
    from pairgrpo_rllib.app.safe_yaml import YAMLInputError, loads

    assert loads("lr: 3e-4\nsteps: 1e6\nx: 1.5e3\ny: 10\nz: '3e-4'") == {
        "lr": 3e-4,
        "steps": 1e6,
        "x": 1500.0,
        "y": 10,
        "z": "3e-4",
    }
    for text, message in (("a: 1\na: 2\n", "duplicate key 'a'"), ("a: &x 1\nb: *x\n", r"alias \*x")):
        with pytest.raises(YAMLInputError, match=message):
            loads(text, "f.yaml")


def test_rllib_evaluations_repeated_in_later_rows_count_once():
    """RLlib's PPO repeats its last evaluation in the rows of iterations where none ran."""
    from pairgrpo_rllib.app.report import eval_curve

    def row(it, value):
        return {
            "training_iteration": it,
            "env_runners/num_env_steps_sampled_lifetime": 1000 * it,
            "evaluation/env_runners/episode_return_mean": value,
        }

    rows = [row(1, None), row(2, 5.0), row(3, 5.0), row(4, 7.0), row(5, 7.0), row(6, 7.0)]
    rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
    # evaluation_interval 2: evaluations ran at 2, 4 and 6 (6 equals 4 by chance and still counts)
    assert eval_curve(rows, 2) == [(2000, 5.0), (4000, 7.0), (6000, 7.0)]
    # interval unknown: a repeated value is a copy
    assert eval_curve(rows, None) == [(2000, 5.0), (4000, 7.0)]


def test_a_per_algorithm_grid_multiplies_only_its_algorithm():
    from ray.tune.search.variant_generator import generate_variants

    from pairgrpo_rllib.app import runner

    spec = X.load(REPO / "tune_configs" / "hard_pair_ablation.yaml")
    variants = [v for _, v in generate_variants(runner.param_space(spec))]
    algos = [v["trial"]["algorithm"] for v in variants]
    assert (
        algos.count("Hard-Pair-GRPO") == 4 * 3 and algos.count("Soft-Pair-GRPO") == 3
    )  # 2 x 2 grid, 3 seeds
    for v in variants:
        assert set(v["trial"]["spec"]["per_algorithm"]) <= {v["trial"]["algorithm"]}


def test_report_counts_trials_that_never_started(tmp_path):
    from pairgrpo_rllib.app.report import build_report, expected_trials

    exp = tmp_path / "exp"
    spec = _with(algorithm=["GRPO", "Hard-Pair-GRPO"], seeds=[0, 1], stop={"iterations": 5})
    spec["per_algorithm"] = {"Hard-Pair-GRPO": {"training": {"delta_decay": {"grid_search": [True, False]}}}}
    (exp / "t0").mkdir(parents=True)
    (exp / "pairgrpo_experiment.json").write_text(json.dumps({"spec": spec, "algorithm": None, "seed": None}))
    assert expected_trials(exp) == (1 + 2) * 2  # GRPO x 2 seeds + Hard-Pair x 2 grid points x 2 seeds
    (exp / "t0" / "params.json").write_text(
        json.dumps({"trial": {"algorithm": "GRPO", "spec": spec}, "seed": 0})
    )
    row = {"training_iteration": 5, "env_runners": {"num_env_steps_sampled_lifetime": 800}}
    (exp / "t0" / "result.json").write_text(json.dumps(row) + "\n")
    report = build_report(exp)
    assert "Incomplete run: 5 of 6 trials did not reach their stop criteria** (5 never started" in report


def test_welch_difference_by_hand():
    from pairgrpo_rllib.app.report import verdict, welch_diff

    # a = [1, 2, 3] (var 1), b = [4, 5, 6, 7, 8] (var 2.5): se^2 = 1/3 + 1/2, df = 5.88 -> t(5) = 2.571
    d, h = welch_diff([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0, 8.0])
    assert d == pytest.approx(-4.0) and h == pytest.approx(2.571 * (1 / 3 + 1 / 2) ** 0.5, rel=1e-6)
    assert verdict((d, h)) == "lower" and verdict((1.0, 2.0)) == "not distinguishable"
    assert verdict((3.0, 2.0)) == "higher" and welch_diff([1.0], [2.0, 3.0]) is None


def test_resume_of_a_run_this_version_cannot_read_is_one_clear_line(tmp_path):
    exp = tmp_path / "out" / BASE["name"]
    exp.mkdir(parents=True)
    # a tuner.pkl naming a module this version does not have (the runner moved to pairgrpo_rllib.app)
    (exp / "tuner.pkl").write_bytes(b"cpairgrpo_rllib.runner\nAlgorithmTrial\n.")
    res = _cli(
        "sweep", str(_write(tmp_path, yaml.safe_dump(BASE))), "--output", str(tmp_path / "out"), "--resume"
    )
    assert res.returncode == 2 and "cannot be restored" in res.stderr and "Traceback" not in res.stderr, (
        res.stderr
    )


def test_per_algorithm_sections_merge_into_the_shared_ones_key_by_key():
    """per_algorithm: {GRPO: {environment: {env_config: {engine: vllm}}}} changes the engine and keeps
    the shared env_config (it once replaced the whole section and lost the prompts)."""
    spec = {
        "algorithm": ["GRPO", "DPO"],
        "environment": {"env": "pairgrpo/llm", "env_config": {"prompts": {"path": "p.jsonl"}, "max_new_tokens": 8}},
        "training": {"lr": 1e-3},
        "per_algorithm": {"GRPO": {"environment": {"env_config": {"engine": "vllm"}}, "training": {"lr": 5e-4}}},
    }
    grpo, dpo = X.sections_for(spec, "GRPO"), X.sections_for(spec, "DPO")
    assert grpo["environment"]["env_config"] == {"prompts": {"path": "p.jsonl"}, "max_new_tokens": 8, "engine": "vllm"}
    assert grpo["training"] == {"lr": 5e-4} and dpo["training"] == {"lr": 1e-3}
    assert "engine" not in dpo["environment"]["env_config"]  # the shared section is not changed


# ---- after an interruption: the counts, the resume command, the progress lines -------------------------
def test_an_interrupted_sweep_counts_the_trials_tune_had_not_started(tmp_path, monkeypatch):
    """Ctrl-C of a 6-trial sweep with 2 running: "6 of 6 trial(s) did not finish", not "2 of 2"
    (Tune's results hold only the trials it started)."""
    from types import SimpleNamespace

    from pairgrpo_rllib.app import runner

    spec = X.load(_write(tmp_path, _with(seeds=[0, 1, 2])))  # 2 algorithms x 3 seeds
    running = [SimpleNamespace(error=None, metrics={"training_iteration": 1}) for _ in range(2)]
    monkeypatch.setattr(runner, "_run_tune", lambda *a, **k: running)
    with pytest.raises(runner.Interrupted) as info:
        runner.run(spec, tmp_path / "out")
    assert str(info.value) == "6 of 6 trial(s) did not finish"
    assert (info.value.unfinished, info.value.total) == (6, 6)
    runner.unlock((tmp_path / "out" / spec["name"]).resolve())


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "exp.yaml", "--no-report"],
        ["sweep", "exp.yaml", "--output", "o", "--set", "training.lr=0.001", "--no-report"],
        ["train", "exp.yaml", "--algorithm", "GRPO", "--seed", "1", "--no-report"],
    ],
)
def test_the_resume_command_keeps_every_flag(argv):
    from pairgrpo_rllib.app.cli import _resume_command, build_parser

    args = build_parser().parse_args(argv)
    again = build_parser().parse_args(_resume_command(args).split()[1:])
    assert again.resume and not args.resume
    for key in ("command", "config", "set", "output", "no_report"):
        assert getattr(again, key) == getattr(args, key), key
    if args.command == "train":
        assert (again.algorithm, again.seed) == (args.algorithm, args.seed)


def test_tunes_own_resume_advice_is_silenced():
    import logging

    from pairgrpo_rllib.app.runner import _own_hints

    def record(msg):
        return logging.LogRecord("ray.tune.tune", logging.WARNING, __file__, 1, msg, None, None)

    advice = 'Experiment has been interrupted, but the most recent state was saved.\nResume experiment with: Tuner.restore(path="x", trainable=...)'
    assert not _own_hints(record(advice))
    assert not _own_hints(record("Trials did not complete: %s"))
    assert _own_hints(record("Total run time: 3.00 seconds"))


def test_progress_lines_carry_the_last_evaluation_between_evaluations():
    """PPO reports NaN between its evaluations: the line shows the latest one, never nan."""
    import io
    import math
    from types import SimpleNamespace

    from pairgrpo_rllib.app.runner import ProgressLines
    from pairgrpo_rllib.core import names

    key = names.RESULT_EVAL_RETURNS[0].split("/")
    trial = SimpleNamespace(trial_id="t1", config={"trial": {"algorithm": "PPO", "spec": {}}, "seed": 0})
    out = io.StringIO()
    lines = ProgressLines(out)

    def result(i, ev):
        row = {names.RESULT_ITERATION: i}
        node = row
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = ev
        return row

    for i, ev in enumerate([math.nan, 12.5, math.nan, math.nan, 20.0], start=1):
        lines.on_trial_result(i, [trial], trial, result(i, ev))
    shown = [line.split("eval_return=")[1] for line in out.getvalue().splitlines()]
    assert shown == ["-", "12.5", "12.5", "12.5", "20.0"]
