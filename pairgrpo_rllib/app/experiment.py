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
import inspect
import logging
import math
import re
from pathlib import Path

from pairgrpo_rllib.algorithms.registry import ALGORITHMS, algorithm_config, is_group_algorithm
from pairgrpo_rllib.app import llm_eval, safe_yaml
from pairgrpo_rllib.app import prepare as prepare_stages
from pairgrpo_rllib.app.prepare import promised_outputs
from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.checks import suggest
from pairgrpo_rllib.envs.llm.models import promised_paths
from pairgrpo_rllib.envs.resources import check_trial_cpus

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
    "prepare",
    "evaluate",
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
# An experiment's name is a folder under --output: letters, digits, ".", "_", "-"; no path parts.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_STOP = {"env_steps": 1e12, "iterations": 1e9, "time_s": 1e8}  # finite budgets only
MAX_SEED = 2**31 - 1


class ExperimentError(ValueError):
    """A bad experiment file or override; the message names the field, the value and the fix."""


def load(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Read and check an experiment file; ``overrides`` are ``section.key=value`` strings (YAML values)."""
    p = Path(path)
    spec = read(p)
    spec.setdefault("name", p.stem)
    for item in overrides or []:
        apply_override(spec, item)
    if "prepare" in spec:
        try:
            # job files read and inlined: the saved experiment records what was run
            spec["prepare"] = prepare_stages.normalize(spec["prepare"], p.parent)
        except prepare_stages.PrepareError as exc:
            raise ExperimentError(str(exc)) from None
    environment = spec.get("environment")
    if isinstance(environment, dict) and environment.get("env") == names.LLM_ENV:
        prepare_stages.absolute_paths(spec)  # trials run in their own folders
    check(spec)
    return spec


def read(path: Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The experiment file at ``path`` as a mapping, with its ``base`` chain merged in (no checks).

    A base's ``name`` is not inherited: a derived file is its own experiment.
    """
    if path.exists() and not path.is_file():
        raise ExperimentError(f"config file {str(path)!r} is not a file; pass the path of an experiment YAML")
    if not path.is_file():
        where = f" (the base of {_chain[-1]})" if _chain else ""
        raise ExperimentError(
            f"config file {str(path)!r}{where} does not exist; pass the path of an experiment YAML"
        )
    try:
        spec = safe_yaml.load_file(path)
    except safe_yaml.YAMLInputError as exc:
        raise ExperimentError(str(exc)) from None
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
        value = safe_yaml.loads(raw, f"--set {item!r}")
    except safe_yaml.YAMLInputError as exc:
        raise ExperimentError(str(exc)) from None
    parts = key.strip().split(".")
    if not all(parts):
        raise ExperimentError(
            f"--set {item!r}: the key {key!r} has an empty part; use e.g. training.lr=0.0003"
        )
    node = spec
    for depth, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            where = ".".join(parts[: depth + 1])
            raise ExperimentError(f"--set {item!r}: {where} is a value ({node!r}), not a section")
    node[parts[-1]] = value


def algorithms_of(spec: dict) -> list[str]:
    algos = spec.get("algorithm")
    return [algos] if isinstance(algos, str) else list(algos or [])


def check(spec: dict) -> None:
    """Every check that needs no Ray: keys, types, finite numbers, names, env id, search tags, and
    each algorithm's ``validate()`` for every value of every search space (one at a time)."""

    for key in spec:
        if key not in TOP_LEVEL and key not in SECTIONS:
            raise ExperimentError(
                f"unknown top-level key {key!r}{suggest(str(key), TOP_LEVEL | set(SECTIONS))}; "
                f"allowed: {', '.join(sorted(TOP_LEVEL | set(SECTIONS)))}"
            )
    _check_name(spec.get("name"))
    for section in SECTIONS:
        _check_mapping(section, spec.get(section))
    _check_numbers(spec, "")
    _check_search_tags(spec, "")
    model_configs = [("rl_module.model_config", (spec.get("rl_module") or {}).get("model_config"))]
    for a, sections in (
        (spec.get("per_algorithm") or {}).items() if isinstance(spec.get("per_algorithm"), dict) else []
    ):
        rl_module = (sections or {}).get("rl_module") if isinstance(sections, dict) else None
        if isinstance(rl_module, dict):
            model_configs.append((f"per_algorithm.{a}.rl_module.model_config", rl_module.get("model_config")))
    for where, model_config in model_configs:
        _check_mapping(where, model_config)
    algos = spec.get("algorithm")
    if isinstance(algos, str):
        algos = [algos]
    if not algos:
        raise ExperimentError("algorithm is missing; name one or a list of: " + ", ".join(ALGORITHMS))
    if not isinstance(algos, list):
        raise ExperimentError(f"algorithm={algos!r} is invalid: name one algorithm or a list of them")
    for a in algos:
        if not isinstance(a, str) or a not in ALGORITHMS:
            raise ExperimentError(
                f"algorithm={a!r} is unknown{suggest(str(a), ALGORITHMS)}; use one of {', '.join(ALGORITHMS)}"
            )
    repeated = sorted({a for a in algos if algos.count(a) > 1})
    if repeated:
        raise ExperimentError(
            f"algorithm={algos!r} is invalid: {repeated[0]} is named twice; name each algorithm once "
            "(more runs of one algorithm: more seeds)"
        )
    seeds = spec.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(_is_int(s) and 0 <= s <= MAX_SEED for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ExperimentError(
            f"seeds={seeds!r} is invalid: use a non-empty list of distinct integers in [0, {MAX_SEED}], e.g. [0, 1, 2]"
        )
    stop = spec.get("stop")
    if not isinstance(stop, dict) or not stop:
        raise ExperimentError(
            f"stop={stop!r} is invalid: give at least one of {', '.join(STOP_KEYS)}, e.g. stop: {{env_steps: 100000}}"
        )
    for k, v in stop.items():
        if k not in STOP_KEYS:
            raise ExperimentError(
                f"stop.{k} is unknown{suggest(str(k), STOP_KEYS)}; use {', '.join(STOP_KEYS)}"
            )
        if not _is_number(v) or not 0 < v <= MAX_STOP[k]:
            raise ExperimentError(
                f"stop.{k}={v!r} is invalid: use a finite number > 0 (at most {MAX_STOP[k]:g})"
            )
    _check_int(
        "max_failures", spec.get("max_failures", 0), low=-1, what="retries of a failed trial; -1 = unlimited"
    )
    _check_int(
        "checkpoint_every", spec.get("checkpoint_every", 10), low=0, what="iterations; 0 = only at the end"
    )
    mc = spec.get("max_concurrent")
    if mc is not None:
        _check_int("max_concurrent", mc, low=1, what="trials at a time; leave it out for as many as fit")
    env = (spec.get("environment") or {}).get("env")
    if env is None:
        raise ExperimentError(
            "environment.env is missing; name a gymnasium id, e.g. environment: {env: HalfCheetah-v4}"
        )
    if not isinstance(env, str):
        raise ExperimentError(f"environment.env={env!r} is invalid: name a gymnasium id, e.g. HalfCheetah-v4")
    if env != names.LLM_ENV:
        _check_env(env)
    stages = spec.get("prepare") or []
    if stages:
        try:
            prepare_stages.check(stages)
        except prepare_stages.PrepareError as exc:
            raise ExperimentError(str(exc)) from None
    per = spec.get("per_algorithm") or {}
    if not isinstance(per, dict):
        raise ExperimentError(f"per_algorithm={per!r} is invalid: use a mapping of algorithm -> sections")
    for a, sections in per.items():
        # An entry for an algorithm the file does not run is allowed (a file derived with ``base``
        # may run fewer algorithms than its base); an unknown name is a typo.
        if a not in ALGORITHMS:
            raise ExperimentError(
                f"per_algorithm.{a}: {a!r} is not an algorithm{suggest(str(a), ALGORITHMS)}; use one of {', '.join(ALGORITHMS)}"
            )
        _check_mapping(f"per_algorithm.{a}", sections)
        for section, kv in (sections or {}).items():
            if section not in SECTIONS:
                raise ExperimentError(
                    f"per_algorithm.{a}.{section} is not a builder section{suggest(str(section), SECTIONS)}"
                )
            _check_mapping(f"per_algorithm.{a}.{section}", kv)
    # RLlib logs warnings while configs are validated ("new API stack"): the user's terminal keeps
    # one line per problem.
    import ray.rllib  # noqa: F401  (importing it sets its logger's level; set ours after)

    rllib_logger = logging.getLogger("ray.rllib")
    level = rllib_logger.level
    rllib_logger.setLevel(logging.ERROR)

    made = promised_paths(promised_outputs(stages))  # what the prepare stages write counts as present
    try:
        if spec.get("evaluate") is not None:
            if env != names.LLM_ENV:
                raise ExperimentError(
                    f"evaluate: the LLM evaluation needs an LLM run (environment.env: {names.LLM_ENV}), not {env}"
                )
            try:
                llm_eval.settings(spec["evaluate"], spec, promised=made)
            except ValueError as exc:
                raise ExperimentError(_one_line(exc)) from None
        for a in algos:
            for variant in _search_variants(sections_for(spec, a)):
                cfg = build_config(variant, a, seed=seeds[0], resolve_search=True)
                if is_group_algorithm(a):
                    cfg.promised_paths = made
                try:
                    cfg.validate()
                    bundles = cfg.algo_class.default_resource_request(cfg).bundles
                    check_trial_cpus("env_runners.num_env_runners", cfg.num_env_runners, bundles)
                except (ValueError, TypeError) as exc:
                    raise ExperimentError(f"{a}: {_one_line(exc)}") from None
    finally:
        rllib_logger.setLevel(level)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_int(field: str, value, *, low: int, what: str) -> None:
    if not _is_int(value) or value < low:
        raise ExperimentError(f"{field}={value!r} is invalid: use an integer >= {low} ({what})")


def _check_name(name) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ExperimentError(
            f"name={name!r} is invalid: it names the results folder under --output; use letters, digits, "
            "'.', '_' and '-' (starting with a letter or digit, at most 100 characters), e.g. halfcheetah_run1"
        )


def _check_mapping(field: str, value) -> None:
    if value is not None and not isinstance(value, dict):
        raise ExperimentError(
            f"{field}={value!r} is invalid: a section is a mapping of option: value, e.g. {field}: {{key: value}}"
        )
    for key in value or {}:
        if not isinstance(key, str):
            raise ExperimentError(f"{field}: the key {key!r} is not a name; option names are words, e.g. lr")


def _check_numbers(node, path: str) -> None:
    """No NaN or infinity anywhere: a budget of .inf never ends, an lr of .nan trains on garbage."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ExperimentError(f"{path}={node!r} is invalid: use a finite number")
    if isinstance(node, dict):
        for k, v in node.items():
            _check_numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_numbers(v, f"{path}[{i}]")


def search_tag(value) -> str | None:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SEARCH_TAGS:
        return next(iter(value))
    return None


def _check_search_tags(node, path: str) -> None:
    """Search spaces well formed: grid/choice a non-empty list, ranges two numbers low < high."""
    tag = search_tag(node)
    if tag is not None:
        arg = node[tag]
        where = f"{path}.{tag}"
        if tag in ("grid_search", "choice"):
            if not isinstance(arg, list) or not arg:
                raise ExperimentError(
                    f"{where}={arg!r} is invalid: give a non-empty list of values, e.g. [0.1, 0.2]"
                )
            return
        ok = isinstance(arg, list) and len(arg) == 2 and all(_is_number(x) for x in arg) and arg[0] < arg[1]
        if tag == "loguniform":
            ok = ok and arg[0] > 0
        if tag == "randint":
            ok = ok and all(_is_int(x) for x in arg)
        if not ok:
            need = {"uniform": "two numbers", "loguniform": "two numbers > 0", "randint": "two integers"}[tag]
            raise ExperimentError(f"{where}={arg!r} is invalid: give [low, high], {need} with low < high")
        return
    if isinstance(node, dict):
        for k, v in node.items():
            _check_search_tags(v, f"{path}.{k}" if path else str(k))


def _search_variants(sections: dict) -> list[dict]:
    """The sections with every search space at its first value, then each other grid/choice value
    in turn (one key at a time), so that every value a trial can get is validated."""
    base = copy.deepcopy(sections)
    variants = [base]
    for section, kv in sections.items():
        for key, value in (kv or {}).items():
            if search_tag(value) in ("grid_search", "choice"):
                for alternative in value[search_tag(value)][1:]:
                    variant = copy.deepcopy(base)
                    variant[section][key] = alternative
                    variants.append(variant)
    return variants


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
    """``value`` with every search-space tag, at any depth, replaced by its first value (ranges:
    the low end), for checks before Ray starts."""
    tag = search_tag(value)
    if tag is not None:
        return _first(value[tag][0])
    if isinstance(value, dict):
        return {k: _first(v) for k, v in value.items()}
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
    """The builder sections for one algorithm: ``per_algorithm`` merged into the shared sections key by
    key (``per_algorithm: {GRPO: {environment: {env_config: {engine: vllm}}}}`` changes the engine
    and keeps the rest of the shared ``env_config``)."""
    out = {s: copy.deepcopy(spec.get(s) or {}) for s in SECTIONS}
    for s, kv in ((spec.get("per_algorithm") or {}).get(algo) or {}).items():
        if s not in SECTIONS:
            raise ExperimentError(f"per_algorithm.{algo}.{s} is not a builder section{suggest(s, SECTIONS)}")
        out[s] = merge(out[s], kv or {})
    return out


def build_config(spec_or_sections: dict, algo: str, seed: int, resolve_search: bool = False):
    """An ``AlgorithmConfig`` for ``algo`` (search tags replaced by their first value if asked).

    Each builder section is handed to the config's ``experiment_section`` hook first (RLlib's PPO
    drops the family's options and translates the model config: ``algorithms/ppo``), then checked
    against the builder method's keywords (plus the config's ``extra_options``) and applied.
    """

    sections = sections_for(spec_or_sections, algo) if "algorithm" in spec_or_sections else spec_or_sections
    cfg = algorithm_config(algo)
    for section in SECTIONS:
        kv = dict(sections.get(section) or {})
        if resolve_search:
            kv = {k: _first(v) for k, v in kv.items()}
        try:
            kv = cfg.experiment_section(section, kv)
        except (TypeError, ValueError) as exc:
            raise ExperimentError(f"{algo}: {section}: {_one_line(exc)}") from None
        if not kv:
            continue
        method = getattr(cfg, section)
        allowed = set(inspect.signature(method).parameters) - {"self", "kwargs"}
        if section == "training":
            allowed |= _base_training_keys()
        allowed |= cfg.extra_options(section)
        for k in kv:
            if k not in allowed:
                raise ExperimentError(f"{section}.{k} is not an option of {algo}{suggest(k, allowed)}")
        try:
            method(**kv)
        except Exception as exc:  # RLlib's builders raise many kinds on bad values
            raise ExperimentError(f"{algo}: {section}: {_one_line(exc)}") from None
    cfg.debugging(seed=seed)
    return cfg


def _base_training_keys() -> set[str]:
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    return set(inspect.signature(AlgorithmConfig.training).parameters) - {"self", "kwargs"}


def stop_criteria(spec: dict) -> dict:
    return {STOP_KEYS[k]: v for k, v in (spec.get("stop") or {}).items()}
