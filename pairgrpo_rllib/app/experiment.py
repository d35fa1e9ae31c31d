"""Experiment YAML: load, check before Ray starts, turn into AlgorithmConfigs and Tune trials.

A file looks like::

    name: halfcheetah_comparison
    base: other.yaml                    # optional: inherit another file's keys (see below)
    algorithm: [PPO, GRPO, Soft-Pair-GRPO, Hard-Pair-GRPO, PG-GRPO]   # one name or a list
    seeds: [0, 1, 2]
    stop: {env_steps: 1000000}          # and/or iterations / time_s
    checkpoint_every: 10                # iterations
    max_failures: 2                     # retries of a trial that fails (Tune's FailureConfig)
    environment: {env: HalfCheetah-v4}  # AlgorithmConfig builder sections, keyword = value
    training: {group_size: 8, lr: 3.0e-4}
    rl_module: {model_config: {fcnet_hiddens: [64, 64]}}
    per_algorithm:                      # overrides for one algorithm
      PPO: {training: {lambda_: 0.95}}

Any value may be a Tune search-space tag: ``{grid_search: [..]}``, ``{choice: [..]}``,
``{uniform: [a, b]}``, ``{loguniform: [a, b]}``. ``training`` keys of the GRPO family
(``core/defaults.py``) are left out for RLlib's PPO (``algorithms/ppo``); any other key that an
algorithm does not accept is an error, with the closest valid name, before Ray starts.

``base: other.yaml`` (a path relative to the file) inherits every key of another experiment file:
mappings are merged key by key (recursively), anything else (lists, numbers, strings) is replaced.
A comparison and its quick version then differ exactly in the keys the quick one states.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from pathlib import Path

import yaml

from pairgrpo_rllib.core import names

TOP_LEVEL = {
    "name",
    "base",
    "algorithm",
    "seeds",
    "stop",
    "checkpoint_every",
    "max_concurrent",
    "max_failures",
    "per_algorithm",
    "description",
}
SECTIONS = (
    "environment",
    "env_runners",
    "training",
    "learners",
    "rl_module",
    "evaluation",
    "debugging",
    "reporting",
    "fault_tolerance",
    "resources",
)
STOP_KEYS = {
    "env_steps": names.RESULT_STEPS,
    "iterations": names.RESULT_ITERATION,
    "time_s": names.RESULT_TIME,
}
SEARCH_TAGS = ("grid_search", "choice", "uniform", "loguniform", "randint")


class ExperimentError(ValueError):
    """A bad experiment file or override; the message names the field, the value and the fix."""


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Read and check an experiment file; ``overrides`` are ``section.key=value`` strings (YAML values)."""
    p = Path(path)
    spec = read(p)
    spec.setdefault("name", p.stem)
    for item in overrides or []:
        apply_override(spec, item)
    check(spec)
    return spec


