"""Tiny models for the judges' tests, made here (nothing is downloaded): an untrained causal LM and
a one-output sequence-classification model on the same backbone."""

import pytest


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> str:
    from pairgrpo_rllib.envs.llm.models import make_tiny

    return str(make_tiny(tmp_path_factory.mktemp("judges") / "tiny", seed=0))


@pytest.fixture(scope="session")
def tiny_rm(tiny_lm, tmp_path_factory) -> str:
    import torch
    from transformers import AutoModelForSequenceClassification

    from pairgrpo_rllib.envs.llm.models import load_tokenizer

    out = tmp_path_factory.mktemp("judges") / "rm"
    torch.manual_seed(0)  # the untrained head
    model = AutoModelForSequenceClassification.from_pretrained(tiny_lm, num_labels=1)
    model.save_pretrained(out)
    load_tokenizer(tiny_lm).save_pretrained(out)
    return str(out)
