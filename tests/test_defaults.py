"""One home for every default: the field table drives the configs, the math functions and the docs."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pytest

from pairgrpo_rllib.algorithms.common.config import RLLIB_RANGES
from pairgrpo_rllib.algorithms.ppo.ppo import PPO_RANGES
from pairgrpo_rllib.algorithms.registry import ALGORITHMS, algorithm_config, is_group_algorithm
from pairgrpo_rllib.core import hard_pair, losses, preferences
from pairgrpo_rllib.core.advantages import group_advantages
from pairgrpo_rllib.core.checks import KINDS, check_field, fail
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
    # the rest of pg_grpo_loss's options are grpo_loss's (forwarded, with grpo_loss's defaults)
    (losses.pg_grpo_loss, {"beta_pg": "beta_pg", "w1": "kl_coeff"}),
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


# ---- every entry's range and choices are checked, by the one generated checker -------------------
def _tables() -> dict[str, dict]:
    """Every table of options: the module-level dicts of ``Field`` in core.defaults, the jobs'
    training keys and the preparation stages' options (a new table or entry is covered here)."""
    from pairgrpo_rllib.algorithms.common.hf_training import TRAINING
    from pairgrpo_rllib.algorithms.stages import STAGES
    from pairgrpo_rllib.core import defaults

    tables = {
        name: table
        for name, table in vars(defaults).items()
        if isinstance(table, dict) and table and all(isinstance(f, defaults.Field) for f in table.values())
    }
    tables["hf_training.TRAINING"] = TRAINING
    for stage, st in STAGES.items():
        tables[f"stages.{stage}"] = st.options
    return tables


CHECKED = [
    pytest.param(name, field, id=f"{table}.{name}")
    for table, entries in _tables().items()
    for name, field in entries.items()
    if field.kind
]


def bad_values(kind, low=None, high=None, low_open=False, high_open=False, none_ok=False, choices=(), **_):
    """Values outside what a check of these arguments accepts."""
    if kind == "bool":
        return ["yes", 1, None]
    if kind == "choice":
        return ["not-one-of-them", 3, None]
    out = ["many", True, math.nan] + ([] if none_ok else [None])
    if kind == "int":
        out.append((low if low is not None else 0) + 0.5)
    elif high is None:
        out.append(math.inf)
    if low is not None:
        out.append(low if low_open else low - 1)
    if high is not None:
        out.append(high if high_open else high + 1)
    return out


def test_every_family_and_baseline_option_has_a_checked_kind():
    for name, field in {**FIELDS, **BASELINE_FIELDS}.items():
        assert field.kind in KINDS, f"{name}: give its kind (and range or choices) in core/defaults.py"
        assert (field.kind == "choice") <= bool(field.choices), name


@pytest.mark.parametrize(("name", "field"), CHECKED)
def test_the_checker_accepts_the_default_and_rejects_values_outside_the_entry(name, field):
    assert check_field(name, field, field.default) == field.default
    for v in bad_values(**vars(field)):
        with pytest.raises(ValueError) as info:
            check_field(name, field, v)
        message = str(info.value)
        assert message.startswith(f"{name}={v!r} is invalid: use "), message
        assert f"(default {field.default!r})" in message and (field.fix in message)


@pytest.mark.parametrize(("name", "field"), [(n, f) for n, f in FIELDS.items()], ids=list(FIELDS))
def test_validate_rejects_each_bad_value_of_every_option_naming_it(name, field):
    """validate() checks every entry of FIELDS (the family's in validate_family, RLlib's first)."""
    for v in bad_values(**vars(field)):
        cfg = algorithm_config("GRPO").environment("HalfCheetah-v4")
        setattr(cfg, name, v)
        if repr(getattr(cfg, name)) != repr(v):
            continue  # an RLlib property that reads None as "unset" (train_batch_size_per_learner)
        with pytest.raises(ValueError, match=re.escape(f"{name}={v!r} is invalid")):
            cfg.validate()


@pytest.mark.parametrize("name", sorted({**RLLIB_RANGES, **PPO_RANGES}))
def test_rllib_settings_without_an_entry_are_checked_too(name):
    allowed = {**RLLIB_RANGES, **PPO_RANGES}[name]
    for v in bad_values(**allowed):
        cfg = algorithm_config("PPO").environment("HalfCheetah-v4")
        setattr(cfg, name, v)
        with pytest.raises(ValueError, match=re.escape(f"{name}={v!r} is invalid")):
            cfg.validate()


def test_messages_name_the_range_the_default_and_the_fix():
    with pytest.raises(ValueError) as info:
        check_field("group_size", FIELDS["group_size"], 1)
    assert str(info.value) == (
        "group_size=1 is invalid: use an integer in [2, 1024] (default 8); a group needs at least 2 members"
    )
    with pytest.raises(
        ValueError, match=r"tis_cap=-1 is invalid: use a finite number > 0 or None \(default None\)"
    ):
        check_field("tis_cap", FIELDS["tis_cap"], -1)
    with pytest.raises(ValueError, match=r"use an integer >= 1 or 'auto' \(default 'auto'\)"):
        check_field("rollout_fragment_length", FIELDS["rollout_fragment_length"], 0)
    with pytest.raises(ValueError, match=r"credit='token' is invalid: use one of 'sequence', 'step'"):
        check_field("credit", FIELDS["credit"], "token")


class _Oops(ValueError):
    pass


def test_fail_is_the_one_message_format():
    with pytest.raises(_Oops, match=r"^x=\[1\] is invalid: do y$"):
        fail("x", [1], "do y", _Oops)
    with pytest.raises(_Oops, match=r"^lr=2 is invalid"):
        check_field("lr", FIELDS["lr"], 2, error=_Oops)


def test_pair_training_needs_groups_of_two_one_rule():
    """DPO/ORPO and pair_source='dataset' share one G = 2 rule (validate_family)."""
    from pairgrpo_rllib.algorithms.common.config import validate_family

    cfg = algorithm_config("GRPO").environment("HalfCheetah-v4").training(pair_source="dataset", group_size=4)
    with pytest.raises(
        ValueError, match=r"group_size=4 is invalid: pair_source='dataset' .* use group_size=2"
    ):
        validate_family(cfg)
    dpo = algorithm_config("DPO").environment("HalfCheetah-v4")
    dpo.group_size = 4
    with pytest.raises(ValueError, match=r"group_size=4 is invalid: DPO .* use group_size=2"):
        validate_family(dpo)