def read(path: Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The experiment file at ``path`` as a mapping, with its ``base`` chain merged in (no checks).

    A base's ``name`` is not inherited: a derived file is its own experiment.
    """
    if not path.is_file():
        where = f" (the base of {_chain[-1]})" if _chain else ""
        raise ExperimentError(
            f"config file {str(path)!r}{where} does not exist; pass the path of an experiment YAML"
        )
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ExperimentError(
            f"{path}: not valid YAML ({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(spec, dict):
        raise ExperimentError(
            f"{path}: the top level must be a mapping of sections, got {type(spec).__name__}"
        )
    base = spec.pop("base", None)
    if base is None:
        return spec
    if not isinstance(base, str) or not base:
        raise ExperimentError(
            f"{path}: base={base!r} is invalid: give the path of another experiment YAML, relative to this file"
        )
    base_path = (path.parent / base).resolve()
    chain = (*_chain, path.resolve())
    if base_path in chain:
        raise ExperimentError(
            f"{path}: base={base!r} makes a cycle ({' -> '.join(c.name for c in (*chain, base_path))}); "
            "remove one of the base keys"
        )
    inherited = read(base_path, chain)
    inherited.pop("name", None)
    return merge(inherited, spec)


def merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key (recursively), other values replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(spec: dict, item: str) -> None:
    """``--set training.lr=1e-4`` / ``--set seeds=[0]`` / ``--set stop.env_steps=20000``."""
    if "=" not in item:
        raise ExperimentError(f"--set {item!r}: use key=value, e.g. training.lr=0.0003")
    key, _, raw = item.partition("=")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ExperimentError(f"--set {item!r}: the value is not valid YAML") from None
    parts = key.strip().split(".")
    node = spec
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ExperimentError(f"--set {item!r}: {part!r} is not a section")
    node[parts[-1]] = value


def algorithms_of(spec: dict) -> list[str]:
    algos = spec.get("algorithm")
    return [algos] if isinstance(algos, str) else list(algos or [])


def check(spec: dict) -> None:
    """Every check that needs no Ray: keys, names, env id, search tags, and each config's validate()."""
    from pairgrpo_rllib.algorithms.registry import ALGORITHMS

    for key in spec:
        if key not in TOP_LEVEL and key not in SECTIONS:
            raise ExperimentError(
                f"unknown top-level key {key!r}{_suggest(key, TOP_LEVEL | set(SECTIONS))}; "
                f"allowed: {', '.join(sorted(TOP_LEVEL | set(SECTIONS)))}"
            )
    algos = algorithms_of(spec)
    if not algos:
        raise ExperimentError("algorithm is missing; name one or a list of: " + ", ".join(ALGORITHMS))
    for a in algos:
        if a not in ALGORITHMS:
            raise ExperimentError(
                f"algorithm={a!r} is unknown{_suggest(a, ALGORITHMS)}; use one of {', '.join(ALGORITHMS)}"
            )
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ExperimentError(f"seeds={seeds!r} is invalid: use a non-empty list of integers, e.g. [0, 1, 2]")
    stop = spec.get("stop") or {}
    if not isinstance(stop, dict) or not stop:
        raise ExperimentError(
            f"stop={stop!r} is invalid: give at least one of {', '.join(STOP_KEYS)}, e.g. stop: {{env_steps: 100000}}"
        )
    for k, v in stop.items():
        if k not in STOP_KEYS:
            raise ExperimentError(f"stop.{k} is unknown{_suggest(k, STOP_KEYS)}; use {', '.join(STOP_KEYS)}")
        if not isinstance(v, int | float) or v <= 0:
            raise ExperimentError(f"stop.{k}={v!r} is invalid: use a positive number")
    mf = spec.get("max_failures", 0)
    if not isinstance(mf, int) or isinstance(mf, bool) or mf < -1:
        raise ExperimentError(
            f"max_failures={mf!r} is invalid: use an integer >= 0 (retries of a failed trial; -1 = unlimited)"
        )
    ce = spec.get("checkpoint_every", 10)
    if not isinstance(ce, int) or ce < 0:
        raise ExperimentError(
            f"checkpoint_every={ce!r} is invalid: use an integer >= 0 (iterations; 0 = only at the end)"
        )
    env = (spec.get("environment") or {}).get("env")
    if env is None:
        raise ExperimentError(
            "environment.env is missing; name a gymnasium id, e.g. environment: {env: HalfCheetah-v4}"
        )
    _check_env(env)
    per = spec.get("per_algorithm") or {}
    for a in per:
        # An entry for an algorithm the file does not run is allowed (a file derived with ``base``
        # may run fewer algorithms than its base); an unknown name is a typo.
        if a not in ALGORITHMS:
            raise ExperimentError(
                f"per_algorithm.{a}: {a!r} is not an algorithm{_suggest(a, ALGORITHMS)}; use one of {', '.join(ALGORITHMS)}"
            )
    for a in algos:
        cfg = build_config(spec, a, seed=seeds[0], resolve_search=True)
        try:
            cfg.validate()
        except ValueError as exc:
            raise ExperimentError(f"{a}: {exc}") from None


def _check_env(env: str) -> None:
    import gymnasium as gym

    import pairgrpo_rllib.envs  # noqa: F401  (registers the project's envs)

    try:
        gym.spec(env)
    except gym.error.Error as exc:
        raise ExperimentError(
            f"environment.env={env!r} is not a registered gymnasium id ({exc}); e.g. HalfCheetah-v4"
        ) from None


def _first(value):
    """The first value of a search-space tag (for checks before Ray starts)."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SEARCH_TAGS:
        return next(iter(value.values()))[0]  # grid/choice: first value; ranges: the low end
    return value


def to_tune(value):
    """Turn search-space tags into Tune objects (recursively)."""
    from ray import tune

    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in SEARCH_TAGS:
            tag, arg = next(iter(value.items()))
            return {
                "grid_search": tune.grid_search,
                "choice": tune.choice,
                "uniform": lambda a: tune.uniform(*a),
                "loguniform": lambda a: tune.loguniform(*a),
                "randint": lambda a: tune.randint(*a),
            }[tag](arg)
        return {k: to_tune(v) for k, v in value.items()}
    return value


def sections_for(spec: dict, algo: str) -> dict[str, dict]:
    """The builder sections for one algorithm: shared sections merged with ``per_algorithm``."""
    out = {s: copy.deepcopy(spec.get(s) or {}) for s in SECTIONS}
    for s, kv in ((spec.get("per_algorithm") or {}).get(algo) or {}).items():
        if s not in SECTIONS:
            raise ExperimentError(f"per_algorithm.{algo}.{s} is not a builder section{_suggest(s, SECTIONS)}")
        out[s].update(kv or {})
    return out


def build_config(spec_or_sections: dict, algo: str, seed: int, resolve_search: bool = False):
    """An ``AlgorithmConfig`` for ``algo`` (search tags replaced by their first value if asked).

    Each builder section is handed to the config's ``experiment_section`` hook first (RLlib's PPO
    drops the family's options and translates the model config: ``algorithms/ppo``), then checked
    against the builder method's keywords (plus the config's ``extra_options``) and applied.
    """
    from pairgrpo_rllib.algorithms.registry import algorithm_config

    sections = sections_for(spec_or_sections, algo) if "algorithm" in spec_or_sections else spec_or_sections
    cfg = algorithm_config(algo)
    for section in SECTIONS:
        kv = dict(sections.get(section) or {})
        if resolve_search:
            kv = {k: _first(v) for k, v in kv.items()}
        kv = cfg.experiment_section(section, kv)
        if not kv:
            continue
        method = getattr(cfg, section)
        allowed = set(inspect.signature(method).parameters) - {"self", "kwargs"}
        if section == "training":
            allowed |= _base_training_keys()
        allowed |= cfg.extra_options(section)
        for k in kv:
            if k not in allowed:
                raise ExperimentError(f"{section}.{k} is not an option of {algo}{_suggest(k, allowed)}")
        try:
            method(**kv)
        except (TypeError, ValueError) as exc:
            raise ExperimentError(f"{algo}: {section}: {exc}") from None
    cfg.debugging(seed=seed)
    return cfg


def _base_training_keys() -> set[str]:
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    return set(inspect.signature(AlgorithmConfig.training).parameters) - {"self", "kwargs"}


def stop_criteria(spec: dict) -> dict:
    return {STOP_KEYS[k]: v for k, v in (spec.get("stop") or {}).items()}
