"""Inputs checked whole before Ray (issue 18): a model folder (envs/llm/models.py ``check_model_folder``:
config.json, tokenizer, LoRA targets) and every line of a local data file (envs/llm/settings.py
``check_data_file``), through the config's ``validate()`` and the jobs' ``job_settings``. Each case
asserts one line naming the field and the value, and that Ray was not started."""

from __future__ import annotations

import json
import shutil

import pytest

from pairgrpo_rllib.core import names

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)


def _one_line_error(call, field: str, text: str) -> str:
    import ray

    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{field}="), msg
    assert " is invalid: " in msg and text in msg, msg
    assert not ray.is_initialized()
    return msg


def _model_copy(assets, tmp_path, change: str):
    """A copy of the SFT model with one defect (``change``)."""
    d = tmp_path / "model"
    shutil.copytree(assets["sft"], d)
    cfg = json.loads((d / "config.json").read_text())
    if change == "no_tokenizer":
        for f in TOKENIZER_FILES:
            (d / f).unlink(missing_ok=True)
    elif change == "config_empty":
        (d / "config.json").write_text("{}")
    elif change == "config_no_model_type":
        cfg.pop("model_type")
        (d / "config.json").write_text(json.dumps(cfg))
    elif change == "config_corrupt":
        (d / "config.json").write_text('{"model_type": "qwen2",\n  "vocab_size": 5')
    elif change == "vocab_larger":
        (d / "config.json").write_text(json.dumps({**cfg, "vocab_size": 100}))
    elif change == "tiny_vocab":
        from tokenizers import Tokenizer, models
        from transformers import PreTrainedTokenizerFast

        for f in TOKENIZER_FILES:
            (d / f).unlink(missing_ok=True)
        core = Tokenizer(models.WordLevel({"<|endoftext|>": 0}, unk_token="<|endoftext|>"))
        PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>").save_pretrained(d)
    elif change == "no_eos":
        tc = json.loads((d / "tokenizer_config.json").read_text())
        (d / "tokenizer_config.json").write_text(json.dumps({**tc, "eos_token": None, "pad_token": None}))
    return str(d)


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ("no_tokenizer", "no tokenizer files there"),
        ("tiny_vocab", "its tokenizer has 1 token(s)"),
        ("vocab_larger", "more than the model's vocab_size 100"),
        ("no_eos", "no eos_token"),
        ("config_empty", "config.json has no model_type"),
        ("config_no_model_type", "config.json has no model_type"),
        ("config_corrupt", "config.json is not readable JSON (line 2"),
    ],
)
def test_a_bad_model_folder_is_refused_before_ray(assets, tmp_path, llm_config, change, text):
    path = _model_copy(assets, tmp_path, change)
    cfg = llm_config("GRPO", assets).rl_module(model_config={"name_or_path": path})
    msg = _one_line_error(cfg.validate, "model_config.name_or_path", text)
    assert repr(path) in msg


@pytest.mark.parametrize("where", ["scorer", "sft_job", "reward_model_job"])
def test_judges_and_jobs_check_their_model_folders(assets, tmp_path, llm_config, where):
    from pairgrpo_rllib.algorithms.common.hf_training import job_settings

    path = _model_copy(assets, tmp_path, "no_tokenizer")
    if where == "scorer":
        cfg = llm_config("GRPO", assets)
        cfg.env_config = {**cfg.env_config, "scorer": {"kind": "reward_model", "path": path}}
        _one_line_error(cfg.validate, "env_config.scorer.path", "no tokenizer files there")
        return
    job = {
        "model": {"name_or_path": path},
        "data": {"path": str(assets["task"] / "hh_rlhf_train.jsonl")},
        "output": str(tmp_path / "out"),
    }
    stage = "sft" if where == "sft_job" else "reward_model"
    _one_line_error(lambda: job_settings(job, stage), "model.name_or_path", "no tokenizer files there")


def test_lora_targets_that_match_no_module_are_refused_with_the_names(assets, llm_config):
    pytest.importorskip("peft")
    cfg = llm_config("GRPO", assets)
    cfg.rl_module(
        model_config={"name_or_path": assets["sft"], "lora": {"target_modules": ["q_proj", "query"]}}
    )
    msg = _one_line_error(cfg.validate, "model_config.lora.target_modules", "['query'] match no module")
    assert "q_proj" in msg.split("its module names:")[1]
    cfg.rl_module(
        model_config={"name_or_path": assets["sft"], "lora": {"target_modules": ["q_proj", "v_proj"]}}
    )
    cfg.validate()


GOOD = {"prompt": "What color is plum?"}


def _write(path, lines: list[bytes]):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


def _j(row) -> bytes:
    return json.dumps(row).encode()


