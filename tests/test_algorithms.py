"""Glue contracts of the RLlib algorithms (STYLE habit 6), on a real local Ray and real MuJoCo."""

from __future__ import annotations

import numpy as np
import pytest
import ray
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from pairgrpo_rllib.algorithms.registry import ALGORITHMS, algorithm_class
from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.advantages import group_advantages, reward_to_go
from pairgrpo_rllib.core.contract import GroupTensors
from pairgrpo_rllib.core.distributions import action_logp, analytic_kl
from pairgrpo_rllib.core.hard_pair import (
    delta_schedule,
    group_shares,
    hard_pair_loss,
    hard_pair_targets,
    unit_logp,
)
from pairgrpo_rllib.core.kl import kl_penalty
from pairgrpo_rllib.core.losses import grpo_loss, pg_grpo_loss
from pairgrpo_rllib.core.preferences import pairwise_advantages, rows_to_pairs, select_pairs
from pairgrpo_rllib.envs.group_runner import GroupEnvRunner, make_env, restore, snapshot

FAMILY = ("GRPO", "Soft-Pair-GRPO", "Hard-Pair-GRPO", "PG-GRPO")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def small_config(name: str, mode: str = "branch", **training):
    opts = dict(
        group_size=4,
        group_mode=mode,
        num_epochs=2,
        eval_interval=0,
        grad_cosine_every=0,
        kl_estimator="analytic",
    )
    if mode == "branch":
        opts.update(segment_length=20, train_batch_size_per_learner=160)
    else:
        opts.update(train_batch_size_per_learner=4 * 1000)
    opts.update(training)
    return (
        algorithm_class(name)
        .get_default_config()
        .environment("HalfCheetah-v4")
        .env_runners(env_runner_cls=GroupEnvRunner, num_env_runners=0)
        .training(**opts)
        .debugging(seed=0)
    )


def _learner(algo):
    return algo.learner_group._learner


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---- validate() rejects bad configurations, naming the field ----------------------------------


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({"group_size": 1}, "group_size"),
        ({"group_size": 2.5}, "group_size"),
        ({"kl_coeff": -0.1}, "kl_coeff"),
        ({"clip_low": 1.0}, "clip_low"),
        ({"clip_high": 0.0}, "clip_high"),
        ({"kl_estimator": "k4"}, "kl_estimator"),
        ({"advantage_norm": "zscore"}, "advantage_norm"),
        ({"loss_agg": "sum"}, "loss_agg"),
        ({"pairs": "some"}, "pairs"),
        ({"preference_oracle": "human"}, "preference_oracle"),
        ({"preference_temperature": 0.0}, "preference_temperature"),
        ({"group_mode": "fork"}, "group_mode"),
        ({"segment_length": 5000}, "segment_length"),
        ({"segment_length": None, "group_mode": "branch"}, "segment_length"),
        ({"train_batch_size_per_learner": 150}, "train_batch_size_per_learner"),
        ({"minibatch_size": 3}, "minibatch_size"),
        ({"delta0": 0.0}, "delta0"),
        ({"delta_gamma": 1.5}, "delta_gamma"),
        ({"trust_region_beta": -1.0}, "trust_region_beta"),
        ({"beta_pg": 0.0}, "beta_pg"),
        ({"eval_interval": -1}, "eval_interval"),
        ({"credit": "token"}, "credit"),
        ({"credit_gamma": 0.0}, "credit_gamma"),
        ({"credit_gamma": 1.5}, "credit_gamma"),
        ({"credit": "step", "kl_in_reward": True}, "kl_in_reward"),
        ({"credit": "step", "lookahead": -1}, "lookahead"),
        ({"credit": "step", "lookahead": 2.5}, "lookahead"),
        ({"credit": "sequence", "lookahead": 10}, "lookahead"),  # only extends per-step credit
    ],
)
def test_validate_rejects_bad_values_naming_the_field(training, field):
    cfg = small_config("GRPO", **training)
    with pytest.raises(ValueError, match=field):
        cfg.validate()


