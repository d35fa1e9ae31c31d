"""The judge kinds, chosen from one literal dict (:data:`KINDS`), and the checked spec of a judge.

A user's mapping (``env_config.scorer``, ``evaluate.judges[i]``, ``evaluate.likert[i]``) goes through
:func:`judge_spec`, which rejects a bad one before Ray starts with one line naming the field, the
value and the fix; :func:`build_judge` turns the resulting :class:`JudgeSpec` into a judge object.
What a kind can do decides where it may serve (``purpose``):

=========  ==============================================  ========================================
purpose    needs                                           kinds
=========  ==============================================  ========================================
train      scores (GRPO, PG-GRPO) or pairwise labels       truth, reward_model, annotator, generative
eval       verdicts on pairs (win rates)                   truth, reward_model, generative
likert     1-5 ratings                                     truth, generative
=========  ==============================================  ========================================
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.checks import check_value, fail, suggest
from pairgrpo_rllib.envs.llm.models import check_model_folder, is_promised
from pairgrpo_rllib.envs.llm.synthetic import LABEL_TEMPERATURE
from pairgrpo_rllib.envs.resources import check_gpus
from pairgrpo_rllib.judges.annotator import AnnotatorJudge
from pairgrpo_rllib.judges.base import Judge
from pairgrpo_rllib.judges.generative import GenerativeJudge
from pairgrpo_rllib.judges.reward_model import RewardModelJudge
from pairgrpo_rllib.judges.truth import TruthJudge


@dataclass(frozen=True)
class JudgeKind:
    """What one kind of judge can do, and which spec keys it takes."""

    cls: type[Judge]
    scores: bool  # score(prompts, responses) -> (N, G) float32
    labels: bool  # labels(prompts, responses, generator) -> (N, G, G) antisymmetric in {-1, 0, +1}
    verdicts: bool  # verdicts(prompts, first, second, aspect) and compare(...) in both orders
    likert: bool  # likert(prompts, responses, aspect) -> a 1-5 rating (None: unreadable) each
    keys: tuple[str, ...]  # spec keys it accepts besides ``kind``
    needs_path: bool = False  # ``path`` (a model directory or hub name) is required


KINDS: dict[str, JudgeKind] = {
    # the synthetic task's ground truth (judges/truth.py)
    "truth": JudgeKind(TruthJudge, scores=True, labels=False, verdicts=True, likert=True, keys=()),
    # a one-output sequence-classification model, in-process or in Ray actors (judges/reward_model.py)
    "reward_model": JudgeKind(
        RewardModelJudge, scores=True, labels=False, verdicts=True, likert=False,
        keys=("path", "dtype", "actors", "num_cpus", "num_gpus"), needs_path=True,
    ),
    # the synthetic task's Bradley-Terry annotator (judges/annotator.py)
    "annotator": JudgeKind(
        AnnotatorJudge, scores=False, labels=True, verdicts=False, likert=False, keys=("temperature",)
    ),
    # a causal LM asked which response is better (judges/generative.py)
    "generative": JudgeKind(
        GenerativeJudge, scores=False, labels=True, verdicts=True, likert=True,
        keys=("path", "dtype", "engine"), needs_path=True,
    ),
}  # fmt: skip

# purpose -> (the capabilities of which a kind needs one, what that means in an error message)
PURPOSES = {
    "train": (("scores", "labels"), "training needs scores or pairwise labels"),
    "eval": (("verdicts",), "win rates need pairwise verdicts"),
    "likert": (("likert",), "Likert ratings need a judge that rates"),
}


@dataclass(frozen=True)
class JudgeSpec:
    """A validated judge spec (:func:`judge_spec`); a key that a kind does not take keeps its default."""

    kind: str
    path: str | None = None  # model directory or hub name (reward_model, generative)
    dtype: str = "float32"  # the model's weights (reward_model, generative)
    # Bradley-Terry temperature of the annotator's labels; default: the datasets' label noise
    temperature: float = LABEL_TEMPERATURE
    engine: str = "transformers"  # what generates a generative judge's written answers
    actors: int = 0  # Ray actors of its own that score (reward_model; 0: in the caller's process)
    num_cpus: float = 1  # resources of each such actor
    num_gpus: float = 0

    @property
    def name(self) -> str:
        """How results name the judge: the kind, with the model where there is one."""
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def _serves(kind: JudgeKind, purpose: str) -> bool:
    return any(getattr(kind, cap) for cap in PURPOSES[purpose][0])


def judge_spec(field: str, raw, *, purpose: str, promised=()) -> JudgeSpec | None:
    """``raw`` (a mapping, or a bare kind name) checked for ``purpose`` (train, eval, likert); None
    stays None. Raises ValueError naming ``field``'s key, the value and the fix. ``promised``: model
    paths an earlier ``prepare`` stage of the same experiment will write, accepted as present."""

    if purpose not in PURPOSES:
        fail("purpose", purpose, f"use one of {', '.join(PURPOSES)}")
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"kind": raw}
    allowed = [k for k, v in KINDS.items() if _serves(v, purpose)]
    if not isinstance(raw, dict):
        fail(field, raw, f"give a mapping such as {{kind: {allowed[0]}}}; kinds: {', '.join(allowed)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        fail(f"{field}.kind", kind, f"use one of {', '.join(allowed)}{suggest(kind, allowed)}")
    spec = KINDS[kind]
    if kind not in allowed:
        can = [cap for cap in ("scores", "labels", "verdicts", "likert") if getattr(spec, cap)]
        fail(
            f"{field}.kind",
            kind,
            f"{kind} gives {' and '.join(can)} only; {PURPOSES[purpose][1]}: use one of {', '.join(allowed)}",
        )
    known = ("kind", *spec.keys)
    for key in sorted(set(raw) - set(known)):
        others = [k for k, v in KINDS.items() if key in v.keys]
        if others:
            fix = f"kind {kind} takes no {key} (only {', '.join(others)} do); leave it out"
        else:
            fix = f"unknown key{suggest(key, spec.keys)}"
        fail(f"{field}.{key}", raw[key], f"{fix}; kind {kind} takes: {', '.join(known)}")
    if isinstance(raw.get("path"), os.PathLike):
        raw = {**raw, "path": str(raw["path"])}
    out = JudgeSpec(**raw)
    if spec.needs_path:
        check_model_folder(out.path, f"{field}.path", promised)
        check_judge_model(f"{field}.path", out, promised)
    check_value(f"{field}.dtype", out.dtype, "choice", choices=names.LLM_DTYPES)
    check_value(f"{field}.engine", out.engine, "choice", choices=names.LLM_ENGINES)
    check_value(
        f"{field}.temperature",
        out.temperature,
        "float",
        low=0,
        low_open=True,
        default=LABEL_TEMPERATURE,
        fix="the annotator's Bradley-Terry temperature (the default: the datasets' label noise)",
    )
    check_value(
        f"{field}.actors",
        out.actors,
        "int",
        low=0,
        high=64,
        fix="Ray actors of its own that score; 0: in the caller's process",
    )
    for key in ("num_cpus", "num_gpus"):
        check_value(
            f"{field}.{key}",
            getattr(out, key),
            "float",
            low=0,
            high=64,
            fix="resources of each scoring actor",
        )
    if out.actors and out.num_gpus:
        check_gpus(f"{field}.num_gpus", out.num_gpus, out.num_gpus * out.actors, f"{out.actors} scorer actor(s)")
    return out


def build_judge(spec: JudgeSpec) -> Judge:
    """The judge object of a checked spec (a reward model with ``actors`` > 0: its actor pool)."""
    return KINDS[spec.kind].cls.from_spec(spec)


def check_judge_model(field: str, spec, promised=()) -> None:
    """A judge's model folder holds the kind of model the judge loads (config.json read, no weights):
    ``reward_model`` a one-output sequence classifier, ``generative`` a causal LM. A relative path
    whose parent folder exists is a local path that is missing, not a hub name."""
    if spec.path is None or spec.kind not in ("reward_model", "generative"):
        return
    p = Path(spec.path).expanduser()
    if is_promised(p, promised):
        return
    if not p.exists():
        if p.parent != Path(".") and p.parent.is_dir():
            fail(field, spec.path, f"no such folder (its parent {p.parent} exists); give the model's folder")
        return  # a hub name: checked when loaded
    try:
        config = json.loads((p / "config.json").read_text())
    except (OSError, ValueError) as exc:
        fail(field, spec.path, f"its config.json cannot be read ({type(exc).__name__}); give a saved model")
    arch = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(arch, list) or not arch:
        return  # nothing to compare: loading tells
    if spec.kind == "reward_model":
        labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
        if not any(str(a).endswith("ForSequenceClassification") for a in arch) or labels != 1:
            fail(
                field,
                spec.path,
                f"a reward_model judge needs a one-output sequence classifier, this is {arch[0]} with "
                f"{labels} output(s); give a model written by `pairgrpo llm reward-model`, or use kind generative",
            )
    elif not any(str(a).endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in arch):
        fail(
            field,
            spec.path,
            f"a generative judge needs a causal LM, this is {arch[0]}; give a chat model, or use kind reward_model",
        )
