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