def test_default_configs_validate_and_differ_where_the_papers_say():
    for name in FAMILY:
        small_config(name).validate()
    assert algorithm_class("Hard-Pair-GRPO").get_default_config().pairs == "best_worst"
    assert algorithm_class("Hard-Pair-GRPO").get_default_config().kl_coeff == 0.0
    assert algorithm_class("PG-GRPO").get_default_config().advantage_norm == "mean"
    assert algorithm_class("Soft-Pair-GRPO").get_default_config().pairs == "all"
    with pytest.raises(ValueError, match="unknown"):
        algorithm_class("DAPO")


def test_registered_with_tune_under_the_exact_names():
    from ray.tune.registry import get_trainable_cls

    from pairgrpo_rllib.algorithms.registry import register_with_tune

    register_with_tune()
    for name in ALGORITHMS:
        assert get_trainable_cls(name) is algorithm_class(name)


# ---- env runner facts ---------------------------------------------------------------------------


def test_replay_from_a_snapshot_is_bit_exact():
    cfg = small_config("GRPO")
    a, b = make_env(cfg), make_env(cfg)
    a.reset(seed=3)
    b.reset(seed=99)
    rng = np.random.default_rng(0)
    for _ in range(17):
        a.step(rng.uniform(-1, 1, 6))
    snap = snapshot(a)
    obs_b = restore(b, snap)
    actions = rng.uniform(-1, 1, (25, 6))
    traj_a = [a.step(x)[0] for x in actions]
    traj_b = [b.step(x)[0] for x in actions]
    assert np.array_equal(np.asarray(a.unwrapped._get_obs()), np.asarray(traj_a[-1]))
    assert np.array_equal(np.stack(traj_a), np.stack(traj_b))
    assert obs_b.shape == (17,)


@pytest.mark.parametrize("mode", ["reset", "branch"])
def test_group_members_share_the_start_state_bit_exactly(local_ray, mode):
    algo = small_config("GRPO", mode=mode).build_algo()
    try:
        batch = algo.env_runner_group.local_env_runner.sample_groups(2)
        obs = batch[names.OBS]  # (N, G, T, obs)
        n, g = obs.shape[:2]
        assert (n, g) == (2, 4)
        for i in range(n):
            for j in range(1, g):
                assert np.array_equal(obs[i, 0, 0], obs[i, j, 0])
            assert not np.array_equal(obs[i, 0, 1:3], obs[i, 1, 1:3])  # then they diverge
        t = 20 if mode == "branch" else 1000
        assert batch[names.MASK].shape == (2, 4, t) and batch[names.MASK].all()
        assert batch["env_steps"] == 2 * 4 * t
        assert np.allclose(batch[names.SCORES], batch[names.REWARDS].sum(-1))
        if mode == "branch":
            # the trunk continues from member 0: the next group starts where member 0 ended
            nxt = algo.env_runner_group.local_env_runner.sample_groups(1)
            runner = algo.env_runner_group.local_env_runner
            assert runner._trunk_obs is not None
            assert nxt[names.OBS].shape[:2] == (1, 4)
    finally:
        algo.stop()


# ---- learner contracts -----------------------------------------------------------------------------


LOSS_CASES = [
    ("GRPO", {}),
    ("GRPO", {"kl_anchor": "old", "clip_high": 0.28}),
    ("Soft-Pair-GRPO", {}),
    ("PG-GRPO", {"clip_low": 0.1, "clip_high": 0.3}),
    ("Hard-Pair-GRPO", {}),
    # the optional penalty to pi_ref: always pi_ref (not the anchor), by the configured estimator
    ("Hard-Pair-GRPO", {"kl_coeff": 0.1, "kl_anchor": "old"}),
]


