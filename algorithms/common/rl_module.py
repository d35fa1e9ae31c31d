"""The policy of the GRPO family: an MLP actor (no critic) with a frozen reference copy.

* Discrete actions: logits. Box actions: a diagonal Gaussian with a state-independent log-std
  parameter (``free_log_std``, the common MuJoCo choice: CleanRL, SB3), so the action distribution
  inputs are ``concat(mean, log_std)`` as RLlib's ``TorchDiagGaussian`` expects.
* The reference policy ``pi_ref`` is a frozen copy of the initial actor kept *inside* the module
  (a learner-held copy is not checkpointed: docs/rllib_notes.md). It is listed in
  ``get_non_inference_attributes`` so env runners never build it and weight syncs never send it,
  and its weights survive checkpoint/restore as part of the module state.
* ``normalize_obs`` (model_config, default off): observations are standardised by running
  statistics kept as buffers of the module (``ObsNormalizer``), so they travel with weight syncs
  and checkpoints. The statistics change only between iterations (the driver merges each batch's
  moments after the update, ``update_obs_stats``), so the log-probs recorded when sampling equal the
  learner's at the first step of an iteration. Actor and reference see the same normalised input.
  Clipped to +-10 (as SB3's VecNormalize and RLlib's MeanStdFilter).
* Inputs may carry any leading dimensions: ``(B, obs)`` on env runners, ``(N, G, T, obs)`` in the
  learner's group batches; the MLP acts on the last dimension.
* :meth:`GroupPolicyModule.policy_terms` is the module's half of the learner contract
  (``core.contract.GroupTensors``): log-probs of the taken actions under pi_theta and pi_ref, and
  the exact per-state KLs and entropy that an explicit distribution allows.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.distributions import action_logp, analytic_kl, entropy


class ObsNormalizer(torch.nn.Module):
    """Running mean and variance of observations (Chan et al.'s parallel merge), as buffers."""

    def __init__(self, dim: int, clip: float = 10.0):
        super().__init__()
        self.clip = clip
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        z = (obs - self.mean.to(obs.dtype)) / torch.sqrt(self.var.to(obs.dtype) + 1e-8)
        return z.clamp(-self.clip, self.clip)

    @torch.no_grad()
    def merge(self, count: float, mean, m2) -> None:
        """Merge a batch's moments: ``count`` rows with ``mean`` and sum of squared deviations ``m2``."""
        if count <= 0:
            return
        mean = torch.as_tensor(mean, dtype=torch.float64)
        m2 = torch.as_tensor(m2, dtype=torch.float64)
        n_a, n_b = float(self.count), float(count)
        total = n_a + n_b
        delta = mean - self.mean
        m2_a = self.var * n_a
        self.mean.add_(delta * (n_b / total))
        self.var.copy_((m2_a + m2 + delta * delta * (n_a * n_b / total)) / total)
        self.count.fill_(total)


class _Actor(torch.nn.Module):
    def __init__(
        self, obs_dim: int, out_dim: int, hiddens: list[int], activation: str, gaussian: bool, log_std: float
    ):
        super().__init__()
        act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[activation]
        layers: list[torch.nn.Module] = []
        last = obs_dim
        for h in hiddens:
            layers += [torch.nn.Linear(last, h), act()]
            last = h
        head = torch.nn.Linear(last, out_dim)
        # Small initial outputs (as PPO implementations do for the policy head): actions start near 0.
        torch.nn.init.orthogonal_(head.weight, gain=0.01)
        torch.nn.init.zeros_(head.bias)
        self.net = torch.nn.Sequential(*layers, head)
        self.log_std = torch.nn.Parameter(torch.full((out_dim,), float(log_std))) if gaussian else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.net(obs)
        if self.log_std is None:
            return out
        return torch.cat([out, self.log_std.expand_as(out)], dim=-1)


class GroupPolicyModule(TorchRLModule, InferenceOnlyAPI):
    """Actor-only RLModule with a frozen reference actor (``model_config``: ``fcnet_hiddens``,
    ``fcnet_activation``, ``initial_log_std``, ``init_action_probs``, ``normalize_obs``; other keys
    are ignored)."""

    def setup(self):
        # RLlib's field names, so one YAML ``model_config`` shapes PPO's actor and ours alike.
        cfg = {
            "fcnet_hiddens": [64, 64],
            "fcnet_activation": "tanh",
            "initial_log_std": -0.5,
            "normalize_obs": False,
        }
        cfg.update(dict(self.model_config or {}))
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            out_dim, gaussian = int(space.shape[0]), True
        elif isinstance(space, gym.spaces.Discrete):
            out_dim, gaussian = int(space.n), False
        else:
            raise ValueError(f"action space {space} is not supported; use a Box or a Discrete space")
        obs_dim = int(gym.spaces.utils.flatdim(self.observation_space))
        self.actor = _Actor(
            obs_dim,
            out_dim,
            list(cfg["fcnet_hiddens"]),
            cfg["fcnet_activation"],
            gaussian,
            cfg["initial_log_std"],
        )
        self.obs_norm = ObsNormalizer(obs_dim) if cfg["normalize_obs"] else None
        init = cfg.get("init_action_probs")
        if init is not None and not gaussian:
            # Start at a chosen categorical policy (the theory check's pi_ref(a) = p): zero weights,
            # bias = log-probabilities.
            head = self.actor.net[-1]
            with torch.no_grad():
                head.weight.zero_()
                head.bias.copy_(torch.log(torch.as_tensor(init, dtype=head.bias.dtype)))
        if not self.inference_only:
            self.ref_actor = copy.deepcopy(self.actor)
            self.ref_actor.requires_grad_(False)

    def get_non_inference_attributes(self) -> list[str]:
        return ["ref_actor"]

    @property
    def gaussian(self) -> bool:
        """True for Box actions (diagonal Gaussian), False for Discrete (categorical)."""
        return self.actor.log_std is not None

    def normalized_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """What the actor and the reference see: ``obs`` standardised if ``normalize_obs``."""
        return self.obs_norm(obs) if self.obs_norm is not None else obs

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self.actor(self.normalized_obs(batch[Columns.OBS]))}

    def _forward_train(self, batch, **kwargs):
        obs = self.normalized_obs(batch[Columns.OBS])
        out = {Columns.ACTION_DIST_INPUTS: self.actor(obs)}
        with torch.no_grad():
            out[names.REF_DIST_INPUTS] = self.ref_actor(obs)
        return out

    def policy_terms(self, batch, fwd_out) -> dict[str, torch.Tensor]:
        """The module's fields of ``GroupTensors``, each with the batch's leading dims ``(N, G, T)``.

        ``logp`` (differentiable) and ``ref_logp`` of the taken actions; the exact per-state
        ``kl_to_ref`` and ``kl_to_old`` (differentiable; pi_old's inputs were recorded when
        sampling) and the ``entropy`` (detached).
        """
        inputs = fwd_out[Columns.ACTION_DIST_INPUTS]
        ref_inputs = fwd_out[names.REF_DIST_INPUTS]
        actions = batch[Columns.ACTIONS]
        g = self.gaussian
        return {
            "logp": action_logp(inputs, actions, g),
            "ref_logp": action_logp(ref_inputs, actions, g).detach(),
            "kl_to_ref": analytic_kl(inputs, ref_inputs, g),
            "kl_to_old": analytic_kl(inputs, batch[names.OLD_DIST_INPUTS].to(inputs.dtype), g),
            "entropy": entropy(inputs.detach(), g),
        }

    @torch.no_grad()
    def reference_logp(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log pi_ref(a | s)`` of given observations and actions (leading dims kept)."""
        return action_logp(self.ref_actor(self.normalized_obs(obs)), actions, self.gaussian)

    def batch_reference_logp(self, batch) -> torch.Tensor:
        """``log pi_ref`` of a group batch's actions, ``(N, G, T)`` (the learner's kl_in_reward)."""
        return self.reference_logp(batch[names.OBS], batch[names.ACTIONS])

    def reset_reference(self) -> None:
        """Make the current actor the new reference (e.g. after SFT); never called by training."""
        self.ref_actor.load_state_dict(self.actor.state_dict())
