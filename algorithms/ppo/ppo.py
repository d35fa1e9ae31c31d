"""RLlib's PPO, unchanged, as the baseline of a comparison: how it reads an experiment YAML.

An experiment file states the settings that all its algorithms share (``training``, ``rl_module``,
...). PPO takes them as RLlib defines them, with three translations, and nothing else:

1. ``training``: the GRPO family's own options (``core.defaults.FAMILY_OPTIONS``: ``group_size``,
   ``kl_coeff``, ...) are not PPO's and are left out; ``kl_coeff`` in particular is the family's
   KL weight, while PPO's adaptive KL coefficient is set under ``per_algorithm: {PPO: ...}``.
   RLlib-level keys (``lr``, ``num_epochs``, ``train_batch_size_per_learner``, ``grad_clip``) apply.
2. ``rl_module.model_config``: our field names are RLlib's, so PPO gets the same actor network
   (``DefaultModelConfig``); keys only our module knows (``normalize_obs``, ``init_action_probs``)
   are dropped.
3. ``normalize_obs: true`` becomes RLlib's running ``MeanStdFilter`` connector (clip 10, as our
   module's normaliser), so that both sides standardise observations.

PPO's own settings (``clip_param``, ``lambda_``, ``use_kl_loss``, ``vf_loss_coeff``, ...) are not
translated: each YAML that compares against PPO states them under ``per_algorithm: {PPO: ...}``.
"""

from __future__ import annotations

from ray.rllib.algorithms.ppo import PPOConfig

from pairgrpo_rllib.algorithms.common.config import (
    check_ranges,
    validate_model_config,
    validate_rllib_settings,
)
from pairgrpo_rllib.core.defaults import FAMILY_OPTIONS

# RLlib PPO's own settings (RLlib's defaults stand, so no entry in FIELDS) and the values they
# accept (``core.checks.check_value``); an entropy_coeff schedule (a list) is left to RLlib.
PPO_RANGES: dict[str, dict] = {
    "evaluation_interval": {"kind": "int", "low": 1, "high": 10**6, "none_ok": True},
    "evaluation_duration": {"kind": "int", "low": 1, "high": 10**6},
    "clip_param": {"kind": "float", "low": 0, "high": 1, "low_open": True},
    "vf_clip_param": {"kind": "float", "low": 0, "high": 1e9, "low_open": True},
    "lambda_": {"kind": "float", "low": 0, "high": 1},
    "vf_loss_coeff": {"kind": "float", "low": 0, "high": 1e9},
    "kl_coeff": {"kind": "float", "low": 0, "high": 1e9},
    "kl_target": {"kind": "float", "low": 0, "high": 1e9, "low_open": True},
    "entropy_coeff": {"kind": "float", "low": 0, "high": 1e9},
}


def _mean_std_filter(env=None, spaces=None, device=None):
    from ray.rllib.connectors.env_to_module import MeanStdFilter

    return MeanStdFilter(clip_by_value=10.0)


class PPOBaselineConfig(PPOConfig):
    """``PPOConfig`` (its algorithm is RLlib's ``PPO``) plus the translation of shared YAML sections."""

    def experiment_section(self, section: str, options: dict) -> dict:
        """An experiment YAML's builder section as PPO takes it (see the module docstring)."""
        if section == "training":
            return {k: v for k, v in options.items() if k not in FAMILY_OPTIONS}
        if section == "rl_module" and "model_config" in options:
            from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

            model_config = dict(options["model_config"])
            validate_model_config(model_config)  # the shared keys, before translation drops ours
            if model_config.get("normalize_obs"):
                self.env_runners(env_to_module_connector=_mean_std_filter)
            known = set(DefaultModelConfig.__dataclass_fields__)
            options = dict(
                options,
                model_config=DefaultModelConfig(**{k: v for k, v in model_config.items() if k in known}),
            )
        return options

    @staticmethod
    def extra_options(section: str) -> set[str]:
        return set()

    def validate(self) -> None:
        """RLlib's PPO accepts a NaN learning rate or a negative clip and fails iterations later;
        these are checked first, naming the field."""
        validate_rllib_settings(self)
        schedule = isinstance(self.entropy_coeff, list)
        check_ranges(self, {k: v for k, v in PPO_RANGES.items() if not (schedule and k == "entropy_coeff")})
        super().validate()