@pytest.mark.parametrize(("name", "options"), LOSS_CASES)
def test_learner_loss_equals_the_pure_function(local_ray, name, options):
    """Through the learner contract (GroupTensors), each algorithm's loss is its pure function of
    tensors recomputed here from the raw batch (sampled estimator k3, so no analytic shortcut)."""
    algo = small_config(name, kl_estimator="k3", **options).build_algo()
    try:
        cfg = algo.config
        algo.train()  # so that pi_theta = pi_old no longer equals pi_ref
        batch = algo._sample()
        batch.pop(names.EPISODE_RETURNS)
        batch.pop(names.ENV_STEPS)
        scores = torch.as_tensor(batch[names.SCORES], dtype=torch.float64)
        labels = algo.preference_labels(scores)
        algo.prepare_batch(batch, scores, labels)
        batch.pop(names.REWARDS)
        learner = _learner(algo)
        tb = {k: torch.as_tensor(v) for k, v in batch.items()}
        module = learner.module[DEFAULT_MODULE_ID]
        fwd = module.forward_train(tb)
        t = learner.group_tensors(DEFAULT_MODULE_ID, tb, fwd)
        assert isinstance(t, GroupTensors) and t.logp.shape == (t.n_groups * t.group_size, t.max_len)
        got = learner.compute_loss_for_module(module_id=DEFAULT_MODULE_ID, config=cfg, batch=tb, fwd_out=fwd)

        n, g, steps = tb[names.MASK].shape
        inputs = fwd[Columns.ACTION_DIST_INPUTS].reshape(n * g, steps, -1)
        ref_inputs = module.ref_actor(tb[names.OBS]).reshape(n * g, steps, -1)
        old_inputs = tb[names.OLD_DIST_INPUTS].reshape(n * g, steps, -1)
        actions = tb[Columns.ACTIONS].reshape(n * g, steps, -1)
        logp = action_logp(inputs, actions, True)
        ref_logp = action_logp(ref_inputs, actions, True)
        old = tb[names.ACTION_LOGP].reshape(n * g, steps)
        mask = tb[names.MASK].reshape(n * g, steps).bool()
        anchor = ref_logp if cfg.kl_anchor == "ref" else old
        common = dict(log_ratio_clamp=20.0, loss_agg="seq_mean_token_mean", max_len=steps)
        if name == "Hard-Pair-GRPO":
            shares = group_shares(unit_logp(logp, mask, n, g, "sequence", True))
            pairs = select_pairs(labels, "best_worst")  # deterministic labels: no random tie-break here
            old_shares = group_shares(unit_logp(old.double(), mask, n, g, "sequence", True))
            target, _ = hard_pair_targets(old_shares, pairs, delta_schedule(algo.iteration))
            stored = rows_to_pairs(tb[names.HARD_PAIRS].flatten(0, 1))
            assert torch.equal(stored, pairs)
            tr = analytic_kl(inputs, old_inputs, True)
            real = lambda x: torch.where(mask, x, torch.zeros_like(x))  # noqa: E731
            ref_kl = (
                kl_penalty(real(logp), real(ref_logp), "k3", log_ratio_clamp=20.0) * mask
            ).sum() / mask.sum()
            want, _ = hard_pair_loss(
                shares,
                target.float(),
                pairs[:, 0],
                trust_region_kl=(tr * mask).sum() / mask.sum(),
                alpha=0.5,
                beta_tr=0.01,
                ref_kl=ref_kl,
                kl_coeff=options.get("kl_coeff", 0.0),
            )
        else:
            if name == "Soft-Pair-GRPO":
                adv = pairwise_advantages(labels, "all")[0].to(torch.float32).reshape(-1)
            else:
                adv = group_advantages(scores, cfg.advantage_norm).to(torch.float32).reshape(-1)
            assert torch.allclose(tb[names.ADVANTAGES].reshape(-1), adv)
            if name == "PG-GRPO":
                want, _ = pg_grpo_loss(
                    logp, old, anchor, adv, mask, beta_pg=0.1, w1=0.04, clip_low=0.1, clip_high=0.3, **common
                )
            else:
                want, _ = grpo_loss(
                    logp,
                    old,
                    anchor,
                    adv,
                    mask,
                    beta=0.04,
                    kl_estimator="k3",
                    clip_high=options.get("clip_high", 0.2),
                    **common,
                )
        assert torch.allclose(got, want, atol=1e-6), (float(got), float(want))
        assert not torch.allclose(ref_logp[mask], old[mask], atol=1e-3)  # the anchors differ
        # old log-probs recorded by the runner are those of the current weights (first epoch: ratio 1)
        assert torch.allclose(logp[mask], old[mask], atol=1e-4)
    finally:
        algo.stop()


