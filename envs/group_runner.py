"""``GroupEnvRunner``: groups of G trajectories that share a start state, for any gymnasium env.

Modes (config ``group_mode``):

``reset``
    A group is G whole episodes started with ``env.reset(seed=s)``, the same ``s`` for every member
    (a vector env's ``reset(seed=s)`` would give member i the seed ``s + i``; docs/rllib_notes.md).
``branch``
    A *trunk* episode runs on its own env. At each branch point its MuJoCo state is snapshotted
    (``mj_getState`` with ``mjSTATE_INTEGRATION``, plus the ``TimeLimit`` step counter) and restored
    into G member envs, which each run an H-step segment. The trunk then continues from member 0's
    end state: member 0 is chosen before any outcome is seen, so the chained trunk is an ordinary
    on-policy episode whose return is comparable with PPO's (logged as the training episode return).
    With ``lookahead`` L > 0 (ours) the members run L more steps after the trunk's snapshot at step H:
    their discounted return (``tail_returns``) extends the reward-to-go of the H trained steps, and
    their env steps count in the budget.

The runner keeps RLlib's ``SingleAgentEnvRunner`` for what the algorithm needs from it (module
construction, weight sync, state) and samples with its own G envs, calling the module directly.
Actions are sampled from the module's distribution with a seeded torch generator; the raw
(unclipped) Gaussian sample is recorded and trained on, the env receives it clipped to the bounds.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.distributions import action_logp
from pairgrpo_rllib.core.seeding import derive_seed
from pairgrpo_rllib.envs.group_batch import collate


def _time_limit(env: gym.Env):
    e = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, gym.wrappers.TimeLimit):
            return e
        e = e.env
    return None


def snapshot(env: gym.Env) -> tuple[np.ndarray, int]:
    """The full integration state of a MuJoCo env and its TimeLimit step counter."""
    import mujoco

    u = env.unwrapped
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(u.model, spec), dtype=np.float64)
    mujoco.mj_getState(u.model, u.data, state, spec)
    tl = _time_limit(env)
    # gymnasium keeps the step counter only in this attribute (no public getter or setter).
    return state, (tl._elapsed_steps if tl is not None else 0)


def restore(env: gym.Env, snap: tuple[np.ndarray, int]) -> np.ndarray:
    """Put ``env`` in the snapshotted state; returns the observation there."""
    import mujoco

    u = env.unwrapped
    mujoco.mj_setState(u.model, u.data, snap[0], mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(u.model, u.data)
    tl = _time_limit(env)
    if tl is not None:
        tl._elapsed_steps = snap[1]
    # MuJoCo envs build observations from data in _get_obs; there is no public path after a set_state.
    return np.asarray(u._get_obs(), dtype=np.float32)


def make_env(cfg) -> gym.Env:
    env_config = dict(cfg.env_config or {})
    return gym.make(cfg.env, **env_config)


class GroupEnvRunner(SingleAgentEnvRunner):
    """Samples group batches (``sample_groups``) and deterministic evaluation episodes (``evaluate``)."""

    def _setup_groups(self) -> None:
        if getattr(self, "_members", None) is not None:
            return
        cfg = self.config
        self._members = [make_env(cfg) for _ in range(cfg.group_size)]
        for e in self._members:
            e.reset(seed=0)
        self._trunk = make_env(cfg) if cfg.group_mode == "branch" else None
        self._trunk_obs = None
        self._trunk_return = 0.0
        # Every stream from the trial's seed (debugging(seed=...)), the sample_seed offset and the
        # runner's index: independent across seeds and runners, reproducible for one seed.
        self._rng = np.random.default_rng(
            derive_seed(cfg.seed, cfg.sample_seed, "start states", self.worker_index)
        )
        self._torch_gen = torch.Generator().manual_seed(
            derive_seed(cfg.seed, cfg.sample_seed, "action noise", self.worker_index)
        )
        space = self._members[0].action_space
        self._gaussian = isinstance(space, gym.spaces.Box)
        self._low = getattr(space, "low", None)
        self._high = getattr(space, "high", None)

    def _policy(self, obs: np.ndarray, deterministic: bool = False):
        """Actions, their log-probs and the distribution inputs for a batch of observations."""
        with torch.no_grad():
            inputs = self.module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)})[
                Columns.ACTION_DIST_INPUTS
            ]
            if self._gaussian:
                mean, log_std = inputs.chunk(2, dim=-1)
                # Deterministic (evaluation) draws no noise: evaluating must not shift the sampling
                # stream, or the number of evaluation episodes would change the training run.
                act = (
                    mean
                    if deterministic
                    else mean + torch.exp(log_std) * torch.randn(mean.shape, generator=self._torch_gen)
                )
            else:
                probs = torch.softmax(inputs, dim=-1)
                act = (
                    probs.argmax(-1)
                    if deterministic
                    else torch.multinomial(probs, 1, generator=self._torch_gen).squeeze(-1)
                )
            logp = action_logp(inputs, act, self._gaussian)
        return act.numpy(), logp.numpy(), inputs.numpy()

    def _env_action(self, a: np.ndarray):
        return np.clip(a, self._low, self._high) if self._gaussian else int(a)

    def _run_members(self, start_obs: list[np.ndarray], horizon: int):
        """Step the G member envs from their current states for up to ``horizon`` steps."""
        g = len(self._members)
        obs_buf, act_buf, logp_buf, inp_buf, rew_buf, mask_buf = [], [], [], [], [], []
        obs = np.stack(start_obs).astype(np.float32)
        alive = np.ones(g, dtype=bool)
        last_obs = list(obs)
        for _ in range(horizon):
            act, logp, inputs = self._policy(obs)
            was_alive = alive.copy()
            rew = np.zeros(g, dtype=np.float32)
            next_obs = obs.copy()
            for i, env in enumerate(self._members):
                if not alive[i]:
                    continue
                o, r, term, trunc, _ = env.step(self._env_action(act[i]))
                rew[i] = r
                next_obs[i] = o
                last_obs[i] = np.asarray(o, dtype=np.float32)
                if term or trunc:
                    alive[i] = False
            obs_buf.append(obs)
            act_buf.append(act)
            logp_buf.append(logp)
            inp_buf.append(inputs)
            rew_buf.append(rew)
            mask_buf.append(was_alive)
            obs = next_obs
            if not alive.any():
                break
        stack = lambda xs: np.stack(xs, axis=1)  # noqa: E731  (G, T, ...)
        mask = stack(mask_buf).astype(np.float32)
        rewards = stack(rew_buf) * mask
        return (
            {
                names.OBS: stack(obs_buf),
                names.ACTIONS: stack(act_buf),
                names.ACTION_LOGP: stack(logp_buf) * mask,
                names.OLD_DIST_INPUTS: stack(inp_buf),
                names.MASK: mask,
                names.REWARDS: rewards,
                names.SCORES: rewards.sum(axis=1),
            },
            last_obs,
            alive,
        )

    def sample_groups(self, num_groups: int, first: int = 0) -> dict:
        """``num_groups`` groups as a batch dict with leading dims ``(num_groups, G, T)``.

        ``first`` (the driver's number of the first group) is not used here: a control task's start
        states come from this runner's own seeded stream (and the trunk's state in branch mode).

        Also returns ``episode_returns`` (finished training episodes: each member episode in
        ``reset`` mode, the trunk in ``branch`` mode) and ``env_steps`` (steps actually taken).
        """
        self._setup_groups()
        cfg = self.config
        horizon = cfg.member_length()
        groups, episode_returns, env_steps = [], [], 0
        for _ in range(num_groups):
            if cfg.group_mode == "reset":
                seed = int(self._rng.integers(2**31 - 1))
                starts = [np.asarray(e.reset(seed=seed)[0], dtype=np.float32) for e in self._members]
                group, _, _ = self._run_members(starts, horizon)
                episode_returns += group[names.SCORES].tolist()
            else:
                group, extra = self._branch_group(horizon, episode_returns)
                env_steps += extra
            env_steps += int(group[names.MASK].sum())
            groups.append({k: v[None] for k, v in group.items()})
        out = collate(groups)
        out[names.EPISODE_RETURNS] = np.asarray(episode_returns, dtype=np.float64)
        out[names.ENV_STEPS] = env_steps
        return out

    def _branch_group(self, horizon: int, episode_returns: list) -> tuple[dict, int]:
        """One branched group and the number of lookahead steps it took beyond its own steps."""
        if self._trunk_obs is None:
            self._trunk_obs = np.asarray(
                self._trunk.reset(seed=int(self._rng.integers(2**31 - 1)))[0], dtype=np.float32
            )
            self._trunk_return = 0.0
        snap = snapshot(self._trunk)
        starts = [restore(e, snap) for e in self._members]
        group, last_obs, alive = self._run_members(starts, horizon)
        # Continue the trunk from member 0 (chosen before any outcome): an ordinary on-policy episode.
        self._trunk_return += float(group[names.SCORES][0])
        done = not alive[0]  # member 0's episode ended (terminated or hit the time limit)
        trunk_next = None if done else snapshot(self._members[0])  # at step H, before any lookahead
        extra = 0
        if self.config.lookahead:
            group[names.TAIL_RETURNS], extra = self._lookahead(last_obs, alive)
        if done:
            episode_returns.append(self._trunk_return)
            self._trunk_obs = None
        else:
            restore(self._trunk, trunk_next)
            self._trunk_obs = last_obs[0]
        return group, extra

    def _lookahead(self, obs: list[np.ndarray], alive: np.ndarray) -> tuple[np.ndarray, int]:
        """Run the members still alive ``lookahead`` steps on: ``(tails, steps)`` where
        ``tails[i] = sum_k credit_gamma^k r_{i,H+k}`` (0 for a member that ended within its segment).

        The steps are sampled from the same policy (their noise from the same stream) and counted in
        the env-step budget, but never trained on: they only lengthen the reward-to-go of the segment.
        """
        cfg = self.config
        tails = np.zeros(len(self._members), dtype=np.float64)
        alive = alive.copy()
        obs = np.stack(obs).astype(np.float32)
        steps, discount = 0, 1.0
        for _ in range(cfg.lookahead):
            if not alive.any():
                break
            act, _, _ = self._policy(obs)
            for i, env in enumerate(self._members):
                if not alive[i]:
                    continue
                o, r, term, trunc, _ = env.step(self._env_action(act[i]))
                tails[i] += discount * float(r)
                obs[i] = o
                steps += 1
                if term or trunc:
                    alive[i] = False
            discount *= cfg.credit_gamma
        return tails, steps

    def evaluate(self, num_episodes: int, seed: int = 10_000) -> list[float]:
        """Deterministic (mean / argmax action) full-length episodes; their returns."""
        self._setup_groups()
        env = getattr(self, "_eval_env", None) or make_env(self.config)
        self._eval_env = env
        returns = []
        for k in range(num_episodes):
            obs, _ = env.reset(seed=seed + k)
            total, done = 0.0, False
            while not done:
                act, _, _ = self._policy(np.asarray(obs, dtype=np.float32)[None], deterministic=True)
                obs, r, term, trunc, _ = env.step(self._env_action(act[0]))
                total += float(r)
                done = term or trunc
            returns.append(total)
        return returns
