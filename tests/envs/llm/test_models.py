"""Models and tokenizers (envs/llm/models.py): the tiny model every loader reads, its chat
format, and model path errors that name the field."""

from __future__ import annotations

import pytest

from pairgrpo_rllib.envs.llm.models import (
    format_prompt,
    load_causal_lm,
    load_tokenizer,
    make_tiny,
)


def test_make_tiny_writes_a_model_every_loader_reads(assets, tmp_path):
    tok = load_tokenizer(assets["tiny"])
    model = load_causal_lm(assets["tiny"])
    cfg = model.config
    assert cfg.hidden_size // cfg.num_attention_heads >= 32  # what vLLM's CPU backend needs
    text = format_prompt(tok, "What color is the sky?")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte-level BPE round trip
    assert len(ids) < 16  # the corpus taught it the task's words
    with pytest.raises(ValueError, match="head_dim"):
        make_tiny(tmp_path / "bad", hidden_size=64, num_attention_heads=4)
    with pytest.raises(ValueError, match="not empty"):
        make_tiny(assets["root"] / "tiny")


def test_model_path_errors_name_the_field(assets, tmp_path):
    with pytest.raises(ValueError, match=r"model.name_or_path=.*no config.json"):
        load_causal_lm(str(tmp_path))
    with pytest.raises(ValueError, match="model.dtype"):
        load_causal_lm(assets["tiny"], dtype="int8")