def test_group_tensors_reject_inconsistent_shapes():
    b, steps = 6, 5
    x = torch.zeros(b, steps)
    ok = dict(n_groups=3, group_size=2, logp=x, old_logp=x, ref_logp=x, mask=x > -1, adv=torch.zeros(b))
    GroupTensors(**ok)
    for bad, field in (
        ({"group_size": 3}, "logp"),
        ({"old_logp": torch.zeros(b, steps + 1)}, "old_logp"),
        ({"adv": torch.zeros(b + 1)}, "adv"),
        ({"hard_pairs": torch.zeros(1, 3, dtype=torch.long)}, "hard_pairs"),
        (
            {"hard_pairs": torch.zeros(1, 3, dtype=torch.long), "target_logp": torch.zeros(1, 3)},
            "target_logp",
        ),
    ):
        with pytest.raises(ValueError, match=field):
            GroupTensors(**{**ok, **bad})


def _learner_batch(algo):
    batch = algo._sample()
    batch.pop(names.EPISODE_RETURNS)
    batch.pop(names.ENV_STEPS)
    rewards, mask = batch[names.REWARDS].copy(), batch[names.MASK].copy()
    return algo.learner_batch(batch, with_grpo_advantages=True), rewards, mask


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_step_credit_compares_reward_to_go_at_each_time_index(local_ray, gamma):
    algo = small_config("GRPO", credit="step", credit_gamma=gamma).build_algo()
    try:
        batch, rewards, mask = _learner_batch(algo)
        adv = batch[names.ADVANTAGES]
        n, g, t = mask.shape
        assert adv.shape == (n, g, t) and names.REWARDS not in batch
        rtg = reward_to_go(torch.as_tensor(rewards), torch.as_tensor(mask) > 0, gamma)
        for i in range(n):
            for step in (0, 7, t - 1):
                want = group_advantages(rtg[i, :, step][None]).reshape(-1).float()
                assert torch.allclose(torch.as_tensor(adv[i, :, step]), want, atol=1e-5)
        # GRPO's own advantages for the grad cosine are the same numbers
        assert np.allclose(batch[names.GRPO_ADVANTAGES], adv)
    finally:
        algo.stop()


def test_lookahead_extends_the_reward_to_go_past_the_segment_and_trains_only_its_steps(local_ray):
    """Members run H + L steps; the first H are the batch, the L steps' discounted return is the tail
    of their reward-to-go; the trunk continues from member 0 at step H; all H + L steps are counted."""
    h, look, gamma = 20, 10, 0.9
    longer = small_config(
        "GRPO",
        credit="step",
        credit_gamma=gamma,
        segment_length=h + look,
        train_batch_size_per_learner=4 * (h + look),
    ).build_algo()
    cut = small_config("GRPO", credit="step", credit_gamma=gamma, lookahead=look).build_algo()
    try:
        a = longer.env_runner_group.local_env_runner.sample_groups(1)
        runner = cut.env_runner_group.local_env_runner
        b = runner.sample_groups(1)
        # same seed, same noise stream: b is a's first H steps, bit for bit
        assert b[names.MASK].shape == (1, 4, h)
        for key in (names.OBS, names.ACTIONS, names.REWARDS):
            assert np.array_equal(b[key], a[key][:, :, :h]), key
        want_tail = reward_to_go(torch.as_tensor(a[names.REWARDS][..., h:]), torch.ones(1, 4, look), gamma)[
            ..., 0
        ]
        assert np.allclose(b[names.TAIL_RETURNS], want_tail.numpy(), rtol=1e-6)
        assert b[names.ENV_STEPS] == 4 * (h + look)
        # the trunk goes on from member 0's state at step H, not H + L
        assert np.array_equal(runner._trunk_obs, a[names.OBS][0, 0, h])
        # the driver's per-step advantages use the extended reward-to-go; the tail stays on the driver
        b.pop(names.EPISODE_RETURNS)
        b.pop(names.ENV_STEPS)
        rewards, tail = b[names.REWARDS].copy(), b[names.TAIL_RETURNS].copy()
        batch = cut.learner_batch(b)
        assert names.TAIL_RETURNS not in batch
        rtg = reward_to_go(torch.as_tensor(rewards), torch.ones(1, 4, h), gamma, torch.as_tensor(tail))
        assert torch.allclose(
            rtg, reward_to_go(torch.as_tensor(a[names.REWARDS]), torch.ones(1, 4, h + look), gamma)[..., :h]
        )
        for step in (0, h - 1):
            want = group_advantages(rtg[0, :, step][None]).reshape(-1).float()
            assert torch.allclose(torch.as_tensor(batch[names.ADVANTAGES][0, :, step]), want, atol=1e-5)
        result = cut.train()
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] == 8 * (h + look)  # 2 groups
    finally:
        longer.stop()
        cut.stop()


