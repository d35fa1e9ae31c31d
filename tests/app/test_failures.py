"""The pieces of a run's failure and recovery path that need no Ray (issue 18): the causes named
with their numbers, cut log lines dropped before a resume, why a checkpoint is not complete, atomic
writes that leave nothing behind. The end-to-end cases are in tests/test_faults.py."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from pairgrpo_rllib.app import runner
from pairgrpo_rllib.app.files import (
    MANIFEST,
    checkpoint_problem,
    complete_checkpoints,
    drop_cut_lines,
    write_manifest,
    write_text_atomically,
)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            f"OSError: [Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}",
            "no space left on device (OSError errno ENOSPC; now ",
        ),
        ("ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.", "now "),
        (
            "ActorDiedError: ... Memory on the node (IP: 10.0.0.1, ID: ab) was 3.10GB used / 3.20GB limit (0.97)",
            "(3.10 GB used of a 3.20 GB limit, as Ray reported)",
        ),
        ("RuntimeError: something else", None),
    ],
)
def test_the_known_causes_are_named_with_their_numbers(tmp_path, text, says):
    cause = runner._cause(text, tmp_path)
    if says is None:
        assert cause is None
    else:
        assert says in cause, cause
        if "ENOSPC" in says:
            assert " GB free of " in cause and str(tmp_path) in cause
        elif "Ray reported" not in says:
            assert "GB used of" in cause and "on this machine" in cause  # psutil's numbers


def test_failure_message_survives_empty_error_files(tmp_path):
    failed = [runner._Outcome({}, "(error.txt empty or unreadable)", str(tmp_path / "t"))]
    message = runner._failure_message(tmp_path, failed, 2, {"max_failures": 1})
    assert message.startswith("1 of 2 trial(s) failed after max_failures=1 retries; first error: ")
    assert "\n" not in message


def test_cut_lines_are_dropped_and_whole_files_left_alone(tmp_path):
    trial = tmp_path / "GRPO_seed0"
    trial.mkdir()
    (trial / "result.json").write_text('{"training_iteration": 1}\n{"training_iteration": 2, "cu')
    (trial / "progress.csv").write_text("a,b\n1,2\n")
    assert drop_cut_lines(tmp_path) == [trial / "result.json"]
    assert (trial / "result.json").read_text() == '{"training_iteration": 1}\n'
    assert (trial / "progress.csv").read_text() == "a,b\n1,2\n"


def test_checkpoint_problem_names_why(tmp_path):
    c = tmp_path / "checkpoint_000001"
    (c / "sub").mkdir(parents=True)
    (c / "sub" / "state.pkl").write_bytes(b"x" * 10)
    assert checkpoint_problem(c) == f"its {MANIFEST} is missing"
    write_manifest(c)
    assert checkpoint_problem(c) is None and complete_checkpoints(tmp_path) == [c]
    (c / "sub" / "state.pkl").write_bytes(b"x" * 4)
    assert checkpoint_problem(c) == "sub/state.pkl has 4 bytes, not the 10 of the manifest"
    (c / "sub" / "state.pkl").unlink()
    assert checkpoint_problem(c) == "sub/state.pkl is missing"
    (c / MANIFEST).write_text('{"files": ')
    assert checkpoint_problem(c) == f"its {MANIFEST} is damaged"
    assert checkpoint_problem(tmp_path / "checkpoint_000009") == "it is gone"
    assert complete_checkpoints(tmp_path) == []


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    target.write_text("old\n")

    def full_disk(self, text, *args, **kwargs):  # half the text written, then the disk is full
        with open(self, "w") as f:
            f.write(text[:2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        write_text_atomically(target, "new\n")
    monkeypatch.undo()
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    write_text_atomically(target, json.dumps({"a": 1}))
    assert json.loads(target.read_text()) == {"a": 1}
