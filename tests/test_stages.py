"""The preparation stages come from one table (``algorithms/stages.py``) under one name each: the
experiment YAML's ``prepare`` loader, the ``pairgrpo llm`` command and Tune all dispatch through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pairgrpo_rllib.algorithms import stages as S
from pairgrpo_rllib.app import prepare as P
from pairgrpo_rllib.app.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
JOB = {"model": "results/llm/tiny", "data": "results/llm/task/sft_train.jsonl", "output": "results/llm/x"}


def _item(stage: str) -> dict:
    return {stage: JOB if S.STAGES[stage].job else "results/llm/out"}


@pytest.mark.parametrize("stage", list(S.STAGES))
def test_every_stage_is_read_by_the_yaml_loader_and_the_cli(stage, tmp_path):
    (st,) = P.normalize([_item(stage)], tmp_path)
    assert st["stage"] == stage and st["output"] == (
        "results/llm/x" if S.STAGES[stage].job else "results/llm/out"
    )
    args = build_parser().parse_args(["llm", S.cli_name(stage), "target"])
    assert S.CLI_NAMES[args.action] == stage


def test_job_stages_are_the_tune_trainables():
    from ray.tune.registry import get_trainable_cls

    from pairgrpo_rllib.algorithms.registry import register_with_tune

    register_with_tune()
    for stage, st in S.STAGES.items():
        if st.job:
            assert get_trainable_cls(S.trainable_name(stage)) is not None
    assert S.trainable_name("reward_model") == "pairgrpo-reward-model"  # documented in docs/llm.md


@pytest.mark.parametrize(("key", "near"), [("reward-model", "reward_model"), ("make_tinny", "make_tiny")])
def test_an_unknown_stage_gets_the_nearest_name(key, near, tmp_path):
    with pytest.raises(P.PrepareError, match=re.escape(f"(did you mean {near!r}?)")):
        P.normalize([{key: "results/llm/out"}], tmp_path)


def test_stage_options_are_checked_from_the_table(tmp_path):
    with pytest.raises(P.PrepareError, match=r"prepare\[0\]\.train=2 is invalid: use an integer in \[3, "):
        P.normalize([{"make_task": "out", "train": 2}], tmp_path)
    with pytest.raises(P.PrepareError, match=r"prepare\[0\]\.lr=.*make_tiny takes seed"):
        P.normalize([{"make_tiny": "out", "lr": 1}], tmp_path)
    with pytest.raises(P.PrepareError, match=r"prepare\[0\]\.seed=.*sft takes no other key"):
        P.normalize([{"sft": JOB, "seed": 1}], tmp_path)
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["llm", "make-task", "out", "--train", "2"])
    assert (
        parser.parse_args(["llm", "make-task", "out"]).train == S.STAGES["make_task"].options["train"].default
    )


def test_the_shipped_yamls_and_the_cli_use_one_spelling_each():
    for path in sorted((REPO / "tune_configs").glob("*.yaml")):
        for item in yaml.safe_load(path.read_text()).get("prepare") or []:
            assert set(item) & set(S.STAGES), (path.name, item)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["llm", "reward_model", "job.yaml"])  # the YAML's spelling is not the CLI's


def test_no_stage_name_is_spelled_by_hand_outside_the_table():
    """The derived spellings (command line, Tune) appear in no source file as literals."""
    derived = {S.cli_name(s) for s in S.STAGES} | {S.trainable_name(s) for s in S.STAGES if S.STAGES[s].job}
    derived -= set(S.STAGES)  # "sft" is spelled alike everywhere
    pattern = re.compile("|".join(rf"[\"']{re.escape(n)}[\"']" for n in derived))
    for folder in ("pairgrpo_rllib", "algorithms", "envs"):
        for path in (REPO / folder).rglob("*.py"):
            hit = pattern.search(path.read_text())
            assert hit is None, (
                f"{path.relative_to(REPO)} spells {hit.group()} by hand; use algorithms.stages"
            )


def test_promised_outputs_and_done_follow_the_table(tmp_path):
    stages = P.normalize([{"make_task": str(tmp_path / "task")}, _item("sft")], tmp_path)
    promised = P.promised_outputs(stages)
    assert str(tmp_path / "task" / "sft_train.jsonl") in promised and "results/llm/x" in promised
    assert not S.done("make_task", str(tmp_path / "task"))
    (tmp_path / "task").mkdir()
    for f in S.TASK_FILES:
        (tmp_path / "task" / f).write_text("")
    assert S.done("make_task", str(tmp_path / "task"))


# ---- failing stages: one line, the right exit code, nothing half-written or left behind -----------------
def _run_main(capsys, *argv) -> tuple[int, str]:
    import ray

    from pairgrpo_rllib.app.cli import main

    with pytest.raises(SystemExit) as info:
        code = main(list(argv))
        raise SystemExit(code)
    err = capsys.readouterr().err.strip()
    # ours: the last line; before it only progress (the stages' own lines, transformers' bars)
    ours = [line for line in err.splitlines() if line.startswith(("pairgrpo", "[llm]", "[sweep]"))]
    assert len(ours) == 1 and err.splitlines()[-1] == ours[0] and "Traceback" not in err, err
    assert not ray.is_initialized(), "Ray was started"
    return info.value.code, ours[0]


def _disk_full(output, **options):
    """``make_task`` that runs out of space after its first file."""
    out = Path(output)
    out.mkdir(parents=True)
    (out / S.TASK_FILES[0]).write_text("{}\n")
    raise OSError(28, "No space left on device")


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name], list(folder.iterdir())


def test_a_failing_directory_stage_leaves_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(S, "write", _disk_full)
    code, line = _run_main(capsys, "llm", "make-task", str(tmp_path / "task"))
    assert code == 1 and "make-task failed: OSError" in line and "No space left" in line
    assert not (tmp_path / "task").exists()
    _no_leftovers(tmp_path)


def test_a_failing_job_is_one_line_and_writes_no_model(assets, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    good = (assets["task"] / "sft_train.jsonl").read_text().splitlines()[:4]
    bad.write_text("\n".join([*good, '{"text": "no prompt"}']) + "\n")
    job = {
        "model": {"name_or_path": assets["tiny"]},
        "data": {"path": str(bad)},
        "training": {"epochs": 1, "batch_size": 2, "max_length": 48},
        "output": str(tmp_path / "sft"),
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    code, line = _run_main(capsys, "llm", "sft", str(tmp_path / "job.yaml"))
    assert code == 2 and "bad.jsonl" in line and "row" in line
    assert not (tmp_path / "sft").exists()
    _no_leftovers(tmp_path)


def _llm_experiment(assets, tmp_path) -> Path:
    from pairgrpo_rllib.core import names

    task = tmp_path / "made" / "task"
    spec = {
        "name": "prep",
        "algorithm": "GRPO",
        "seeds": [0],
        "stop": {"iterations": 1},
        "prepare": [{"make_task": str(task)}],
        "environment": {
            "env": names.LLM_ENV,
            "env_config": {
                "prompts": {"path": str(task / "sft_train.jsonl")},
                "scorer": {"kind": "truth"},
                "max_prompt_tokens": 24,
                "max_new_tokens": 12,
            },
        },
        "rl_module": {"model_config": {"name_or_path": assets["tiny"]}},
        "env_runners": {"num_env_runners": 0},
        "training": {"group_size": 2, "train_batch_size_per_learner": 2 * 12 * 2, "minibatch_size": 2},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("error", "code", "named"),
    [
        (OSError(28, "No space left on device"), 1, "prepare[0] (make_task"),
        (RuntimeError("CUDA out of memory"), 1, "out of memory"),
        (ValueError("task.jsonl row 7: 'prompt' must be a string"), 2, "row 7"),
    ],
    ids=["disk-full", "out-of-memory", "bad-row"],
)
def test_a_failing_prepare_stage_leaves_no_results_folder_or_lock(
    assets, tmp_path, capsys, monkeypatch, error, code, named
):
    def fail(output, **options):
        Path(output).mkdir(parents=True)
        (Path(output) / S.TASK_FILES[0]).write_text("{}\n")
        raise error

    monkeypatch.setattr(S, "write", fail)
    out = tmp_path / "results"
    got, line = _run_main(capsys, "sweep", str(_llm_experiment(assets, tmp_path)), "--output", str(out))
    assert got == code and named in line, line
    assert not out.exists(), list(out.rglob("*"))
    assert not (tmp_path / "made" / "task").exists()
    _no_leftovers(tmp_path / "made")
    # the lock is gone with the folder: the same command runs again (and fails the same way)
    assert _run_main(capsys, "sweep", str(_llm_experiment(assets, tmp_path)), "--output", str(out))[0] == code