def test_step_credit_soft_pair_sees_only_labels_and_hard_pair_fits_every_time_index(local_ray):
    soft = small_config("Soft-Pair-GRPO", credit="step").build_algo()
    hard = small_config("Hard-Pair-GRPO", credit="step").build_algo()
    try:
        batch, rewards, mask = _learner_batch(soft)
        rtg = reward_to_go(torch.as_tensor(rewards), torch.as_tensor(mask) > 0)
        n, g, t = mask.shape
        for step in (0, t // 2):
            r = rtg[0, :, step]
            wins = (torch.sign(r[:, None] - r[None, :])).sum(-1) / (g - 1)
            assert torch.allclose(torch.as_tensor(batch[names.ADVANTAGES][0, :, step]), wins.float())
        hb, _, _ = _learner_batch(hard)
        assert hb[names.HARD_PAIRS].shape == (n, t, g * (g - 1) // 2, 3)
        assert hb[names.TARGET_LOGP].shape == (n, t, g * (g - 1) // 2, g)
        assert (hb[names.HARD_PAIRS][..., 0].sum(-1) == 1).all()  # best_worst: one pair per unit
        result = hard.train()
        assert np.isfinite(result["learners"][DEFAULT_MODULE_ID]["fit_kl"])
    finally:
        soft.stop()
        hard.stop()


def test_obs_normaliser_merge_equals_the_moments_of_all_rows():
    from pairgrpo_rllib.algorithms.common.rl_module import ObsNormalizer

    gen = np.random.default_rng(0)
    parts = [gen.normal(3.0, 2.0, (k, 4)) for k in (5, 11, 2)]
    norm = ObsNormalizer(4)
    for x in parts:
        norm.merge(len(x), x.mean(0), ((x - x.mean(0)) ** 2).sum(0))
    rows = np.concatenate(parts)
    assert float(norm.count) == len(rows)
    assert np.allclose(norm.mean.numpy(), rows.mean(0)) and np.allclose(norm.var.numpy(), rows.var(0))
    z = norm(torch.as_tensor(rows, dtype=torch.float32)).numpy()
    assert np.allclose(z.mean(0), 0, atol=1e-5) and np.allclose(z.std(0), 1, atol=1e-3)


def test_normalize_obs_statistics_follow_the_batches_and_reach_the_runner(local_ray):
    algo = (
        small_config("GRPO", kl_estimator="k3").rl_module(model_config={"normalize_obs": True}).build_algo()
    )
    try:
        module = _learner(algo).module[DEFAULT_MODULE_ID]
        runner_module = algo.env_runner_group.local_env_runner.module
        assert float(module.obs_norm.count) == 0
        algo.train()
        assert float(module.obs_norm.count) == 160  # every real step of the first batch
        assert float(module.obs_norm.var.min()) > 0 and not torch.allclose(
            module.obs_norm.mean, torch.zeros_like(module.obs_norm.mean)
        )
        for key in ("count", "mean", "var"):  # the weight sync passes through float32
            assert torch.allclose(
                getattr(runner_module.obs_norm, key), getattr(module.obs_norm, key), rtol=1e-6
            )
        # The next batch was sampled with the merged statistics: the learner reproduces its log-probs.
        batch, _, _ = _learner_batch(algo)
        tb = {k: torch.as_tensor(v) for k, v in batch.items()}
        fwd = module.forward_train(tb)
        n, g, t = tb[names.MASK].shape
        logp = action_logp(fwd[Columns.ACTION_DIST_INPUTS], tb[Columns.ACTIONS], True)
        assert torch.allclose(logp, tb[names.ACTION_LOGP], atol=1e-4)
    finally:
        algo.stop()


def test_analytic_kl_is_zero_at_the_reference_and_positive_after_training(local_ray):
    algo = small_config("GRPO").build_algo()
    try:
        module = _learner(algo).module[DEFAULT_MODULE_ID]
        obs = torch.randn(5, 17)
        assert torch.allclose(analytic_kl(module.actor(obs), module.ref_actor(obs), True), torch.zeros(5))
        algo.train()
        assert (analytic_kl(module.actor(obs), module.ref_actor(obs), True) > 0).all()
    finally:
        algo.stop()


@pytest.mark.parametrize("credit", ["sequence", "step"])
@pytest.mark.parametrize("name", FAMILY)
def test_one_iteration_changes_the_policy_not_the_reference(local_ray, name, credit):
    algo = small_config(name, grad_cosine_every=1, credit=credit).build_algo()
    try:
        module = _learner(algo).module[DEFAULT_MODULE_ID]
        actor0, ref0 = _weights(module.actor), _weights(module.ref_actor)
        runner_module = algo.env_runner_group.local_env_runner.module
        assert not hasattr(runner_module, "ref_actor"), "the reference must never reach env runners"
        result = algo.train()
        actor1, ref1 = _weights(module.actor), _weights(module.ref_actor)
        assert any(not torch.equal(actor0[k], actor1[k]) for k in actor0)
        assert all(torch.equal(ref0[k], ref1[k]) for k in ref0)
        # env runners got the new weights
        for k, v in _weights(runner_module.actor).items():
            assert torch.equal(v, actor1[k])
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] == 160
        stats = result["learners"][DEFAULT_MODULE_ID]
        for key in ("grad_norm", "kl_ref", "entropy", "pair_accuracy"):
            assert np.isfinite(stats[key]), key
        assert np.isfinite(result["grad_cosine_vs_grpo"])
        if name == "GRPO":
            assert result["grad_cosine_vs_grpo"] == pytest.approx(1.0, abs=1e-5)
        if name == "Hard-Pair-GRPO":
            assert result["delta_t"] == pytest.approx(0.02)
            assert "fit_kl" in stats and "trust_region_kl" in stats
    finally:
        algo.stop()


def test_soft_pair_with_g2_has_grpo_gradient(local_ray):
    # Theorem 1 / spec: for G = 2 pairwise advantages equal GRPO's, so the gradients coincide.
    algo = small_config(
        "Soft-Pair-GRPO", group_size=2, train_batch_size_per_learner=80, grad_cosine_every=1
    ).build_algo()
    try:
        result = algo.train()
        assert result["grad_cosine_vs_grpo"] == pytest.approx(1.0, abs=1e-5)
    finally:
        algo.stop()


def test_step_counters_and_evaluation(local_ray):
    algo = small_config("GRPO", eval_interval=2, eval_episodes=1).build_algo()
    try:
        r1 = algo.train()
        r2 = algo.train()
        assert r1["env_runners"]["num_env_steps_sampled_lifetime"] == 160
        assert r2["env_runners"]["num_env_steps_sampled_lifetime"] == 320
        assert "evaluation_return_mean" not in r1 or not np.isfinite(r1.get("evaluation_return_mean", np.nan))
        assert np.isfinite(r2["evaluation_return_mean"]) and r2["evaluation_env_steps"] == 320
        assert r2["grad_norm_var"] >= 0 and np.isfinite(r2["kl_ref_std"])
    finally:
        algo.stop()


def test_kl_in_reward_moves_the_penalty_into_the_scores(local_ray):
    algo = small_config("GRPO", kl_in_reward=True, kl_coeff=0.5).build_algo()
    try:
        algo.train()  # move the policy away from the reference
        batch = algo._sample()
        scores = torch.as_tensor(batch[names.SCORES], dtype=torch.float64)
        penalized = algo._kl_penalized(batch, scores)
        ref = [
            r.get() if hasattr(r, "get") else r
            for r in algo.learner_group.foreach_learner(lambda lrn: lrn.ref_action_logp(batch))
        ][0]
        k1 = ((batch[names.ACTION_LOGP] - ref) * batch[names.MASK]).sum(-1)
        assert np.allclose(penalized.numpy(), batch[names.SCORES] - 0.5 * k1, atol=1e-4)
        assert not np.allclose(penalized.numpy(), batch[names.SCORES])
        # the loss then carries no KL term (beta = 0 in grpo_loss)
        res = algo.train()
        assert np.isfinite(res["learners"][DEFAULT_MODULE_ID]["loss"])
    finally:
        algo.stop()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["GRPO", "Hard-Pair-GRPO"])
def test_two_learners_train_on_whole_groups_and_stay_in_sync(name):
    if ray.is_initialized():  # the module's 2-CPU instance: two learner actors need more slots
        ray.shutdown()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        algo = small_config(name).learners(num_learners=2).build_algo()
        try:
            result = algo.train()
            # each learner gets train_batch_size_per_learner: 2 x 160 steps per iteration
            assert result["env_runners"]["num_env_steps_sampled_lifetime"] == 320
            assert np.isfinite(result["learners"][DEFAULT_MODULE_ID]["loss"])

            def actor_vector(lrn):
                module = lrn.module[DEFAULT_MODULE_ID].unwrapped()
                return torch.cat([p.detach().reshape(-1) for p in module.actor.parameters()]).numpy()

            vectors = [r.get() for r in algo.learner_group.foreach_learner(actor_vector)]
            assert len(vectors) == 2 and np.array_equal(vectors[0], vectors[1])
        finally:
            algo.stop()
    finally:
        ray.shutdown()


# ---- short seeded learning tests (STYLE habit 7): InvertedPendulum-v4, the comparison's settings ---


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "iterations", "threshold", "extra", "seeds"),
    [
        # measured (seed 0): GRPO and Soft-Pair reach 1000 (the maximum) by iteration 20; Hard-Pair
        # 70 at 20 and 129 at 40 (delta_t caps its step). PG-GRPO runs with beta_pg = 1: with its
        # default 0.1 the preference ratio scales every gradient by 0.1 and it plateaus at 37-48 within
        # 60 iterations here (lr 1e-3 or 1e-2), too close to the start (28) for a test that could fail
        # for the right reason; with beta_pg = 1 it reaches 1000 by iteration 20.
        ("GRPO", 25, 500.0, {}, (0,)),
        ("Soft-Pair-GRPO", 25, 500.0, {}, (0,)),
        # Hard-Pair's slow climb is where float kernels show (issue 18): seed 0 at iteration 40 gave 213
        # with torch's avx2/avx512 kernels here, 106 with the default ones, 76 on another Xeon (below the
        # old one-seed threshold of 80). Judged on the mean of 3 seeds at 20 iterations (1.5x the old
        # run time): seeds 0-2 gave 78, 51, 81 under all three kernel sets here (2026-12-07), seed 3
        # 110 (avx2, avx512) or 1000 (default); from 78, 51, 81, 110 a seed-to-seed sd of 24, so the
        # 3-seed mean (70) has an sd of about 14; the threshold sits 1.8 of those below it and 1.6x
        # above the start (27-28).
        ("Hard-Pair-GRPO", 20, 45.0, {}, (0, 1, 2)),
        ("PG-GRPO", 25, 500.0, {"beta_pg": 1.0}, (0,)),
    ],
)
def test_short_seeded_learning_on_inverted_pendulum(local_ray, name, iterations, threshold, extra, seeds):
    befores, afters = [], []
    for seed in seeds:
        cfg = (
            algorithm_class(name)
            .get_default_config()
            .environment("InvertedPendulum-v4")
            .env_runners(env_runner_cls=GroupEnvRunner, num_env_runners=0)
            .rl_module(model_config={"fcnet_hiddens": [32, 32], "normalize_obs": True})
            .training(
                group_size=4,
                group_mode="branch",
                segment_length=25,
                train_batch_size_per_learner=1000,
                num_epochs=5,
                minibatch_size=2,
                lr=1e-3,
                credit="step",
                credit_gamma=0.98,
                kl_anchor="old",
                kl_estimator="analytic",  # as the MuJoCo configs (ours; k3 is the family default)
                eval_interval=0,
                grad_cosine_every=0,
                **extra,
            )
            .debugging(seed=seed)
        )
        algo = cfg.build_algo()
        try:
            runner = algo.env_runner_group.local_env_runner
            befores.append(float(np.mean(runner.evaluate(3))))
            for _ in range(iterations):
                algo.train()
            afters.append(float(np.mean(runner.evaluate(3))))
        finally:
            algo.stop()
    before, after = float(np.mean(befores)), float(np.mean(afters))
    assert after >= threshold and after > 1.4 * before, (befores, afters)


