"""``GroupAlgorithm``: the training step shared by the GRPO family (subclasses ``Algorithm``, not PPO).

One iteration: sample groups (env runners) -> scores -> ``prepare_batch`` (the algorithm's hook:
advantages, pairs, targets, computed here on the driver so that sharding never splits a group's
statistics) -> ``learner_group.update`` with the group batch (epochs and minibatches of whole groups)
-> sync weights -> every N iterations: evaluation and ``grad_cosine_vs_grpo``.

Run statistics (the stability table of Pair-GRPO §6.1.3): the gradient-norm variance over all optimizer steps so far and the
std of the per-iteration ``kl_ref``, kept in ``RunningMoments`` and saved with checkpoints.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    EPISODE_RETURN_MEAN,
    LEARNER_RESULTS,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
)

from pairgrpo_rllib.algorithms.common.config import GroupAlgorithmConfig
from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.advantages import (
    from_step_groups,
    group_advantages,
    kl_penalized_scores,
    reward_to_go,
    step_groups,
)
from pairgrpo_rllib.core.defaults import grpo_reference
from pairgrpo_rllib.core.diagnostics import RunningMoments
from pairgrpo_rllib.core.preferences import pairs_to_rows, preference_matrix, select_pairs
from pairgrpo_rllib.core.seeding import derive_seed
from pairgrpo_rllib.envs.group_batch import collate
from pairgrpo_rllib.envs.llm.weight_sync import make_weight_sync


class GroupAlgorithm(Algorithm):
    """Base of GRPO, Soft-Pair-GRPO, Hard-Pair-GRPO and PG-GRPO."""

    @classmethod
    def get_default_config(cls) -> GroupAlgorithmConfig:
        return GroupAlgorithmConfig(cls)

    @classmethod
    def default_resource_request(cls, config):
        """RLlib's bundles (driver, env runners, learners) and one per scorer actor: each rollout
        actor (or the driver's local runner when ``num_env_runners`` is 0) starts its reward-model
        pool (``judges.reward_model.RewardModelPool``) inside the trial's placement group, so the
        group must hold them, or the actors wait forever for resources the group lacks."""
        from ray.tune.execution.placement_groups import PlacementGroupFactory

        pgf = super().default_resource_request(config)
        config = cls.get_default_config().update_from_dict(config)  # as RLlib's: a checked copy
        config.validate()
        llm = config.llm
        if llm is None:
            return pgf
        specs = [llm.scorer] + ([llm.eval_scorer] if llm.eval_scorer != llm.scorer else [])
        per_runner = [
            {k: v for k, v in (("CPU", spec.num_cpus), ("GPU", spec.num_gpus)) if v}
            for spec in specs
            if spec is not None and spec.actors and (spec.num_cpus or spec.num_gpus)
            for _ in range(spec.actors)
        ]
        if not per_runner:
            return pgf
        bundles = pgf.bundles + per_runner * max(1, config.num_env_runners)
        return PlacementGroupFactory(bundles=bundles, strategy=config.placement_strategy)

    def setup(self, config):
        super().setup(config)
        self._grad_moments = RunningMoments()
        self._kl_moments = RunningMoments()
        self._last_eval: tuple[float, float] | None = None
        self.label_generator = torch.Generator().manual_seed(
            derive_seed(self.config.seed, self.config.sample_seed, "preference labels")
        )
        self._normalize_obs = bool((self.config.model_config or {}).get("normalize_obs"))
        # Groups drawn so far: the LLM runners map a group's number to its prompt and generation
        # seed, so a resumed run continues with the next prompts (saved with checkpoints).
        self._groups_drawn = 0
        # How the rollout actors get the learner's weights (envs/llm/weight_sync/): RLlib's object
        # store sync, or learner 0's broadcast (LLM runs with weight_sync: collective).
        self.weight_sync = make_weight_sync(self.config.llm.weight_sync if self.config.llm else None)

    # ---- hooks ---------------------------------------------------------------------------
    def prepare_batch(
        self, batch: dict, scores: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None
    ) -> None:
        """Add ``advantages`` (and anything else the learner needs) to ``batch`` in place.

        ``scores`` ``(M, G)`` are the scores of the comparison units: ``M = N`` whole members
        (``credit="sequence"``) or ``M = N * T`` suffixes, one group per (group, time index) in the
        order of ``advantages.step_groups`` (``credit="step"``). ``labels`` are the oracle's
        ``(M, G, G)`` preferences of this iteration (drawn once, so that pair algorithms and the
        ``pair_accuracy`` diagnostic see the same noisy labels); ``valid`` ``(M, G)`` marks the
        units that exist (a member that ended before step t has no suffix there).
        The hook writes ``batch[ADVANTAGES]`` as ``(M, G)``; the base reshapes it for the learner.
        GRPO: group-relative advantages of the scores (``advantages.group_advantages``).
        """
        batch[names.ADVANTAGES] = self.grpo_advantages(scores, valid).numpy().astype(np.float32)

    def grpo_advantages(
        self, scores: torch.Tensor, valid: torch.Tensor | None = None, norm: str | None = None
    ) -> torch.Tensor:
        """GRPO's advantages over the valid members of each group (invalid ones get 0); ``norm``
        defaults to this config's ``advantage_norm``."""
        norm = norm or self.config.advantage_norm
        if valid is None or bool(valid.all()):
            return group_advantages(scores, norm)
        ids = torch.arange(scores.shape[0]).unsqueeze(-1).expand_as(scores)
        out = torch.zeros_like(scores)
        out[valid] = group_advantages(scores[valid], norm, group_ids=ids[valid])
        return out

    def preference_labels(self, scores: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """The oracle's labels ``(M, G, G)``: pair algorithms see these, never the scores.

        Pairs with a member that does not exist (``valid`` false) get no label.
        """
        cfg = self.config
        labels = preference_matrix(
            scores,
            cfg.preference_oracle,
            temperature=cfg.preference_temperature,
            generator=self.label_generator,
        )
        if valid is not None:
            labels = labels * (valid.unsqueeze(-1) & valid.unsqueeze(-2)).to(labels.dtype)
        return labels

    def comparison_units(self, batch: dict, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(unit_scores, valid)``, both ``(M, G)``: what the oracle and the advantages compare.

        ``credit="sequence"``: the members' scores (M = N). ``credit="step"``: each member's
        discounted reward-to-go at every time index (M = N * T), extended by the lookahead steps'
        return where ``lookahead`` > 0.
        """
        if self.config.credit != "step":
            return scores, torch.ones(scores.shape, dtype=torch.bool)
        mask = torch.as_tensor(batch[names.MASK]) > 0
        tail = batch.get(names.TAIL_RETURNS)
        rtg = reward_to_go(
            torch.as_tensor(batch[names.REWARDS]),
            mask,
            self.config.credit_gamma,
            None if tail is None else torch.as_tensor(tail),
        )
        return step_groups(rtg), step_groups(mask)

    # ---- the iteration -------------------------------------------------------------------
    OFFLINE = False  # True for the dataset-pair baselines (DPO, ORPO): no sampled log-probs

    def sample_method(self) -> str:
        """The runner method that yields this algorithm's training data, called as
        ``method(n, first=k)`` on the local runner and on every remote one alike: ``sample_groups``
        (``n`` groups numbered from ``first``), or ``sample_pairs`` (``n`` of the data set's pairs,
        each a group of two) for ``pair_source='dataset'`` and the offline baselines. A name, not a
        bound method: it travels to remote runners without the algorithm."""
        return "sample_pairs" if self.config.pair_source == "dataset" else "sample_groups"

    def _sample(self) -> dict:
        """This iteration's groups: from the local runner, or shared out over the remote runners.

        A remote runner that dies mid-call (``restart_failed_env_runners``, RLlib's default) returns
        nothing: its share is sampled again from the runners still healthy, so that a batch always
        holds the configured number of groups; RLlib restarts the dead runner before the next
        iteration. With no healthy runner left the iteration fails with a clear error.
        """
        cfg = self.config
        n_groups = cfg.groups_per_iteration()
        runners = self.env_runner_group
        first = self._groups_drawn  # the run's number of the first group asked for now
        self._groups_drawn += n_groups
        method = self.sample_method()
        if runners.num_remote_env_runners() == 0:
            return getattr(runners.local_env_runner, method)(n_groups, first=first)
        parts: list[dict] = []
        missing = n_groups
        for _ in range(3):
            healthy = list(runners.healthy_worker_ids())
            if not healthy:
                break
            share, start = {}, first + n_groups - missing
            for i, w in enumerate(healthy):
                k = missing // len(healthy) + (1 if i < missing % len(healthy) else 0)
                share[w], start = (k, start), start + k
            ids = [w for w, (k, _) in share.items() if k > 0]
            got = runners.foreach_env_runner(
                lambda r, share=share, method=method: getattr(r, method)(
                    share[r.worker_index][0], first=share[r.worker_index][1]
                ),
                local_env_runner=False,
                remote_worker_ids=ids,
            )
            parts += got
            missing = n_groups - sum(p[names.MASK].shape[0] for p in parts)
            if missing <= 0:
                break
        if missing > 0:
            raise RuntimeError(
                f"only {n_groups - missing} of {n_groups} groups could be sampled: env runners kept failing "
                f"(healthy now: {runners.num_healthy_remote_workers()} of {runners.num_remote_env_runners()}); "
                "see the env runner logs"
            )
        returns = np.concatenate([p.pop(names.EPISODE_RETURNS) for p in parts])
        steps = sum(p.pop(names.ENV_STEPS) for p in parts)
        truncated = [p.pop(names.TRUNCATED_RESPONSES) for p in parts if names.TRUNCATED_RESPONSES in p]
        out = collate(parts)
        out[names.EPISODE_RETURNS], out[names.ENV_STEPS] = returns, steps
        if truncated:
            out[names.TRUNCATED_RESPONSES] = sum(truncated)
        return out

    def training_step(self) -> None:
        cfg = self.config
        clock = time.perf_counter()
        batch = self._sample()
        self.metrics.log_value(names.TIME_SAMPLE_S, time.perf_counter() - clock, window=1)
        episode_returns = batch.pop(names.EPISODE_RETURNS)
        env_steps = int(batch.pop(names.ENV_STEPS))
        if names.TRUNCATED_RESPONSES in batch:
            self.metrics.log_value(
                names.TRUNCATED_RESPONSES, int(batch.pop(names.TRUNCATED_RESPONSES)), window=1
            )
        self.metrics.log_value(
            (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), env_steps, reduce="lifetime_sum"
        )
        for ret in episode_returns:
            self.metrics.log_value((ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN), float(ret), window=100)

        cosine_due = bool(cfg.grad_cosine_every) and self.iteration % cfg.grad_cosine_every == 0
        dataset_pairs = cfg.pair_source == "dataset" and not self.OFFLINE
        if dataset_pairs:
            # pi_old of the data set's responses: the learner's log-probs as the iteration begins
            batch[names.ACTION_LOGP] = self._learner_logp(batch).astype(np.float32)
        batch = self.learner_batch(batch, with_grpo_advantages=cosine_due)
        if cfg.is_llm and not self.OFFLINE and not dataset_pairs:
            self._sampler_agreement(batch)

        if cosine_due:
            cos = self.on_learners(lambda lrn: lrn.grad_cosine_vs_grpo(batch))
            self.metrics.log_value(names.GRAD_COSINE_VS_GRPO, float(np.mean(cos)), window=1)
            batch.pop(names.GRPO_ADVANTAGES)

        n_groups = batch[names.MASK].shape[0]
        clock = time.perf_counter()
        learner_results = self.learner_group.update(
            batch=MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(batch)}, env_steps=env_steps),
            timesteps={
                NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                    (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0
                )
            },
            num_epochs=cfg.num_epochs,
            minibatch_size=cfg.minibatch_size or n_groups,
            shuffle_batch_per_epoch=True,
        )
        self.metrics.log_value(names.TIME_UPDATE_S, time.perf_counter() - clock, window=1)
        self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)
        self.metrics.log_value(
            NUM_ENV_STEPS_TRAINED_LIFETIME, env_steps * cfg.num_epochs, reduce="lifetime_sum"
        )
        self._update_run_statistics(learner_results)
        if not self.OFFLINE:  # offline pairs carry no pi_old
            kl_moved = self.on_learners(lambda lrn: lrn.kl_new_old(batch))
            self.metrics.log_value(names.KL_NEW_OLD, float(np.mean(kl_moved)), window=1)
        if self._normalize_obs:
            self._update_obs_stats(batch)
        clock = time.perf_counter()
        self.weight_sync.sync(self)
        self.metrics.log_value(names.TIME_WEIGHT_SYNC_S, time.perf_counter() - clock, window=1)
        if cfg.eval_interval and (self.iteration + 1) % cfg.eval_interval == 0:
            self._last_eval = (
                float(np.mean(self.evaluate_groups())),
                self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0),
            )
        if self._last_eval is not None:
            # Repeated every iteration (a NaN-free curve); EVALUATION_STEPS says when it was measured.
            self.metrics.log_value(names.EVALUATION_RETURN, self._last_eval[0], window=1)
            self.metrics.log_value(names.EVALUATION_STEPS, self._last_eval[1], window=1)

    def on_learners(self, fn) -> list:
        """``fn(learner)`` on every learner, as plain values (remote learners' results resolved)."""
        return [r.get() if hasattr(r, "get") else r for r in self.learner_group.foreach_learner(fn)]

    def _learner_logp(self, batch: dict) -> np.ndarray:
        """The learner's log-probs of the batch's tokens with the current weights, ``(N, G, T)``."""
        return self.on_learners(lambda lrn: lrn.recompute_logp(batch))[0]

    def _sampler_agreement(self, batch: dict) -> None:
        """LLM runs: the learner recomputes pi_old's log-probs of the sampled tokens; the per-sequence
        ratio ``exp(sum_t logp_learner - logp_sampler)`` is logged (min / mean / max), and with
        ``tis_cap`` the learner's values become pi_old and the truncated per-token weights
        ``min(exp(logp_learner - logp_sampler), cap)`` multiply the surrogate."""
        learner = self._learner_logp(batch)
        mask = batch[names.MASK] > 0
        diff = np.where(mask, learner - batch[names.ACTION_LOGP], 0.0)
        seq_ratio = np.exp(diff.sum(-1))[mask.any(-1)]
        if seq_ratio.size:
            self.metrics.log_value(names.SAMPLER_RATIO_MIN, float(seq_ratio.min()), window=1)
            self.metrics.log_value(names.SAMPLER_RATIO_MEAN, float(seq_ratio.mean()), window=1)
            self.metrics.log_value(names.SAMPLER_RATIO_MAX, float(seq_ratio.max()), window=1)
        if self.config.tis_cap is not None:
            batch[names.LEARNER_OLD_LOGP] = learner.astype(np.float32)
            batch[names.IS_WEIGHTS] = np.where(
                mask, np.minimum(np.exp(diff), self.config.tis_cap), 0.0
            ).astype(np.float32)

    def learner_batch(self, batch: dict, with_grpo_advantages: bool = False) -> dict:
        """The sampled groups -> the learner's batch: scores, oracle labels, the algorithm's
        ``prepare_batch`` (advantages, pairs, targets), all on the driver before any sharding.

        ``with_grpo_advantages`` adds GRPO's advantages of the same units (for the grad cosine).
        """
        cfg = self.config
        scores = torch.as_tensor(batch[names.SCORES], dtype=torch.float64)
        if cfg.kl_in_reward:
            scores = self._kl_penalized(batch, scores)
            batch[names.SCORES] = scores.numpy().astype(np.float32)
        unit_scores, valid = self.comparison_units(batch, scores)
        if names.LABELS in batch:  # a pairwise scorer labelled the groups (LLM runs): its labels
            labels = torch.as_tensor(batch[names.LABELS], dtype=unit_scores.dtype)
        else:
            labels = self.preference_labels(unit_scores, valid)
        n, g = scores.shape
        # pair_accuracy compares whole members: the labels of the first unit of each group
        # (in step mode the suffixes from t = 0, i.e. the whole members).
        pairs = select_pairs(labels.reshape(n, -1, g, g)[:, 0], "all")
        batch[names.PAIRS] = pairs_to_rows(pairs, n, max(1, g * (g - 1) // 2)).numpy()
        self.prepare_batch(batch, unit_scores, labels, valid)
        batch[names.ADVANTAGES] = self._per_learner_advantages(batch[names.ADVANTAGES], n)
        if with_grpo_advantages:
            # the reference of grad_cosine_vs_grpo is GRPO with GRPO's defaults (its own norm)
            norm = grpo_reference(self.config.ALGORITHM).get("advantage_norm", self.config.advantage_norm)
            batch[names.GRPO_ADVANTAGES] = self._per_learner_advantages(
                self.grpo_advantages(unit_scores, valid, norm).numpy().astype(np.float32), n
            )
        for key in names.DRIVER_ONLY:
            batch.pop(key, None)
        return batch

    def _update_obs_stats(self, batch: dict) -> None:
        """Observation moments of this batch's real steps, merged into every learner's normaliser
        (after the update, so sampling and learning within an iteration used the same statistics)."""
        obs = batch[names.OBS][batch[names.MASK] > 0].astype(np.float64)
        if not len(obs):
            return
        count, mean = float(len(obs)), obs.mean(axis=0)
        m2 = ((obs - mean) ** 2).sum(axis=0)
        self.learner_group.foreach_learner(lambda lrn: lrn.update_obs_stats(count, mean, m2))

    def _per_learner_advantages(self, adv: np.ndarray, n: int) -> np.ndarray:
        """``(M, G)`` unit advantages -> ``(N, G)`` per member or ``(N, G, T)`` per step."""
        if self.config.credit != "step":
            return adv
        return from_step_groups(torch.as_tensor(adv), n).numpy()

    def _kl_penalized(self, batch: dict, scores: torch.Tensor) -> torch.Tensor:
        """Option ``kl_in_reward``: ``r_i - beta * sum_t (log pi_old - log pi_ref)`` before advantages."""
        ref = self.on_learners(lambda lrn: lrn.ref_action_logp(batch))[0]
        n, g, t = batch[names.MASK].shape
        flat = lambda x: torch.as_tensor(x, dtype=torch.float64).reshape(n * g, t)  # noqa: E731
        penalized = kl_penalized_scores(
            scores.reshape(-1),
            flat(batch[names.ACTION_LOGP]),
            flat(ref),
            flat(batch[names.MASK]) > 0,
            self.config.kl_coeff,
        )
        return penalized.reshape(n, g)

    def _update_run_statistics(self, learner_results) -> None:
        for res in learner_results:
            mod = res.get(DEFAULT_MODULE_ID, {})
            count = _peek(mod.get(names.GRAD_NORM_COUNT))
            if count:
                total, sq = _peek(mod.get(names.GRAD_NORM_SUM)), _peek(mod.get(names.GRAD_NORM_SQSUM))
                self._grad_moments.merge(RunningMoments.from_sums(count, total, sq))
            kl = _peek(mod.get(names.KL_REF))
            if kl is not None:
                self._kl_moments.update(kl)
        self.metrics.log_value(names.GRAD_NORM_VAR, self._grad_moments.var(), window=1)
        mean = self._grad_moments.mean
        self.metrics.log_value(
            names.GRAD_NORM_CV, self._grad_moments.std() / mean if mean > 0 else float("nan"), window=1
        )
        self.metrics.log_value(names.KL_REF_STD, self._kl_moments.std(), window=1)
        kl_mean = self._kl_moments.mean
        self.metrics.log_value(
            names.KL_REF_CV, self._kl_moments.std() / kl_mean if kl_mean > 0 else float("nan"), window=1
        )

    def evaluate_groups(self) -> list[float]:
        """Deterministic full-length episodes on the local env runner (weights just synced)."""
        self.weight_sync.refresh_local_runner(self)
        return self.env_runner_group.local_env_runner.evaluate(self.config.eval_episodes)

    # ---- checkpoints: the run statistics travel with the algorithm state --------------------
    def get_state(self, *args, **kwargs):
        state = super().get_state(*args, **kwargs)
        state["pairgrpo_run_statistics"] = {
            "grad": self._grad_moments.state_dict(),
            "kl": self._kl_moments.state_dict(),
            "groups_drawn": self._groups_drawn,
        }
        return state

    def set_state(self, state) -> None:
        stats = state.get("pairgrpo_run_statistics")
        if stats:
            self._grad_moments = RunningMoments.from_state_dict(stats["grad"])
            self._kl_moments = RunningMoments.from_state_dict(stats["kl"])
            self._groups_drawn = int(stats.get("groups_drawn", 0))
        super().set_state(state)


def _peek(value):
    """A learner-result leaf as a float (results may hold Stats objects or plain numbers)."""
    if value is None:
        return None
    if hasattr(value, "peek"):
        value = value.peek()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
