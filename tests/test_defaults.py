"""One home for every default: the field table drives the configs, the math functions and the docs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from pairgrpo_rllib.algorithms.registry import ALGORITHMS, algorithm_config, is_group_algorithm
from pairgrpo_rllib.core import hard_pair, losses, preferences
from pairgrpo_rllib.core.advantages import group_advantages
from pairgrpo_rllib.core.defaults import (
    ALGORITHM_DEFAULTS,
    BASELINE_FIELDS,
    FAMILY_OPTIONS,
    FIELDS,
    default,
    defaults_for,
)

REPO = Path(__file__).resolve().parents[1]
GROUP_ALGORITHMS = [name for name in ALGORITHMS if is_group_algorithm(name)]

# keyword of a math function -> the field whose default it must take
MATH_DEFAULTS = [
    (losses.clipped_surrogate, {"clip_low": "clip_low", "clip_high": "clip_high"}),
    (losses.aggregate, {"mode": "loss_agg"}),
    (
        losses.grpo_loss,
        {
            "clip_low": "clip_low",
            "clip_high": "clip_high",
            "beta": "kl_coeff",
            "kl_estimator": "kl_estimator",
            "loss_agg": "loss_agg",
        },
    ),
    (
        losses.pg_grpo_loss,
        {
            "beta_pg": "beta_pg",
            "w1": "kl_coeff",
            "clip_low": "clip_low",
            "clip_high": "clip_high",
            "kl_estimator": "kl_estimator",
        },
    ),
    (losses.dpo_loss, {"beta": "dpo_beta"}),
    (losses.orpo_loss, {"lam": "orpo_lambda"}),
    (group_advantages, {"norm": "advantage_norm"}),
    (preferences.preference_matrix, {"oracle": "preference_oracle", "temperature": "preference_temperature"}),
    (hard_pair.delta_schedule, {"delta0": "delta0", "gamma": "delta_gamma"}),
    (hard_pair.hard_pair_targets, {"eps_p": "eps_p"}),
    (hard_pair.hard_pair_loss, {"alpha": "trust_region_alpha", "beta_tr": "trust_region_beta"}),
]


@pytest.mark.parametrize(("func", "mapping"), MATH_DEFAULTS, ids=lambda x: getattr(x, "__name__", ""))
def test_math_functions_take_their_defaults_from_the_table(func, mapping):
    params = inspect.signature(func).parameters
    for kw, field in mapping.items():
        assert params[kw].default == default(field), f"{func.__name__}({kw}=...) differs from {field}"


def test_hard_pair_loss_defaults_to_hard_pairs_kl_coeff():
    kw = inspect.signature(hard_pair.hard_pair_loss).parameters["kl_coeff"].default
    assert kw == default("kl_coeff", "Hard-Pair-GRPO") == 0.0


@pytest.mark.parametrize("name", GROUP_ALGORITHMS)
def test_every_config_attribute_is_the_tables_default(name):
    cfg = algorithm_config(name)
    for field, value in defaults_for(name).items():
        assert getattr(cfg, field) == value, f"{name}.{field}"


def test_per_algorithm_defaults_name_exactly_the_registered_family():
    assert set(ALGORITHM_DEFAULTS) == set(GROUP_ALGORITHMS)
    assert "PPO" in ALGORITHMS and not is_group_algorithm("PPO")
    for overrides in ALGORITHM_DEFAULTS.values():
        assert set(overrides) <= set(FAMILY_OPTIONS)
    # the papers' own choices
    assert default("pairs", "Hard-Pair-GRPO") == "best_worst" and default("kl_coeff", "Hard-Pair-GRPO") == 0.0
    assert default("advantage_norm", "PG-GRPO") == "mean"
    assert default("kl_estimator") == "k3"  # GRPO's own; the MuJoCo configs choose "analytic" (ours)


def test_every_field_has_a_meaning_and_a_source():
    for name, field in {**FIELDS, **BASELINE_FIELDS}.items():
        assert field.meaning.strip() and field.source.strip(), name


def test_docs_list_every_option_with_its_default():
    text = (REPO / "docs" / "algorithms.md").read_text()
    for name in FAMILY_OPTIONS:
        assert re.search(rf"`{name}`", text), f"docs/algorithms.md does not list the option {name}"


def test_ppo_takes_none_of_the_family_options():
    cfg = algorithm_config("PPO")
    section = cfg.experiment_section("training", {"group_size": 8, "kl_coeff": 0.04, "lr": 1e-4})
    assert section == {"lr": 1e-4}  # kl_coeff is the family's KL weight, not PPO's adaptive coefficient