def test_evaluation_does_not_shift_the_sampling_stream(local_ray):
    # Two runners from the same seed: one evaluates in between, the other does not; their next
    # groups must be identical (else eval_episodes would change the training run).
    a = small_config("GRPO").build_algo()
    b = small_config("GRPO").build_algo()
    try:
        ra, rb = a.env_runner_group.local_env_runner, b.env_runner_group.local_env_runner
        ra.sample_groups(1)
        rb.sample_groups(1)
        ra.evaluate(1)
        ga, gb = ra.sample_groups(1), rb.sample_groups(1)
        assert np.array_equal(ga[names.ACTIONS], gb[names.ACTIONS])
    finally:
        a.stop()
        b.stop()


# ---- a study's trials: independent seeds, per-iteration statistics -----------------------------


def _first_batch(seed: int, mode: str):
    algo = small_config("GRPO", mode=mode).debugging(seed=seed).build_algo()
    try:
        batch = algo._sample()
        labels = algo.label_generator.initial_seed()
        weights = _weights(_learner(algo).module[DEFAULT_MODULE_ID])
        return batch, labels, weights
    finally:
        algo.stop()


def test_every_random_stream_of_a_trial_derives_from_its_seed(local_ray):
    """Two seeds share no start state, action noise or label stream; one seed reproduces exactly."""
    a, labels_a, weights_a = _first_batch(0, "branch")
    b, labels_b, weights_b = _first_batch(1, "branch")
    again, labels_again, weights_again = _first_batch(0, "branch")
    assert not np.allclose(a[names.OBS][:, 0, 0], b[names.OBS][:, 0, 0])  # start states
    assert not np.allclose(a[names.ACTIONS], b[names.ACTIONS])
    assert labels_a != labels_b
    assert any(not torch.equal(weights_a[k], weights_b[k]) for k in weights_a)  # initial weights
    for key in (names.OBS, names.ACTIONS, names.ACTION_LOGP, names.REWARDS):
        assert np.array_equal(a[key], again[key]), key
    assert labels_again == labels_a and all(torch.equal(weights_a[k], weights_again[k]) for k in weights_a)


