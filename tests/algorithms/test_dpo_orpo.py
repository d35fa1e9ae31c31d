"""The offline pair baselines (algorithms/dpo, algorithms/orpo, algorithms/common/offline_pairs.py):
they train on the data set's pairs with their own loss and reject what does not apply."""

from __future__ import annotations

import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from pairgrpo_rllib.algorithms.registry import algorithm_config
from pairgrpo_rllib.core import names
from pairgrpo_rllib.envs.llm import data as D


@pytest.mark.parametrize("name", ["DPO", "ORPO"])
def test_pair_baselines_train_on_the_datasets_pairs_with_their_own_loss(
    local_ray, assets, name, pair_config, learner_loss, learner_of
):
    from pairgrpo_rllib.core.losses import dpo_loss, orpo_loss, sequence_logp

    algo = pair_config(name, assets).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        batch = runner.sample_pairs(4, first=0)
        assert batch[names.ACTIONS].shape == (4, 2, 12) and batch[names.MASK][:, :, 0].all()
        messages, _, chosen_ids, _ = runner.pairs[runner._index(0, len(runner.pairs), "pair order")]
        got = runner.tokenizer.decode(
            batch[names.ACTIONS][0, 0][batch[names.MASK][0, 0] > 0], skip_special_tokens=True
        )
        rows = D.load_preferences(str(assets["task"] / "hh_rlhf_train.jsonl"))
        assert any(r["messages"] == messages and r["chosen"].startswith(got) for r in rows)
        loss, fwd, t = learner_loss(algo, batch)
        module = learner_of(algo).module[DEFAULT_MODULE_ID].unwrapped()
        logp = fwd[names.TOKEN_LOGP]
        mask = t[names.MASK].reshape(8, 12) > 0
        if name == "DPO":
            seq, ref = sequence_logp(logp, mask), sequence_logp(fwd[names.REF_TOKEN_LOGP], mask)
            want, _ = dpo_loss(seq[0::2], seq[1::2], ref[0::2], ref[1::2], beta=0.1)
        else:
            want, _ = orpo_loss(logp[0::2], mask[0::2], logp[1::2], mask[1::2], lam=0.1)
        assert torch.allclose(loss, want, atol=1e-6)
        before = {k: v.clone() for k, v in module.lm.state_dict().items()}
        res = algo.train()
        assert res["learners"][DEFAULT_MODULE_ID]["module_train_batch_size_mean"] == 4  # pairs per minibatch
        assert any(not torch.equal(before[k], v) for k, v in module.lm.state_dict().items())
        assert algo._groups_drawn == 8  # pairs are numbered like groups: a resumed run goes on
    finally:
        algo.stop()


def test_pair_baselines_reject_what_does_not_apply(assets, pair_config):
    cfg = pair_config("DPO", assets)
    cfg.env_config = {k: v for k, v in cfg.env_config.items() if k != "pairs"}  # environment() merges
    with pytest.raises(ValueError, match=r"env_config\.pairs"):
        cfg.validate()
    with pytest.raises(ValueError, match="group_size"):
        pair_config("ORPO", assets).training(group_size=4).validate()
    with pytest.raises(ValueError, match="dpo_beta"):
        pair_config("DPO", assets).training(dpo_beta=-1.0).validate()
    # a YAML shared with the GRPO family: DPO takes RLlib's settings and drops the family's
    opts = algorithm_config("DPO").experiment_section(
        "training", {"lr": 1e-4, "group_size": 8, "dpo_beta": 0.2}
    )
    assert opts == {"lr": 1e-4, "dpo_beta": 0.2}
