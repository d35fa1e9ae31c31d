"""The registry of judge kinds: what each kind says it can do is what its class implements, which
kinds serve which purpose, and every bad spec is rejected naming the field, the value and the fix."""

import dataclasses

import pytest

from pairgrpo_rllib.envs.llm.synthetic import LABEL_TEMPERATURE
from pairgrpo_rllib.judges import KINDS, PURPOSES, JudgeSpec, build_judge, judge_spec
from pairgrpo_rllib.judges.annotator import AnnotatorJudge

CAPABILITIES = {
    "scores": ("score",),
    "labels": ("labels",),
    "verdicts": ("verdicts", "compare"),
    "likert": ("likert",),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kinds_capabilities_are_what_its_class_implements(kind):
    entry = KINDS[kind]
    assert entry.cls.kind == kind
    for capability, methods in CAPABILITIES.items():
        for method in methods:
            assert callable(getattr(entry.cls, method, None)) == getattr(entry, capability), (
                capability,
                method,
            )
    # training takes labels from a judge that gives labels and no scores
    assert entry.cls.pairwise == (entry.labels and not entry.scores)
    assert set(entry.keys) <= {f.name for f in dataclasses.fields(JudgeSpec)} - {"kind"}
    assert entry.needs_path == ("path" in entry.keys)


def test_purposes_pick_the_kinds_that_can_serve():
    def kinds(purpose):
        return {k for k, v in KINDS.items() if any(getattr(v, c) for c in PURPOSES[purpose][0])}

    assert kinds("train") == {"truth", "reward_model", "annotator", "generative"}
    assert kinds("eval") == {"truth", "reward_model", "generative"}
    assert kinds("likert") == {"truth", "generative"}
    for purpose in PURPOSES:
        for kind in kinds(purpose) - {"reward_model", "generative"}:  # the others need a model path
            assert judge_spec("f", {"kind": kind}, purpose=purpose).kind == kind


@pytest.mark.parametrize(
    ("raw", "purpose", "message"),
    [
        ({"kind": "annotator"}, "eval", r"f\.kind='annotator' is invalid: annotator gives labels only; win rates"),
        ({"kind": "reward_model", "path": "x"}, "likert", r"f\.kind='reward_model' is invalid: .*Likert.*truth, generative"),
        ({"kind": "judge", "path": "x"}, "train", r"f\.kind='judge' is invalid: use one of truth, reward_model, annotator, generative"),
        ({"kind": "reward_modle"}, "eval", r"f\.kind='reward_modle' is invalid: .*did you mean 'reward_model'\?"),
        ({"kind": "truth", "pth": "x"}, "train", r"f\.pth='x' is invalid: unknown key; kind truth takes: kind$"),
        ({"kind": "reward_model", "path": "x", "dtpye": "float32"}, "train", r"f\.dtpye=.*did you mean 'dtype'\?.*takes: kind, path, dtype"),
        ({"kind": "truth", "actors": 1}, "train", r"f\.actors=1 is invalid: kind truth takes no actors \(only reward_model"),
        ({"kind": "annotator", "temperature": 0}, "train", r"f\.temperature=0 is invalid: .*> 0"),
        ({"kind": "annotator", "temperature": True}, "train", r"f\.temperature=True"),
        ({"kind": "reward_model"}, "train", r"f\.path=None is invalid"),
        ({"kind": "generative", "path": "/nonexistent/judge"}, "eval", r"f\.path='/nonexistent/judge' is invalid: no config\.json"),
        (["truth"], "eval", r"f=\['truth'\] is invalid: give a mapping"),
    ],
)  # fmt: skip
def test_bad_specs_name_the_field_the_value_and_the_fix(raw, purpose, message):
    with pytest.raises(ValueError, match=message):
        judge_spec("f", raw, purpose=purpose)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dtype": "int8"}, "f.dtype"),
        ({"actors": 65}, "f.actors"),
        ({"actors": True}, "f.actors"),
        ({"actors": 1.5}, "f.actors"),
        ({"num_cpus": -1}, "f.num_cpus"),
        ({"num_gpus": "one"}, "f.num_gpus"),
    ],
)
def test_bad_reward_model_values_are_rejected(tiny_rm, change, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.") + "="):
        judge_spec("f", {"kind": "reward_model", "path": tiny_rm, **change}, purpose="train")


def test_a_generative_judges_engine_is_checked(tiny_lm):
    with pytest.raises(ValueError, match=r"f\.engine='tgi' is invalid: use one of 'transformers', 'vllm'"):
        judge_spec("f", {"kind": "generative", "path": tiny_lm, "engine": "tgi"}, purpose="eval")


def test_specs_fill_defaults_once_and_name_the_judge(tiny_rm):
    assert judge_spec("f", None, purpose="train") is None
    assert judge_spec("f", "truth", purpose="likert") == JudgeSpec("truth")  # a bare kind name
    spec = judge_spec("f", {"kind": "annotator"}, purpose="train")
    assert spec.temperature == LABEL_TEMPERATURE == 0.25 and spec.name == "annotator"
    judge = build_judge(spec)
    assert isinstance(judge, AnnotatorJudge) and judge.temperature == LABEL_TEMPERATURE and judge.pairwise
    rm = judge_spec("f", {"kind": "reward_model", "path": tiny_rm, "num_cpus": 0.5}, purpose="eval")
    assert (rm.actors, rm.num_cpus, rm.dtype, rm.name) == (0, 0.5, "float32", f"reward_model:{tiny_rm}")
    with pytest.raises(ValueError, match="purpose='score' is invalid"):
        judge_spec("f", {"kind": "truth"}, purpose="score")


def test_build_judge_gives_each_kind_its_class(tiny_lm, tiny_rm):
    paths = {"reward_model": tiny_rm, "generative": tiny_lm}
    for kind, entry in KINDS.items():
        raw = {"kind": kind, **({"path": paths[kind]} if entry.needs_path else {})}
        judge = build_judge(judge_spec("f", raw, purpose="train"))
        assert type(judge) is entry.cls and judge.kind == kind
        judge.stop()


def test_a_judges_model_must_be_of_its_kind_for_training_too(tiny_lm, tiny_rm):
    """A causal LM given as a training scorer's reward model is refused before Ray (config.json read,
    no weights), as in the evaluate section; the right kinds pass."""
    with pytest.raises(ValueError, match=r"env_config\.scorer\.path=.*one-output sequence classifier"):
        judge_spec("env_config.scorer", {"kind": "reward_model", "path": tiny_lm}, purpose="train")
    with pytest.raises(ValueError, match=r"env_config\.scorer\.path=.*needs a causal LM"):
        judge_spec("env_config.scorer", {"kind": "generative", "path": tiny_rm}, purpose="train")
    assert judge_spec("env_config.scorer", {"kind": "reward_model", "path": tiny_rm}, purpose="train").path == tiny_rm
    assert judge_spec("env_config.scorer", {"kind": "generative", "path": tiny_lm}, purpose="train").kind == "generative"
