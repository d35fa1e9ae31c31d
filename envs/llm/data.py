"""Preference and prompt data: the public schemas, by hub name or local file, through ``datasets``.

Every loader returns the same normalised rows, ``{"messages": [...], "chosen": str, "rejected": str}``
(``messages``: the conversation before the answer, as ``{"role", "content"}`` dicts, ending with a
user turn), whatever the source schema:

``hh``                 ``Anthropic/hh-rlhf`` (every ``data_dir``: helpful-base, harmless-base, ...):
                       two whole transcripts ``chosen``/``rejected``; the prompt is their common
                       prefix up to the last ``"\\n\\nAssistant:"``, the answers what follows.
``ultrafeedback_binarized``  ``HuggingFaceH4/ultrafeedback_binarized`` (splits ``train_prefs`` /
                       ``test_prefs``): ``prompt`` and message lists ``chosen``/``rejected``.
``ultrafeedback``      ``openbmb/UltraFeedback``: ``instruction`` and rated ``completions``; the pair
                       is the best-rated completion against a random other with a lower rating (the
                       binarised dataset's construction), seeded.

A source is a hub name (schema from the name) or a local ``.json``/``.jsonl``/``.parquet`` file (schema
from its columns, or given). A file whose columns fit no schema, or rows without the needed fields,
fail with the field and the fix named, before anything is trained.
"""

from __future__ import annotations

import random
from pathlib import Path

SCHEMAS = ("hh", "ultrafeedback_binarized", "ultrafeedback")
HUB_SCHEMAS = {
    "anthropic/hh-rlhf": "hh",
    "huggingfaceh4/ultrafeedback_binarized": "ultrafeedback_binarized",
    "openbmb/ultrafeedback": "ultrafeedback",
}
REQUIRED = {
    "hh": ("chosen", "rejected"),
    "ultrafeedback_binarized": ("prompt", "chosen", "rejected"),
    "ultrafeedback": ("instruction", "completions"),
}
FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
ASSISTANT_MARK, HUMAN_MARK = "\n\nAssistant:", "\n\nHuman:"


class DataError(ValueError):
    """Bad data: the message names the source, the field and the fix."""


def _load_dataset(source: str, split: str, data_dir: str | None):
    import datasets

    path = Path(source).expanduser()
    if path.suffix in FILE_BUILDERS:
        if not path.is_file():
            raise DataError(f"data.path={source!r} is invalid: no such file")
        return datasets.load_dataset(FILE_BUILDERS[path.suffix], data_files=str(path), split="train")
    if path.exists():
        raise DataError(
            f"data.path={source!r} is invalid: use a .json, .jsonl or .parquet file, or a hub name"
        )
    try:
        return datasets.load_dataset(source, data_dir=data_dir, split=split)
    except Exception as e:  # noqa: BLE001  (datasets raises many types; the message is what matters)
        raise DataError(
            f"data.path={source!r} could not be loaded ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
            "check the hub name, split and network access, or give a local file"
        ) from e


def detect_schema(columns: list[str], source: str) -> str:
    cols = set(columns)
    for schema in ("ultrafeedback", "ultrafeedback_binarized", "hh"):
        if set(REQUIRED[schema]) <= cols:
            return schema
    raise DataError(
        f"data.path={source!r} has columns {sorted(cols)}, which fit no known schema; it needs "
        + "; or ".join(f"{s}: {', '.join(REQUIRED[s])}" for s in SCHEMAS)
    )


def schema_of(source: str, columns: list[str], schema: str | None = None) -> str:
    if schema is not None:
        if schema not in SCHEMAS:
            raise DataError(f"data.schema={schema!r} is invalid: use one of {', '.join(SCHEMAS)}")
        missing = [c for c in REQUIRED[schema] if c not in columns]
        if missing:
            raise DataError(
                f"data.path={source!r} lacks column(s) {missing} of schema {schema!r}; columns: {columns}"
            )
        return schema
    return HUB_SCHEMAS.get(source.lower()) or detect_schema(columns, source)


def split_transcript(text: str) -> list[dict]:
    """``"\\n\\nHuman: a\\n\\nAssistant: b..."`` -> ``[{"role": "user", "content": "a"}, ...]``."""
    turns = []
    rest = text
    while rest:
        h = rest.find(HUMAN_MARK)
        a = rest.find(ASSISTANT_MARK)
        starts = [(i, m) for i, m in ((h, HUMAN_MARK), (a, ASSISTANT_MARK)) if i >= 0]
        if not starts:
            break
        i, mark = min(starts)
        rest = rest[i + len(mark) :]
        nxt = [j for j in (rest.find(HUMAN_MARK), rest.find(ASSISTANT_MARK)) if j >= 0]
        end = min(nxt) if nxt else len(rest)
        turns.append({"role": "user" if mark == HUMAN_MARK else "assistant", "content": rest[:end].strip()})
        rest = rest[end:]
    return turns


def hh_row(row: dict, index: int, source: str) -> dict:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise DataError(f"{source} row {index}: 'chosen' and 'rejected' must be transcript strings")
    cut = chosen.rfind(ASSISTANT_MARK)
    if cut < 0 or not rejected.startswith(chosen[: cut + len(ASSISTANT_MARK)]):
        raise DataError(
            f"{source} row {index}: chosen and rejected must share the prompt up to the last "
            f"{ASSISTANT_MARK.strip()!r} (the hh-rlhf schema)"
        )
    head = chosen[:cut]
    messages = split_transcript(head)
    if not messages or messages[-1]["role"] != "user":
        raise DataError(f"{source} row {index}: the prompt must end with a Human turn")
    return {
        "messages": messages,
        "chosen": chosen[cut + len(ASSISTANT_MARK) :].strip(),
        "rejected": rejected[cut + len(ASSISTANT_MARK) :].strip(),
    }


