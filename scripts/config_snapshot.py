"""Every shipped experiment YAML built into its RLlib configs, as JSON: the before/after check of a
refactoring that must not change behaviour.

    python scripts/config_snapshot.py OUT.json          # on the tree as it is
    python scripts/config_snapshot.py --diff A.json B.json

For each ``tune_configs/*.yaml`` and each of its algorithms, ``build_config`` with the first seed,
then ``validate()`` (paths made by a ``prepare:`` stage count as promised), and the config's
``to_dict()`` with classes and objects written as their qualified names.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, str):
        return x.replace(str(ROOT), "<repo>")  # two checkouts compare equal
    if isinstance(x, int | float | bool) or x is None:
        return x
    if isinstance(x, type):
        return f"{x.__module__}.{x.__qualname__}"
    return type(x).__qualname__


def _promised(spec: dict):
    """The paths a ``prepare:`` stage will write count as present while the config is checked (the
    block form of older trees)."""
    import contextlib

    from pairgrpo_rllib.app.prepare import promised_outputs
    from pairgrpo_rllib.envs.llm import models

    if not hasattr(models, "promised"):  # newer trees pass the paths as a value (_made)
        return contextlib.nullcontext()
    return models.promised(promised_outputs(spec.get("prepare") or []))


def _made(spec: dict) -> frozenset:
    from pairgrpo_rllib.app.prepare import promised_outputs
    from pairgrpo_rllib.envs.llm.models import promised_paths

    return promised_paths(promised_outputs(spec.get("prepare") or []))


def snapshot() -> dict:
    from pairgrpo_rllib.app import experiment as E

    out = {}
    for path in sorted((ROOT / "tune_configs").glob("*.yaml")):
        try:
            spec = E.load(path)
        except Exception as exc:  # noqa: BLE001 - recorded, compared like any other outcome
            out[path.name] = {"load_error": f"{type(exc).__name__}: {exc}"}
            continue
        seeds = spec.get("seeds") or [0]
        for algo in E.algorithms_of(spec):
            key = f"{path.name}:{algo}"
            try:
                cfg = E.build_config(spec, algo, seeds[0], resolve_search=True)
            except Exception as exc:  # noqa: BLE001
                out[key] = {"build_error": f"{type(exc).__name__}: {exc}"}
                continue
            if hasattr(cfg, "promised_paths"):  # the GRPO family's configs take them as a value
                cfg.promised_paths = _made(spec)
            try:
                with _promised(spec):
                    cfg.validate()
                validated = True
            except Exception as exc:  # noqa: BLE001
                validated = f"{type(exc).__name__}: {exc}"
            d = cfg.to_dict()
            out[key] = {"validate": validated, "config": _plain(d)}
    return out


def diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    lines = []
    for k in sorted(set(a) | set(b)):
        where = f"{prefix}.{k}" if prefix else k
        if k not in a:
            lines.append(f"+ {where} = {b[k]!r}")
        elif k not in b:
            lines.append(f"- {where} = {a[k]!r}")
        elif isinstance(a[k], dict) and isinstance(b[k], dict):
            lines += diff(a[k], b[k], where)
        elif a[k] != b[k]:
            lines.append(f"~ {where}: {a[k]!r} -> {b[k]!r}")
    return lines


if __name__ == "__main__":
    if sys.argv[1] == "--diff":
        a, b = (json.loads(Path(p).read_text()) for p in sys.argv[2:4])
        print("\n".join(diff(a, b)) or "no difference")
    else:
        Path(sys.argv[1]).write_text(json.dumps(snapshot(), indent=1, sort_keys=True))
        print(f"wrote {sys.argv[1]}")
