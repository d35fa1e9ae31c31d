"""LLM evaluation as an experiment stage (app/llm_eval.py): a sweep with an evaluate section and its
report, the chosen baseline, bad evaluate sections, and the GPU recipes (with their evaluate
sections) validating before Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pairgrpo_rllib.core import names
from pairgrpo_rllib.envs.llm import data as D

FAMILY = ("GRPO", "Soft-Pair-GRPO", "Hard-Pair-GRPO", "PG-GRPO")
REPO = Path(__file__).resolve().parents[2]


def _eval_spec(assets, tmp_path) -> dict:
    task = assets["task"]
    return {
        "name": "eval_e2e",
        "algorithm": ["GRPO", "DPO"],
        "seeds": [0],
        "stop": {"iterations": 2},
        "checkpoint_every": 1,
        "max_concurrent": 1,
        "environment": {
            "env": names.LLM_ENV,
            "env_config": {
                "prompts": {"path": str(task / "sft_train.jsonl")},
                "pairs": {"path": str(task / "hh_rlhf_train.jsonl")},
                "eval_prompts": {"path": str(task / "eval_prompts.jsonl")},
                "scorer": {"kind": "reward_model", "path": assets["rm"]},
                "eval_scorer": {"kind": "truth"},
                "max_prompt_tokens": 24,
                "max_new_tokens": 12,
            },
        },
        "rl_module": {"model_config": {"name_or_path": assets["sft"]}},
        "env_runners": {"num_env_runners": 0},
        "training": {
            "group_size": 4,
            "train_batch_size_per_learner": 4 * 12 * 3,
            "minibatch_size": 3,
            "lr": 1e-3,
            "eval_interval": 1,
            "eval_episodes": 12,
            "grad_cosine_every": 1,
        },
        "evaluate": {
            "prompts": [
                {"path": str(task / "eval_helpful.jsonl"), "subset": "helpful", "limit": 12},
                {"path": str(task / "eval_harmless.jsonl"), "subset": "harmless", "limit": 6},
            ],
            "samples": 2,
            "judges": [{"kind": "truth"}, {"kind": "reward_model", "path": assets["rm"]}],
            "likert": ["truth"],
        },
    }


def test_sweep_evaluates_every_trial_and_the_report_prints_the_tables(assets, tmp_path):
    """`pairgrpo sweep` with an evaluate section: after training, every trial's final policy is
    judged against the start policy (truth and reward model), per-trial and experiment files are
    written, and `pairgrpo report` prints the win-rate, Likert, stability and cosine tables."""
    import shutil
    import subprocess

    import yaml

    cfg = tmp_path / "e2e.yaml"
    cfg.write_text(yaml.safe_dump(_eval_spec(assets, tmp_path)))
    exe = shutil.which("pairgrpo")
    env = dict(__import__("os").environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [exe, "sweep", str(cfg), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "win rate (overall, truth)" in res.stdout
    exp = tmp_path / "out" / "eval_e2e"
    data = json.loads((exp / "llm_eval.json").read_text())
    assert {r["algorithm"] for r in data["trials"]} == {"GRPO", "DPO"}
    for r in data["trials"]:
        own = json.loads((Path(r["dir"]) / "llm_eval.json").read_text())
        assert own["win_rates"] == r["win_rates"]
        truth = r["win_rates"]["truth"]
        assert truth["helpfulness"]["prompts"] == 12 and truth["harmlessness"]["prompts"] == 6
        assert truth["overall"]["prompts"] == 18 and truth["overall"]["comparisons"] == 36
        for k in ("helpfulness", "harmlessness", "overall"):
            assert 0.0 <= truth[k]["low"] <= truth[k]["rate"] <= truth[k]["high"] <= 1.0
        assert 0.0 <= r["truth_reward"] <= 1.0 and r["checkpoint"].startswith("checkpoint_")
        assert set(r["likert"]["truth"]) == {
            "coherence",
            "helpfulness",
            "harmlessness",
            "relevance",
            "overall",
        }
    report = (exp / "report.md").read_text()
    for heading in ("Win rates vs the baseline, judge: truth", "judge: reward_model:", "Likert 1-5, rater: truth",
                    "Training stability over the run", "cosine to GRPO"):  # fmt: skip
        assert heading in report, heading
    # `pairgrpo llm eval` reruns it from the saved settings: same numbers (seeded)
    again = subprocess.run(  # a relative experiment folder, as users type it
        [exe, "llm", "eval", "out/eval_e2e"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads((exp / "llm_eval.json").read_text())
    assert [r["win_rates"] for r in rerun["trials"]] == [r["win_rates"] for r in data["trials"]]


def test_the_chosen_baseline_reads_a_preference_sets_prompts_and_chosen_responses(assets, tmp_path):
    from pairgrpo_rllib.app import llm_eval

    spec = _eval_spec(assets, tmp_path)
    spec["evaluate"]["baseline"] = {
        "chosen": {"path": str(assets["task"] / "hh_rlhf_test.jsonl"), "limit": 5}
    }
    s = llm_eval.settings(spec["evaluate"], spec)
    prompts, subsets, chosen = llm_eval.load_prompts(s)
    rows = D.load_preferences(str(assets["task"] / "hh_rlhf_test.jsonl"), limit=5)
    assert prompts == [r["messages"] for r in rows] and chosen == [[r["chosen"]] for r in rows]
    assert subsets == ["general"] * 5  # no helpful/harmless split: the overall rate only


def test_evaluation_gpus_this_machine_lacks_are_refused_before_ray(assets, tmp_path, monkeypatch):
    """evaluate.num_gpus: 1 where no GPU is: the evaluation tasks would wait forever; refused with
    the numbers (on a machine with a GPU the request is accepted)."""
    import torch

    from pairgrpo_rllib.app import llm_eval

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = _eval_spec(assets, tmp_path)
    spec["evaluate"]["num_gpus"] = 1
    if torch.cuda.device_count() == 0:
        with pytest.raises(ValueError, match=r"evaluate\.num_gpus=1 is invalid: the evaluation tasks request 1 GPU"):
            llm_eval.settings(spec["evaluate"], spec)
    else:
        assert llm_eval.settings(spec["evaluate"], spec)["num_gpus"] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompts": []}, "evaluate.prompts"),
        ({"prompts": [{"path": "x.jsonl", "subset": "toxic"}]}, "evaluate.prompts[0].subset"),
        ({"judges": [{"kind": "oracle"}]}, "evaluate.judges[0].kind"),
        ({"judges": [{"kind": "reward_model"}]}, "evaluate.judges[0].path"),
        ({"judges": [{"kind": "generative", "path": "/nonexistent/judge"}]}, "evaluate.judges[0].path"),
        ({"likert": ["reward_model"]}, "evaluate.likert[0].kind"),
        ({"samples": 0}, "evaluate.samples"),
        ({"baseline": "sft"}, "evaluate.baseline"),
        ({"engine": "tgi"}, "evaluate.engine"),
        ({"colour": 1}, "evaluate.colour"),
    ],
)
def test_bad_evaluate_sections_fail_before_ray_naming_the_field(assets, tmp_path, change, field):
    from pairgrpo_rllib.app import experiment as X

    spec = _eval_spec(assets, tmp_path)
    spec["evaluate"].update(change)
    with pytest.raises(
        X.ExperimentError, match=field.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")
    ):
        X.check(spec)


def _prompt_only_file(tmp_path) -> str:
    path = tmp_path / "prompts_only.jsonl"
    path.write_text(json.dumps({"prompt": "What color is the sky?"}) + "\n")
    return str(path)


def _text_file(tmp_path) -> str:
    path = tmp_path / "no_prompt.jsonl"
    path.write_text(json.dumps({"text": "x"}) + "\n")
    return str(path)


# (case id, what changes in the spec given (assets, tmp_path): {dotted key: value}, the field named)
SWEEP_CASES = [
    ("prompts-missing-file",
     lambda a, t: {"evaluate.prompts": [{"path": str(t / "missing.jsonl"), "subset": "helpful"}]},
     "evaluate.prompts[0].path"),
    ("prompts-no-prompt-column",
     lambda a, t: {"evaluate.prompts": [{"path": _text_file(t), "subset": "helpful"}]},
     "evaluate.prompts[0].path"),
    ("prompts-limit-0",
     lambda a, t: {"evaluate.prompts": [{"path": str(a["task"] / "eval_helpful.jsonl"), "limit": 0}]},
     "evaluate.prompts[0].limit"),
    ("prompts-limit-word",
     lambda a, t: {"evaluate.prompts": [{"path": str(a["task"] / "eval_helpful.jsonl"), "limit": "all"}]},
     "evaluate.prompts[0].limit"),
    ("prompts-schema-typo",
     lambda a, t: {"evaluate.prompts": [{"path": str(a["task"] / "eval_helpful.jsonl"), "schema": "hhh"}]},
     "evaluate.prompts[0].schema"),
    ("chosen-missing-file",
     lambda a, t: {"evaluate.baseline": {"chosen": {"path": str(t / "missing_pairs.jsonl")}}},
     "evaluate.baseline.chosen.path"),
    ("chosen-prompts-only",
     lambda a, t: {"evaluate.baseline": {"chosen": {"path": _prompt_only_file(t)}}},
     "evaluate.baseline.chosen.path"),
    ("chosen-limit-0",
     lambda a, t: {"evaluate.baseline": {"chosen": {"path": str(a["task"] / "hh_rlhf_test.jsonl"), "limit": 0}}},
     "evaluate.baseline.chosen.limit"),
    ("reward-model-is-a-causal-lm",
     lambda a, t: {"evaluate.judges": [{"kind": "reward_model", "path": a["sft"]}]},
     "evaluate.judges[0].path"),
    ("generative-is-a-reward-model",
     lambda a, t: {"evaluate.judges": [{"kind": "generative", "path": a["rm"]}]},
     "evaluate.judges[0].path"),
    ("generative-relative-path-missing",
     lambda a, t: {"evaluate.likert": [{"kind": "generative", "path": "models/judge"}]},
     "evaluate.likert[0].path"),
    ("generative-folder-without-model",
     lambda a, t: {"evaluate.judges": [{"kind": "generative", "path": str(t)}]},
     "evaluate.judges[0].path"),
    ("max-new-tokens-0", lambda a, t: {"evaluate.max_new_tokens": 0}, "evaluate.max_new_tokens"),
    ("scorer-actor-typo",
     lambda a, t: {"environment.env_config.scorer": {"kind": "reward_model", "path": a["rm"], "actor": 2}},
     "scorer.actor"),
    ("scorer-dtype-float8",
     lambda a, t: {"environment.env_config.scorer": {"kind": "reward_model", "path": a["rm"], "dtype": "float8"}},
     "scorer.dtype"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field"), [c[1:] for c in SWEEP_CASES], ids=[c[0] for c in SWEEP_CASES])
def test_bad_evaluate_sections_refused_by_the_command_before_ray(
    assets, tmp_path, monkeypatch, capsys, change, field
):
    """`pairgrpo sweep` with an evaluate section that would fail after training: exit 2, one line
    naming the field and the value, no Ray, no results folder."""
    import ray
    import yaml

    from pairgrpo_rllib.app.cli import main

    (tmp_path / "models").mkdir()  # a relative path under it is local, not a hub name
    monkeypatch.chdir(tmp_path)
    spec = _eval_spec(assets, tmp_path)
    for dotted, value in change(assets, tmp_path).items():
        node = spec
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(cfg), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert field in err, err
    assert not ray.is_initialized() and not (tmp_path / "out").exists()


def test_evaluate_sources_made_by_a_prepare_stage_count_as_present(assets, tmp_path):
    """Files and models that a prepare stage will write are accepted before they exist."""
    from pairgrpo_rllib.app import llm_eval

    spec = _eval_spec(assets, tmp_path)
    later = tmp_path / "later"
    spec["evaluate"]["prompts"] = [{"path": str(later / "task" / "eval_helpful.jsonl"), "subset": "helpful"}]
    spec["evaluate"]["judges"] = [{"kind": "reward_model", "path": str(later / "rm")}]
    promised = [later / "task", later / "task" / "eval_helpful.jsonl", later / "rm"]
    s = llm_eval.settings(spec["evaluate"], spec, promised=promised)
    assert s["judges"][0].path == str(later / "rm")


def test_evaluate_max_new_tokens_null_is_the_runs_and_zero_is_refused(assets, tmp_path):
    from pairgrpo_rllib.app import llm_eval

    spec = _eval_spec(assets, tmp_path)
    spec["evaluate"]["max_new_tokens"] = None
    assert llm_eval.settings(spec["evaluate"], spec)["max_new_tokens"] == 12  # env_config's
    spec["evaluate"]["max_new_tokens"] = 0
    with pytest.raises(ValueError, match=r"evaluate\.max_new_tokens"):
        llm_eval.settings(spec["evaluate"], spec)


def test_the_gpu_recipe_validates_before_ray(monkeypatch):
    """The paper-scale recipe (hub names, vLLM, GPUs per learner and rollout actor) passes every check
    here as it would on the cluster it is submitted to (RAY_ADDRESS set: the GPUs are the cluster's to
    count); it is not run (no GPU, no hub). Without RAY_ADDRESS, on a machine without GPUs, it is
    refused with the numbers."""
    import torch

    from pairgrpo_rllib.app import experiment as X

    if torch.cuda.device_count() == 0:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        with pytest.raises(X.ExperimentError, match=r"num_gpus(_per_learner)?=1 is invalid: .* request \d+ GPU\(s\) .* has 0"):
            X.load(REPO / "tune_configs" / "llm_gpu_recipe.yaml")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # `ray job submit` to the cluster sets it
    spec = X.load(REPO / "tune_configs" / "llm_gpu_recipe.yaml")
    assert set(X.algorithms_of(spec)) == {*FAMILY, "DPO", "ORPO"}
    cfg = X.build_config(spec, "GRPO", seed=0, resolve_search=True)
    assert cfg.num_gpus_per_learner == 1 and cfg.num_gpus_per_env_runner == 1
    assert (
        cfg.env_config["engine"] == "vllm"
        and cfg.model_config["name_or_path"] == "Qwen/Qwen2.5-0.5B-Instruct"
    )
    assert [p["data_dir"] for p in cfg.env_config["prompts"][:2]] == ["helpful-base", "harmless-base"]
    assert spec["prepare"][0]["stage"] == "reward_model"
    from pairgrpo_rllib.app import llm_eval
    from pairgrpo_rllib.app.prepare import promised_outputs

    made = promised_outputs(spec["prepare"])  # the reward model a prepare stage makes
    ev = llm_eval.settings(spec["evaluate"], spec, promised=made)
    uf = X.load(REPO / "tune_configs" / "llm_gpu_recipe_ultrafeedback_eval.yaml")
    uf_ev = llm_eval.settings(uf["evaluate"], uf, promised=made)
    assert [p["subset"] for p in ev["prompts"]] == ["helpful", "harmless"]
    assert {j.kind for j in ev["judges"]} == {"reward_model", "generative"} and ev["engine"] == "vllm"
    assert uf["name"] == spec["name"]  # evaluates the same run's trials
    assert [p["subset"] for p in uf_ev["prompts"]] == ["general"]
    big = X.load(REPO / "tune_configs" / "llm_gpu_recipe_7b.yaml")
    cfg = X.build_config(big, "Soft-Pair-GRPO", seed=0, resolve_search=True)
    assert cfg.model_config["lora"]["r"] == 64 and cfg.model_config["name_or_path"].endswith("7B-Instruct")
    assert cfg.env_config["weight_sync"]["backend"] == "nccl" and cfg.num_env_runners == 2


# ---- `pairgrpo llm eval` on folders it must refuse before Ray ---------------------------------------------
def _experiment_folder(assets, tmp_path, *, checkpoint: bool = True) -> Path:
    """An experiment folder as a sweep leaves it (settings, one trial with a result row), without
    training: what the command checks before Ray is all these tests reach."""
    spec = _eval_spec(assets, tmp_path)
    exp = tmp_path / "out" / spec["name"]
    trial = exp / "GRPO_seed0_00000"
    trial.mkdir(parents=True)
    (exp / "pairgrpo_experiment.json").write_text(json.dumps({"spec": spec, "algorithm": None, "seed": None}))
    (trial / "params.json").write_text(json.dumps({"trial": {"algorithm": "GRPO", "spec": {}}, "seed": 0}))
    (trial / "result.json").write_text(json.dumps({"training_iteration": 1}) + "\n")
    if checkpoint:
        (trial / "checkpoint_000000").mkdir()
    return exp


def _refused(capsys, *argv) -> str:
    import ray

    from pairgrpo_rllib.app.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(argv))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not ray.is_initialized(), "Ray was started for bad input"
    return err


DAMAGED_SETTINGS = [
    ("not-json", "{not json", "pairgrpo_experiment.json"),
    ("a-list", "[1, 2]", "pairgrpo_experiment.json"),
    ("no-spec", '{"algorithm": null}', "pairgrpo_experiment.json"),
    ("spec-a-number", '{"spec": 5}', "pairgrpo_experiment.json"),
    ("binary", b"\xff\xfe\x00", "pairgrpo_experiment.json"),
    ("environment-a-number", '{"spec": {"evaluate": {"prompts": []}, "environment": 5}}', "pairgrpo_experiment.json"),
    ("no-evaluate", '{"spec": {"name": "x"}}', "no evaluate section"),
    ("bad-evaluate", '{"spec": {"evaluate": {"prompts": []}}}', "evaluate.prompts"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "named"), [c[1:] for c in DAMAGED_SETTINGS], ids=[c[0] for c in DAMAGED_SETTINGS]
)
def test_llm_eval_refuses_damaged_saved_settings(assets, tmp_path, capsys, content, named):
    exp = _experiment_folder(assets, tmp_path)
    saved = exp / "pairgrpo_experiment.json"
    saved.write_bytes(content) if isinstance(content, bytes) else saved.write_text(content)
    err = _refused(capsys, "llm", "eval", str(exp))
    assert named in err and not (exp / "llm_eval.json").exists()


def test_llm_eval_refuses_a_running_experiment_set_without_config_and_missing_checkpoints(
    assets, tmp_path, capsys
):
    import fcntl
    import os

    exp = _experiment_folder(assets, tmp_path)
    assert "--set" in _refused(capsys, "llm", "eval", str(exp), "--set", "evaluate.samples=1")
    fd = os.open(exp / ".pairgrpo.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running sweep holds it
        os.write(fd, b"4242")
        err = _refused(capsys, "llm", "eval", str(exp))
        assert "pid 4242" in err and "ended" in err
    finally:
        os.close(fd)
    for ckpt in exp.glob("*/checkpoint_*"):
        ckpt.rmdir()
    err = _refused(capsys, "llm", "eval", str(exp))
    assert "GRPO_seed0_00000: no checkpoint to evaluate" in err
    err = _refused(capsys, "llm", "eval", str(exp))  # the lock was released: the same line again
    assert "no checkpoint" in err
    (exp / "GRPO_seed0_00000" / "result.json").unlink()
    assert "no trial folders" in _refused(capsys, "llm", "eval", str(exp))
    assert not (exp / "llm_eval.json").exists()
