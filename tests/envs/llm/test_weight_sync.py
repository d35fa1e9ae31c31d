"""Weight sync to the rollout actors (envs/llm/weight_sync/): learner 0's collective broadcast and
the layout check its ends share."""

from __future__ import annotations

import pytest
from ray.rllib.core import DEFAULT_MODULE_ID

from pairgrpo_rllib.core import names


@pytest.mark.parametrize(
    ("engine", "lora"), [("transformers", False), ("vllm", False), ("transformers", True)]
)
def test_collective_weight_sync_feeds_remote_runners_the_learners_weights(
    local_ray, assets, engine, lora, llm_config, learner_of
):
    """weight_sync: collective: learner 0 broadcasts over gloo to two remote rollout actors; after
    each update the actors' trained tensors (with LoRA: the adapters) equal the learner's bit for
    bit, their samples' log-probs equal the learner's (fp32), and an actor that lost its group (as
    after a restart) makes the driver form a new one."""
    cfg = llm_config("GRPO", assets, lr=3e-3).env_runners(num_env_runners=2)
    if lora:
        cfg.rl_module(
            model_config={
                "name_or_path": assets["sft"],
                "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj"]},
            }
        )
    algo = cfg.environment(
        names.LLM_ENV, env_config={"engine": engine, "weight_sync": "collective"}
    ).build_algo()
    try:
        module = learner_of(algo).module[DEFAULT_MODULE_ID].unwrapped()

        def runner_checksums():
            return algo.env_runner_group.foreach_env_runner(
                lambda r: [float(p.detach().double().sum()) for _, p in r.module.trained_parameters()],
                local_env_runner=False,
            )

        start = runner_checksums()
        if lora:
            assert {k for k, _ in module.trained_parameters()} and all(
                ".lora_" in k for k, _ in module.trained_parameters()
            )
        for i in range(3):
            res = algo.train()
            mine = [float(p.detach().double().sum()) for _, p in module.trained_parameters()]
            theirs = runner_checksums()
            assert theirs[0] == theirs[1] == mine, i  # bit-exact copies on both actors
            assert theirs[0] != start[0]
            assert algo.weight_sync.epoch == 1  # formed once
            if i > 0:  # the samples of this iteration came from the previous update's broadcast
                for key in (names.SAMPLER_RATIO_MIN, names.SAMPLER_RATIO_MAX):
                    assert abs(res[key] - 1.0) < 1e-3, (key, res[key])
        # an actor without the current group (a restarted one) -> a new group, still in sync
        algo.env_runner_group.foreach_env_runner(
            lambda r: setattr(r, "_weight_group", None), local_env_runner=False, remote_worker_ids=[1]
        )
        algo.train()
        assert algo.weight_sync.epoch == 2
        mine = [float(p.detach().double().sum()) for _, p in module.trained_parameters()]
        assert runner_checksums() == [mine, mine]
        # the driver's runner (evaluation) is refreshed from the learner before it evaluates
        assert algo.weight_sync.local_runner_stale
        algo.evaluate_groups()
        local = algo.env_runner_group.local_env_runner.module
        assert [float(p.detach().double().sum()) for _, p in local.trained_parameters()] == mine
    finally:
        algo.stop()


def test_weight_layouts_must_match():
    from pairgrpo_rllib.envs.llm.settings import weight_sync_settings
    from pairgrpo_rllib.envs.llm.weight_sync.collective import check_layout

    a = [("lm.w", (2, 3), "torch.float32"), ("lm.b", (3,), "torch.float32")]
    check_layout(a, [list(x) for x in a], "actor 1")  # a layout that travelled as lists
    with pytest.raises(ValueError, match=r"actor 1 has \('lm.b', \[4\]"):
        check_layout([a[0], ("lm.b", (4,), "torch.float32")], a, "actor 1")
    with pytest.raises(ValueError, match="1 trained tensors, the learner 2"):
        check_layout(a[:1], a, "actor 1")
    assert weight_sync_settings(None).mode == "object_store"
    assert weight_sync_settings({"mode": "collective", "backend": "gloo"}).timeout_s == 600
    with pytest.raises(ValueError, match="weight_sync.timeout_s"):
        weight_sync_settings({"mode": "collective", "timeout_s": 0})