@pytest.mark.parametrize(
    ("key", "lines", "field", "text"),
    [
        (
            "prompts",
            [_j(GOOD)] * 3 + [_j({"question": "q"})],
            "env_config.prompts.path",
            "line 4: column 'prompt' is missing",
        ),
        (
            "prompts",
            [_j(GOOD)] * 400 + [b'{"prompt": "caf\xe9"}'],
            "env_config.prompts.path",
            "line 401, byte 16: not UTF-8",
        ),
        ("prompts", [_j(GOOD), b'{"prompt": "x"'], "env_config.prompts.path", "line 2: not JSON"),
        ("prompts", [_j(GOOD), b"[1, 2]"], "env_config.prompts.path", "line 2: a row must be a JSON object"),
        (
            "prompts",
            [_j(GOOD), _j({"prompt": ""})],
            "env_config.prompts.path",
            "line 2: column 'prompt' must be a non-empty string",
        ),
        (
            "eval_prompts",
            [_j(GOOD), _j({"prompt": 3})],
            "env_config.eval_prompts.path",
            "line 2: column 'prompt'",
        ),
        ("prompts", [_j({"prompt": "word " * 200})] * 3, "env_config.max_prompt_tokens", "every prompt of"),
    ],
)
def test_every_line_of_a_data_file_is_checked_before_ray(
    assets, tmp_path, llm_config, key, lines, field, text
):
    path = _write(tmp_path / "data.jsonl", lines)
    cfg = llm_config("GRPO", assets)
    cfg.env_config = {**cfg.env_config, key: {"path": path}}
    msg = _one_line_error(cfg.validate, field, text)
    assert path in msg


def test_some_prompts_too_long_are_kept_as_before(assets, tmp_path, llm_config):
    """Only when no prompt fits is the file refused; otherwise the runner drops and counts them."""
    path = _write(tmp_path / "data.jsonl", [_j({"prompt": "word " * 200}), _j(GOOD)])
    cfg = llm_config("GRPO", assets)
    cfg.env_config = {**cfg.env_config, "prompts": {"path": path}}
    cfg.validate()


def test_pairs_must_differ_and_have_their_columns(assets, tmp_path, pair_config):
    rows = [json.loads(x) for x in (assets["task"] / "hh_rlhf_train.jsonl").read_text().splitlines()[:3]]
    same = {**rows[2], "rejected": rows[2]["chosen"]}
    path = _write(tmp_path / "pairs.jsonl", [_j(r) for r in rows[:2]] + [_j(same)])
    cfg = pair_config("DPO", assets)
    cfg.env_config = {**cfg.env_config, "pairs": {"path": path}}
    _one_line_error(
        cfg.validate, "env_config.pairs.path", "line 3: chosen and rejected are the same response"
    )
    broken = {"chosen": rows[0]["chosen"]}  # no rejected
    path = _write(tmp_path / "pairs2.jsonl", [_j(rows[0]), _j(broken)])
    cfg.env_config = {**cfg.env_config, "pairs": {"path": path}}
    _one_line_error(cfg.validate, "env_config.pairs.path", "line 2: column 'rejected' is missing")
    path = _write(tmp_path / "pairs3.jsonl", [_j(GOOD)])  # prompts only: no pairs to train on
    cfg.env_config = {**cfg.env_config, "pairs": {"path": path}}
    _one_line_error(cfg.validate, "env_config.pairs.path", "fit no schema")


@pytest.mark.parametrize(("stage", "ok"), [("reward_model", False), ("sft", True)])
def test_the_reward_model_job_refuses_a_file_of_prompts(assets, tmp_path, stage, ok):
    from pairgrpo_rllib.algorithms.common.hf_training import job_settings

    job = {
        "model": {"name_or_path": assets["tiny"]},
        "data": {"path": str(assets["task"] / "sft_train.jsonl")},  # prompt, response: no pairs
        "output": str(tmp_path / "out"),
    }
    if ok:
        job_settings(job, stage)
    else:
        _one_line_error(lambda: job_settings(job, stage), "data.path", "fit no schema")
    bad = _write(tmp_path / "sft.jsonl", [_j({"prompt": "a", "response": "b"}), _j({"prompt": "a"})])
    job["data"] = {"path": bad}
    text = "line 2: column 'response' is missing" if ok else "fit no schema"
    _one_line_error(lambda: job_settings(job, stage), "data.path", text)


def llm_yaml(assets, *, prompts, scorer) -> dict:
    """A one-iteration LLM experiment on the assets (G 2, local rollout actor)."""
    return {
        "name": "small",
        "algorithm": ["GRPO"],
        "seeds": [0],
        "stop": {"iterations": 1},
        "environment": {
            "env": names.LLM_ENV,
            "env_config": {
                "prompts": {"path": prompts},
                "scorer": scorer,
                "max_prompt_tokens": 24,
                "max_new_tokens": 8,
            },
        },
        "rl_module": {"model_config": {"name_or_path": assets["sft"]}},
        "env_runners": {"num_env_runners": 0},
        "training": {
            "group_size": 2,
            "train_batch_size_per_learner": 2 * 2 * 8,
            "minibatch_size": 1,
            "num_epochs": 1,
            "eval_interval": 0,
            "grad_cosine_every": 0,
        },
    }


def test_an_llm_sweep_with_a_bad_data_line_never_starts_ray(assets, tmp_path):
    """The command: exit 2, one line, no local Ray instance started."""
    import subprocess
    import sys

    import yaml

    bad = _write(tmp_path / "p.jsonl", [_j(GOOD)] * 5 + [_j({"question": "q"})])
    exp = llm_yaml(assets, prompts=bad, scorer={"kind": "truth"})
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(exp))
    out = subprocess.run(
        [sys.executable, "-m", "pairgrpo_rllib", "sweep", str(tmp_path / "x.yaml"), "--output", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "line 6: column 'prompt' is missing" in text and "env_config.prompts.path=" in text, text
    assert "Started a local Ray instance" not in text