def _last_assistant(messages, index: int, source: str, field: str) -> str:
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        raise DataError(f"{source} row {index}: {field!r} must be a non-empty list of messages")
    last = messages[-1]
    if last.get("role") != "assistant" or not isinstance(last.get("content"), str):
        raise DataError(f"{source} row {index}: the last message of {field!r} must be the assistant's answer")
    return last["content"]


def binarized_row(row: dict, index: int, source: str) -> dict:
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise DataError(f"{source} row {index}: 'prompt' must be a non-empty string")
    chosen = _last_assistant(row.get("chosen"), index, source, "chosen")
    rejected = _last_assistant(row.get("rejected"), index, source, "rejected")
    context = [dict(m) for m in row["chosen"][:-1]] or [{"role": "user", "content": prompt}]
    return {"messages": context, "chosen": chosen, "rejected": rejected}


def ultrafeedback_row(row: dict, index: int, source: str, rng: random.Random) -> dict | None:
    prompt, comps = row.get("instruction"), row.get("completions")
    if not isinstance(prompt, str) or not isinstance(comps, list):
        raise DataError(f"{source} row {index}: needs 'instruction' (string) and 'completions' (list)")
    rated = []
    for c in comps:
        score = c.get("overall_score") if isinstance(c, dict) else None
        if (
            not isinstance(c, dict)
            or not isinstance(c.get("response"), str)
            or not isinstance(score, int | float)
        ):
            raise DataError(
                f"{source} row {index}: every completion needs 'response' and a numeric 'overall_score'"
            )
        rated.append((float(score), c["response"]))
    if len(rated) < 2:
        return None
    best = max(rated, key=lambda x: x[0])
    lower = [r for r in rated if r[0] < best[0]]
    if not lower:
        return None  # all tied: no preference
    return {
        "messages": [{"role": "user", "content": prompt}],
        "chosen": best[1],
        "rejected": rng.choice(lower)[1],
    }


def load_preferences(
    source: str,
    *,
    split: str = "train",
    schema: str | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[dict]:
    """Normalised preference rows (module docstring) from a hub dataset or a local file."""
    ds = _load_dataset(source, split, data_dir)
    kind = schema_of(source, list(ds.column_names), schema)
    rng = random.Random(seed)
    rows = []
    for i, row in enumerate(ds):
        if limit is not None and len(rows) >= limit:
            break
        if kind == "hh":
            rows.append(hh_row(row, i, source))
        elif kind == "ultrafeedback_binarized":
            rows.append(binarized_row(row, i, source))
        else:
            r = ultrafeedback_row(row, i, source, rng)
            if r is not None:
                rows.append(r)
    if not rows:
        raise DataError(f"data.path={source!r} (split {split!r}) holds no usable preference rows")
    return rows


def load_prompts(source: str, *, split: str = "train", schema: str | None = None, **kw) -> list[list[dict]]:
    """The prompts (message lists) of a preference source, or of a file with a ``prompt`` column."""
    path = Path(source).expanduser()
    if path.suffix in FILE_BUILDERS and path.is_file():
        ds = _load_dataset(source, split, None)
        cols = list(ds.column_names)
        if "prompt" in cols and not ({"chosen", "rejected"} <= set(cols)):
            out = []
            limit = kw.get("limit")
            for i, row in enumerate(ds):
                if limit is not None and len(out) >= limit:
                    break
                if not isinstance(row["prompt"], str) or not row["prompt"]:
                    raise DataError(f"{source} row {i}: 'prompt' must be a non-empty string")
                out.append([{"role": "user", "content": row["prompt"]}])
            if not out:
                raise DataError(f"data.path={source!r} holds no prompts")
            return out
    return [r["messages"] for r in load_preferences(source, split=split, schema=schema, **kw)]


def load_sft(source: str, *, split: str = "train", schema: str | None = None, **kw) -> list[dict]:
    """Supervised rows ``{"messages", "response"}``: a file with ``prompt`` and ``response`` columns,
    or any preference source (its chosen responses)."""
    path = Path(source).expanduser()
    if path.suffix in FILE_BUILDERS and path.is_file():
        ds = _load_dataset(source, split, None)
        if {"prompt", "response"} <= set(ds.column_names):
            rows = []
            limit = kw.get("limit")
            for i, row in enumerate(ds):
                if limit is not None and len(rows) >= limit:
                    break
                if (
                    not isinstance(row["prompt"], str)
                    or not isinstance(row["response"], str)
                    or not row["prompt"]
                ):
                    raise DataError(
                        f"{source} row {i}: 'prompt' and 'response' must be strings (prompt non-empty)"
                    )
                rows.append(
                    {"messages": [{"role": "user", "content": row["prompt"]}], "response": row["response"]}
                )
            if not rows:
                raise DataError(f"data.path={source!r} holds no rows")
            return rows
    return [
        {"messages": r["messages"], "response": r["chosen"]}
        for r in load_preferences(source, split=split, schema=schema, **kw)
    ]