def test_learner_statistics_are_per_iteration_means_and_the_move_is_measured(local_ray):
    # 2 groups per batch, minibatches of 1 group, 3 epochs: 6 optimizer steps an iteration
    algo = small_config("GRPO", num_epochs=3, minibatch_size=1).build_algo()
    try:
        for _ in range(2):
            result = algo.train()
            learner = result["learners"][DEFAULT_MODULE_ID]
            assert learner["num_minibatch_updates"] == 6  # counted per iteration, not cumulated
            assert result["kl_new_old"] > 0 and np.isfinite(result["kl_new_old"])
            assert np.isfinite(result["grad_norm_cv"]) and result["grad_norm_cv"] >= 0
    finally:
        algo.stop()


def test_grad_cosine_reference_is_grpo_with_grpos_defaults(local_ray):
    """PG-GRPO's own advantages are shift-only; the GRPO it is compared with normalises by the std."""
    algo = small_config("PG-GRPO").build_algo()
    try:
        batch = algo._sample()
        batch.pop(names.EPISODE_RETURNS)
        batch.pop(names.ENV_STEPS)
        scores = torch.as_tensor(batch[names.SCORES], dtype=torch.float64)
        out = algo.learner_batch(batch, with_grpo_advantages=True)
        assert np.allclose(out[names.ADVANTAGES], group_advantages(scores, "mean").numpy(), atol=1e-5)
        assert np.allclose(
            out[names.GRPO_ADVANTAGES], group_advantages(scores, "mean_std").numpy(), atol=1e-5
        )
    finally:
        algo.stop()
    from pairgrpo_rllib.core.defaults import grpo_reference

    assert grpo_reference("Hard-Pair-GRPO")["kl_coeff"] == 0.04
    assert grpo_reference("GRPO") == {} and grpo_reference("Soft-Pair-GRPO") == {"pairs": "all"}
