"""Bad input, as a careless or hostile user gives it, to every command: one line naming the field,
exit code 2, and nothing started (no Ray) or written (no results folder, no report, no cluster).

The cases run the real command line in-process (``cli.main``), which keeps ~100 cases in seconds;
tests/test_experiment.py runs a few of them as separate processes too.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import ray
import yaml

from pairgrpo_rllib.app.cli import main

BASE = yaml.safe_load((Path(__file__).parent / "data" / "small_experiment.yaml").read_text())


def _spec(**changes) -> dict:
    """The small experiment with ``a__b=value`` changes (``value=DROP`` removes the key)."""
    spec = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        parts = dotted.split("__")
        node = spec
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is DROP:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return spec


DROP = object()
NAN, INF = math.nan, math.inf

# (case id, spec or raw text, what the one line must name)
SPEC_CASES = [
    ("section-a-word", _spec(training="fast"), "training"),
    ("section-a-list", _spec(environment=[1]), "environment"),
    ("lr-nan", _spec(training__lr=NAN), "lr"),
    ("lr-inf", _spec(training__lr=INF), "lr"),
    ("lr-huge", _spec(training__lr=1e308), "lr"),
    ("lr-negative", _spec(training__lr=-0.1), "lr"),
    ("lr-zero", _spec(training__lr=0), "lr"),
    ("lr-word", _spec(training__lr="fast"), "lr"),
    ("kl-coeff-inf", _spec(training__kl_coeff=INF), "kl_coeff"),
    ("kl-coeff-negative", _spec(training__kl_coeff=-0.5), "kl_coeff"),
    ("clip-high-inf", _spec(training__clip_high=INF), "clip_high"),
    ("clip-low-one", _spec(training__clip_low=1.0), "clip_low"),
    ("epochs-negative", _spec(training__num_epochs=-1), "num_epochs"),
    ("epochs-float", _spec(training__num_epochs=2.5), "num_epochs"),
    ("concurrent-negative", _spec(max_concurrent=-1), "max_concurrent"),
    ("concurrent-word", _spec(max_concurrent="two"), "max_concurrent"),
    ("name-parent", _spec(name="../x"), "name"),
    ("algorithm-twice", _spec(algorithm=["GRPO", "GRPO"]), "GRPO is named twice"),
    ("name-absolute", _spec(name="/abs/path"), "name"),
    ("name-empty", _spec(name=""), "name"),
    ("name-slash", _spec(name="a/b"), "name"),
    ("name-number", _spec(name=5), "name"),
    ("stop-inf", _spec(stop={"env_steps": INF}), "stop.env_steps"),
    ("stop-nan", _spec(stop={"env_steps": NAN}), "stop.env_steps"),
    ("stop-zero", _spec(stop={"iterations": 0}), "stop.iterations"),
    ("stop-huge", _spec(stop={"env_steps": 1e300}), "stop.env_steps"),
    ("stop-empty", _spec(stop={}), "stop"),
    ("stop-unknown", _spec(stop={"steps": 10}), "stop.steps"),
    ("stop-word", _spec(stop="long"), "stop"),
    ("grid-empty", _spec(training__lr={"grid_search": []}), "grid_search"),
    ("grid-not-list", _spec(training__lr={"grid_search": 0.1}), "grid_search"),
    ("choice-not-list", _spec(training__lr={"choice": 5}), "choice"),
    ("uniform-one-value", _spec(training__lr={"uniform": [1]}), "uniform"),
    ("uniform-reversed", _spec(training__lr={"uniform": [0.1, 0.01]}), "uniform"),
    ("loguniform-zero", _spec(training__lr={"loguniform": [0, 1]}), "loguniform"),
    ("randint-floats", _spec(training__num_epochs={"randint": [1.5, 3]}), "randint"),
    ("grid-bad-later-value", _spec(training__kl_coeff={"grid_search": [0.1, -1.0]}), "kl_coeff"),
    ("seeds-word", _spec(seeds="0"), "seeds"),
    ("seeds-duplicate", _spec(seeds=[0, 0]), "seeds"),
    ("seeds-negative", _spec(seeds=[-1]), "seeds"),
    ("seeds-bool", _spec(seeds=[True]), "seeds"),
    ("seeds-empty", _spec(seeds=[]), "seeds"),
    ("algorithm-unknown", _spec(algorithm="DAPO"), "algorithm"),
    ("algorithm-number", _spec(algorithm=5), "algorithm"),
    ("algorithm-empty", _spec(algorithm=[]), "algorithm"),
    ("algorithm-typo", _spec(algorithm=["GRPO", "Hard-Pair-GRP"]), "Hard-Pair-GRP"),
    ("env-missing", _spec(environment__env=DROP), "environment.env"),
    ("env-number", _spec(environment__env=5), "environment.env"),
    ("env-unknown", _spec(environment__env="HalfCheeta-v4"), "environment.env"),
    ("top-level-typo", dict(_spec(), trainig={"lr": 1e-4}), "trainig"),
    ("option-typo", _spec(training__grup_size=4), "grup_size"),
    ("group-size-one", _spec(training__group_size=1), "group_size"),
    ("group-size-float", _spec(training__group_size=2.5), "group_size"),
    ("group-size-bool", _spec(training__group_size=True), "group_size"),
    ("group-size-huge", _spec(training__group_size=10**6), "group_size"),
    ("bool-option-word", _spec(training__trust_region="yes"), "trust_region"),
    ("batch-not-multiple", _spec(training__train_batch_size_per_learner=150), "train_batch_size_per_learner"),
    ("batch-zero", _spec(training__train_batch_size_per_learner=0), "train_batch_size_per_learner"),
    ("segment-too-long", _spec(training__segment_length=5000), "segment_length"),
    ("minibatch-not-divisor", _spec(training__minibatch_size=3), "minibatch_size"),
    ("grad-clip-negative", _spec(training__grad_clip=-1), "grad_clip"),
    ("gamma-above-one", _spec(training__gamma=1.5), "gamma"),
    ("estimator-unknown", _spec(training__kl_estimator="k4"), "kl_estimator"),
    ("delta0-zero", _spec(training__delta0=0.0), "delta0"),
    ("credit-gamma-zero", _spec(training__credit_gamma=0.0), "credit_gamma"),
    (
        "lookahead-with-sequence-credit",
        _spec(training__credit="sequence", training__lookahead=50),
        "lookahead",
    ),
    ("log-ratio-clamp-inf", _spec(training__log_ratio_clamp=INF), "log_ratio_clamp"),
    ("env-runners-negative", _spec(env_runners__num_env_runners=-1), "num_env_runners"),
    ("checkpoint-negative", _spec(checkpoint_every=-1), "checkpoint_every"),
    ("failures-below-minus-one", _spec(max_failures=-2), "max_failures"),
    ("per-algorithm-unknown", _spec(per_algorithm={"DAPO": {}}), "per_algorithm"),
    ("per-algorithm-not-mapping", _spec(per_algorithm={"GRPO": 5}), "per_algorithm.GRPO"),
    ("per-algorithm-section-typo", _spec(per_algorithm={"GRPO": {"trainin": {}}}), "trainin"),
    (
        "ppo-clip-negative",
        _spec(algorithm=["PPO"], per_algorithm={"PPO": {"training": {"clip_param": -0.2}}}),
        "clip_param",
    ),
    (
        "ppo-lambda-above-one",
        _spec(algorithm=["PPO"], per_algorithm={"PPO": {"training": {"lambda_": 2.0}}}),
        "lambda_",
    ),
    ("ppo-lr-nan", _spec(algorithm=["PPO"], training__lr=NAN), "lr"),
    ("model-config-word", _spec(rl_module={"model_config": "big"}), "model_config"),
    ("hiddens-negative", _spec(rl_module={"model_config": {"fcnet_hiddens": [-1]}}), "fcnet_hiddens"),
    (
        "activation-unknown",
        _spec(rl_module={"model_config": {"fcnet_activation": "swish"}}),
        "fcnet_activation",
    ),
    (
        "ppo-log-std-huge",
        _spec(algorithm=["PPO"], rl_module={"model_config": {"initial_log_std": 100}}),
        "initial_log_std",
    ),
    (
        "ppo-evaluation-interval-negative",
        _spec(algorithm=["PPO"], evaluation={"evaluation_interval": -5}),
        "evaluation_interval",
    ),
    ("duplicate-key", "name: t\nname: u\n", "duplicate key"),
    ("alias", "a: &x [1, 2]\nb: *x\n", "alias"),
    (
        "alias-bomb",
        "a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b]\n",
        "alias",
    ),
    ("yaml-syntax", "algorithm: [GRPO\nstop: {", "not valid YAML"),
    ("yaml-top-level-list", "- GRPO\n", "mapping"),
    ("yaml-top-level-word", "just a string\n", "mapping"),
    ("binary-file", b"\xff\xfe\x00\x01binary", "not a text file"),
    ("base-missing", "base: missing.yaml\n", "missing.yaml"),
    ("base-not-a-path", "base: [x.yaml]\n", "base"),
]


@pytest.fixture
def run_cli(tmp_path, capsys):
    def run(*argv: str) -> str:
        with pytest.raises(SystemExit) as info:
            main(list(argv))
        err = capsys.readouterr().err.strip()
        assert info.value.code == 2, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert not ray.is_initialized(), "Ray was started for bad input"
        return err

    return run


def _write(tmp_path: Path, content) -> Path:
    path = tmp_path / "exp.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        path.write_text(yaml.safe_dump(content))
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(("spec", "field"), [c[1:] for c in SPEC_CASES], ids=[c[0] for c in SPEC_CASES])
@pytest.mark.parametrize("command", ["sweep", "train"])
def test_bad_experiment_files(tmp_path, run_cli, command, spec, field):
    out = tmp_path / "out"
    err = run_cli(command, str(_write(tmp_path, spec)), "--output", str(out))
    assert field in err
    assert not out.exists(), "a results folder was written for bad input"


OVERRIDE_CASES = [
    (["--set", "training=5"], "training"),
    (["--set", "training.lr"], "key=value"),
    (["--set", ".lr=1"], "empty part"),
    (["--set", "stop.env_steps=.inf"], "stop.env_steps"),
    (["--set", "name=../../x"], "name"),
    (["--set", "training.lr=[1"], "not valid YAML"),
    (["--set", "seeds.0=1"], "seeds"),
    (["--resume"], "nothing to resume"),
    (["--output", ""], "--output"),
    (["--output", "  "], "--output"),
]


@pytest.mark.parametrize(("extra", "field"), OVERRIDE_CASES, ids=[" ".join(c[0]) for c in OVERRIDE_CASES])
def test_bad_overrides_and_resume(tmp_path, run_cli, extra, field):
    out = tmp_path / "out"
    err = run_cli("sweep", str(_write(tmp_path, BASE)), "--output", str(out), *extra)
    assert field in err
    assert not out.exists()


def test_bad_files_and_outputs(tmp_path, run_cli):
    good = _write(tmp_path, BASE)
    assert "does not exist" in run_cli("sweep", str(tmp_path / "missing.yaml"))
    assert "not a file" in run_cli("sweep", str(tmp_path))
    assert "--output" in run_cli("sweep", str(good), "--output", "/proc/pairgrpo-test")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert "--output" in run_cli("sweep", str(good), "--output", str(a_file))
    assert a_file.read_text() == "x"
    assert "--algorithm" in run_cli(
        "train", str(good), "--algorithm", "DAPO", "--output", str(tmp_path / "o")
    )
    assert "--seed" in run_cli("train", str(good), "--seed", "-1", "--output", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def _trial_folder(root: Path, params, result) -> Path:
    folder = root / "trial_0"
    folder.mkdir(parents=True)
    for name, content in (("params.json", params), ("result.json", result)):
        path = folder / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return folder


GOOD_ROW = json.dumps({"training_iteration": 1, "env_runners": {"num_env_steps_sampled_lifetime": 10}})
REPORT_CASES = [
    ("params-corrupt", "{not json", GOOD_ROW, "params.json"),
    ("params-a-list", "[1, 2]", GOOD_ROW, "params.json"),
    ("params-binary", b"\xff\xfe\x00", GOOD_ROW, "params.json"),
    ("result-binary", '{"algorithm": "GRPO", "seed": 0}', b"\xff\xfe\x00\x01", "result.json"),
]


@pytest.mark.parametrize(
    ("params", "result", "field"), [c[1:] for c in REPORT_CASES], ids=[c[0] for c in REPORT_CASES]
)
def test_report_on_damaged_trial_folders(tmp_path, run_cli, params, result, field):
    _trial_folder(tmp_path / "exp", params, result)
    assert field in run_cli("report", str(tmp_path / "exp"))
    assert not (tmp_path / "exp" / "report.md").exists()


@pytest.mark.parametrize(
    "content", ['{"trials": 5}', '{"settings": {}}', "[1]", '{"trials": [{"label": "x"}]}', "{cut", b"\xff"]
)
def test_report_on_a_damaged_llm_eval_file(tmp_path, run_cli, content):
    """llm_eval.json of the wrong shape: one line naming it and the fix, no KeyError / TypeError."""
    _trial_folder(tmp_path / "exp", '{"algorithm": "GRPO", "seed": 0, "spec": {}}', GOOD_ROW)
    path = tmp_path / "exp" / "llm_eval.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    err = run_cli("report", str(tmp_path / "exp"))
    assert "llm_eval.json" in err and "pairgrpo llm eval" in err
    assert not (tmp_path / "exp" / "report.md").exists()


def test_report_skips_lines_that_are_not_results(tmp_path, capsys):
    lines = "\n".join(["42", "[1]", '"text"', "{cut", GOOD_ROW])
    _trial_folder(tmp_path / "exp", '{"algorithm": "GRPO", "seed": 0, "spec": {}}', lines)
    assert main(["report", str(tmp_path / "exp")]) == 0
    assert "| GRPO |" in (tmp_path / "exp" / "report.md").read_text()


def test_report_on_missing_or_empty_folders(tmp_path, run_cli):
    assert "results_dir" in run_cli("report", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    assert "no trial folders" in run_cli("report", str(tmp_path / "empty"))


THEORY_CASES = [
    (["--beta", "1e308"], "--beta"),
    (["--beta", "-1"], "--beta"),
    (["--beta", "1e-300"], "1e-06 <= beta"),  # ran 204 s
    (["--beta", "9e-7"], "1e-06 <= beta"),
    (["--beta", "nan"], "--beta"),
    (["--pref", "1.5"], "--pref"),
    (["--pref", "0"], "--pref"),
    (["--group-size", "1"], "--group-size"),
    (["--group-size", "100000"], "--group-size"),
    (["--group-size", "two"], "--group-size"),
    (["--iterations", "0"], "--iterations"),
    (["--iterations", "100000000"], "--iterations"),
    (["--seed", "-1"], "--seed"),
    (["--kl-estimator", "k2"], "--kl-estimator"),
    (["--mode", "fast"], "--mode"),
    (["--algorithm", "dapo"], "--algorithm"),
    (["--plot", "/proc/pairgrpo-test"], "--plot"),
]


@pytest.mark.parametrize(("argv", "field"), THEORY_CASES, ids=[" ".join(c[0]) for c in THEORY_CASES])
def test_bad_theory_options(run_cli, argv, field):
    assert field in run_cli("theory", *argv)


def _cluster_dir(tmp_path: Path, state: str | None) -> Path:
    d = tmp_path / "cluster"
    d.mkdir()
    if state is not None:
        (d / "cluster.json").write_text(state)
    return d


def _edited_state(**changes) -> str:
    state = {
        "state_dir": "SELF",
        "temp_dir": "/tmp/pgc-xyz",
        "gcs_port": 6379,
        "dashboard_port": 8265,
        "token_path": "SELF/auth_token",
        "cluster_id": "0" * 32,
        "autoscaler_metrics_port": 1,
        "dashboard_metrics_port": 2,
        "node_pgids": [12345],
        "node_argv": [["ray", "start"]],
        "node_start_times": [1],
        "cpus_per_node": 1,
    }
    state.update(changes)
    return json.dumps(state)


CLUSTER_STATES = [
    ("empty", ""),
    ("corrupt", "{"),
    ("a-list", "[]"),
    ("missing-fields", '{"state_dir": "x"}'),
    ("init-as-node", _edited_state(node_pgids=[1])),
    ("temp-dir-elsewhere", _edited_state(temp_dir="/home")),
    ("foreign-state-dir", _edited_state(state_dir="/somewhere/else")),
]


@pytest.mark.parametrize("state", [c[1] for c in CLUSTER_STATES], ids=[c[0] for c in CLUSTER_STATES])
@pytest.mark.parametrize("action", ["down", "status", "up", "env"])
def test_cluster_refuses_a_damaged_or_edited_state_file(tmp_path, run_cli, action, state):
    d = _cluster_dir(tmp_path, state)
    (d / "cluster.json").write_text(state.replace("SELF", str(d)))
    before = sorted(p.name for p in d.iterdir())
    err = run_cli("cluster", action, "--dir", str(d))
    assert "cluster.json" in err
    assert sorted(p.name for p in d.iterdir()) == before  # nothing deleted, nothing written


def test_cluster_bad_options_and_folders(tmp_path, run_cli):
    assert "no cluster state" in run_cli("cluster", "down", "--dir", str(_cluster_dir(tmp_path, None)))
    assert "--dir" in run_cli("cluster", "up", "--dir", "/proc/pairgrpo-test")
    assert "--workers" in run_cli("cluster", "up", "--workers", "-1", "--dir", str(tmp_path / "c2"))
    assert "--cpus-per-node" in run_cli(
        "cluster", "up", "--cpus-per-node", "0", "--dir", str(tmp_path / "c2")
    )
    assert not (tmp_path / "c2").exists()


def test_the_suite_holds_at_least_sixty_cases():
    count = (
        2 * len(SPEC_CASES)
        + len(OVERRIDE_CASES)
        + len(REPORT_CASES)
        + len(THEORY_CASES)
        + 4 * len(CLUSTER_STATES)
    )
    assert count >= 60


def test_down_with_a_stale_state_file_signals_nobody_and_deletes_nothing(tmp_path):
    """A state file naming a live process that is not the node it recorded (a reused pid, an edited
    file), and a process whose arguments merely mention the temp dir: neither is signalled, and a
    temp dir without this cluster's marker is kept."""
    import subprocess
    import sys
    import tempfile

    from pairgrpo_rllib.app import cluster as K

    temp = Path(tempfile.mkdtemp(prefix=K.TEMP_PREFIX, dir="/tmp"))
    (temp / "keep").write_text("x")
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", str(temp)]
    victim = subprocess.Popen(sleeper, start_new_session=True)
    bystander = subprocess.Popen(sleeper)
    try:
        d = _cluster_dir(tmp_path, None)
        state = _edited_state(
            node_pgids=[victim.pid],
            node_argv=[["ray", "start", "--head"]],  # what the file claims the process is
            node_start_times=[K._start_time(victim.pid)],
            temp_dir=str(temp),
        )
        (d / "cluster.json").write_text(state.replace("SELF", str(d)))
        K.down(d, grace=0.5)
        assert victim.poll() is None and bystander.poll() is None, "an unrelated process was signalled"
        assert (temp / "keep").exists(), "a folder without the cluster's marker was deleted"
        assert not (d / "cluster.json").exists()  # the stale state itself is cleared
    finally:
        victim.kill()
        bystander.kill()
        (temp / "keep").unlink()
        temp.rmdir()
