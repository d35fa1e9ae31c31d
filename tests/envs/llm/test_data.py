"""Data loaders (envs/llm/data.py): the public schemas, parquet and json files, hh-rlhf transcripts,
and bad data files that fail naming the file and columns."""

from __future__ import annotations

import json

import pytest

from pairgrpo_rllib.envs.llm import data as D


def test_the_three_schemas_load_to_the_same_pairs(assets):
    t = assets["task"]
    hh = D.load_preferences(str(t / "hh_rlhf_train.jsonl"))
    ufb = D.load_preferences(str(t / "ultrafeedback_binarized_train_prefs.jsonl"))
    uf = D.load_preferences(str(t / "ultrafeedback_train.jsonl"))
    assert len(hh) == len(ufb) == 1500 and 0 < len(uf) <= 1500
    assert hh == ufb
    assert {r["messages"][-1]["content"] for r in uf} <= {r["messages"][-1]["content"] for r in hh}
    # openbmb's construction: the best-rated completion against a lower-rated one
    for r in uf[:20]:
        assert r["chosen"] != r["rejected"]
    prompts = D.load_prompts(str(t / "eval_prompts.jsonl"))
    assert len(prompts) == 150 and prompts[0][0]["role"] == "user"


def test_parquet_and_json_files_load_like_jsonl(assets, tmp_path):
    from datasets import Dataset

    src = assets["task"] / "ultrafeedback_binarized_test_prefs.jsonl"
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "prefs.parquet"))
    (tmp_path / "prefs.json").write_text(json.dumps(rows))
    want = D.load_preferences(str(src))
    assert D.load_preferences(str(tmp_path / "prefs.parquet")) == want
    assert D.load_preferences(str(tmp_path / "prefs.json")) == want
    assert D.load_preferences(str(tmp_path / "prefs.parquet"), limit=5) == want[:5]


def test_hh_transcripts_split_into_turns_and_the_prompt_is_the_common_prefix(tmp_path):
    row = {
        "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: What color is coal?\n\nAssistant: black",
        "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: What color is coal?\n\nAssistant: red",
    }
    got = D.hh_row(row, 0, "x")
    assert got["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "What color is coal?"},
    ]
    assert (got["chosen"], got["rejected"]) == ("black", "red")
    with pytest.raises(D.DataError, match="share the prompt"):
        D.hh_row({"chosen": row["chosen"], "rejected": "\n\nHuman: other\n\nAssistant: red"}, 3, "x")


def test_bad_data_files_fail_naming_the_file_and_columns(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(D.DataError, match=r"fit no known schema"):
        D.load_preferences(str(bad))
    with pytest.raises(D.DataError, match="no such file"):
        D.load_preferences(str(tmp_path / "missing.jsonl"))
    with pytest.raises(D.DataError, match="lacks column"):
        D.load_preferences(str(bad), schema="hh")
