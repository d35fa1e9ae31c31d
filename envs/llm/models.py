"""Causal LMs and tokenizers: loading any Hugging Face path or hub name, and the project's tiny model.

``load_tokenizer`` / ``load_causal_lm`` are the real loading code (``transformers``' Auto classes, by
local path or hub name, ``trust_remote_code`` off unless asked). No hub is reachable on the machines
the project is developed on, so tests and the quickstart use :func:`make_tiny`: a byte-level BPE
tokenizer trained with ``tokenizers`` on the synthetic task's text and a small Qwen2-architecture
causal LM (random init), both written with ``save_pretrained`` so that every loader (transformers,
vLLM) reads them like any downloaded model.

Sizes: hidden 64, 2 heads (head_dim 32, the smallest vLLM's CPU attention backend takes), 2 layers,
vocabulary 512: ~0.1 M parameters, a forward pass of 64 sequences of 48 tokens in milliseconds.

Chat format: the tokenizer's own chat template when it has one (the tiny tokenizer ships one);
otherwise :data:`PLAIN_TEMPLATE`, the HH-RLHF transcript form ``"\\n\\nHuman: ...\\n\\nAssistant:"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pairgrpo_rllib.core import names
from pairgrpo_rllib.core.checks import fail
from pairgrpo_rllib.envs.llm.synthetic import corpus

PAD, EOS, USER, ASSISTANT = "<|pad|>", "<|endoftext|>", "<|user|>", "<|assistant|>"
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}"
    "{{ m['content'] }}"
    "{% if m['role'] != 'user' %}<|endoftext|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
# For a tokenizer without a chat template (ours, documented in docs/llm.md).
PLAIN_TEMPLATE = "\n\nHuman: {prompt}\n\nAssistant:"  # one turn; more turns alternate the same way
TINY_DEFAULTS = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "vocab_size": 512,
    "max_position_embeddings": 256,
}
def lm_spaces(vocab_size: int, max_prompt_tokens: int):
    """The (observation, action) spaces RLlib's plumbing asks for: prompt ids and one token."""
    import gymnasium as gym
    import numpy as np

    obs = gym.spaces.Box(0, vocab_size - 1, shape=(max_prompt_tokens,), dtype=np.int64)
    return obs, gym.spaces.Discrete(vocab_size)


def promised_paths(paths) -> frozenset[Path]:
    """``paths`` (strings or paths) as the checks compare them: absolute, ``~`` expanded."""
    return frozenset(Path(p).expanduser().resolve() for p in paths)


def is_promised(path, promised=()) -> bool:
    """True for a path that an earlier stage of the same run will create (an experiment's
    ``prepare``; ``promised``: those paths, see ``app.prepare.promised_outputs``): the checks before
    any work accept it as present."""
    p = Path(path).expanduser().resolve()
    return p in promised_paths(promised)


def check_model_path(name_or_path: str, field: str = "model.name_or_path", promised=()) -> None:
    """Fail early, naming the field, when a local-looking path has no model in it (unless it is
    ``promised``: made by an earlier stage of the same run).

    A string that is not an existing directory is taken as a hub name (``org/name``); with
    ``HF_HUB_OFFLINE=1`` (or no network) loading it fails inside ``from_pretrained``, whose error we
    re-raise with the field named (:func:`load_causal_lm`).
    """
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ValueError(f"{field}={name_or_path!r} is invalid: give a local model directory or a hub name")
    p = Path(name_or_path).expanduser()
    looks_local = name_or_path.startswith((".", "/", "~")) or p.exists() or name_or_path.count("/") != 1
    if looks_local and not (p / "config.json").is_file() and not is_promised(p, promised):
        raise ValueError(
            f"{field}={name_or_path!r} is invalid: no config.json there; give a directory written by "
            "save_pretrained (e.g. `pairgrpo llm make-tiny DIR`) or a hub name like Qwen/Qwen2.5-0.5B-Instruct"
        )


# Files of which a saved tokenizer has at least one (fast: tokenizer.json; slow: a vocabulary file).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
MIN_VOCAB = 16  # fewer tokens than this: transformers made a placeholder, not the model's tokenizer
_FOLDERS: dict[tuple, object] = {}  # model folders that passed check_model_folder: their tokenizer


def local_model_dir(name_or_path, promised=()) -> Path | None:
    """The directory a model path names, or None for a hub name or a ``promised`` path (checked
    when loaded, or made by an earlier stage of the same run)."""
    if not isinstance(name_or_path, str) or not name_or_path:
        return None
    p = Path(name_or_path).expanduser()
    if not p.is_dir() or is_promised(p, promised):
        return None
    return p


def _config_json(field: str, name_or_path: str, folder: Path) -> dict:
    path = folder / "config.json"
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        where = f" (line {e.lineno}, column {e.colno}: {e.msg})" if isinstance(e, json.JSONDecodeError) else ""
        fail(field, name_or_path, f"{path} is not readable JSON{where}; rewrite it with save_pretrained")
    if not isinstance(hf, dict) or not hf.get("model_type"):
        fail(
            field,
            name_or_path,
            f"{path} has no model_type (architectures: {hf.get('architectures') if isinstance(hf, dict) else None!r})"
            "; a model's config.json names its model_type and architectures: rewrite it with save_pretrained",
        )
    return hf


def check_model_folder(
    name_or_path: str,
    field: str = "model.name_or_path",
    promised=(),
    *,
    trust_remote_code: bool = False,
    lora_targets=None,
):
    """A local model folder checked whole, before Ray starts (:func:`check_model_path` first):
    ``config.json`` readable with a ``model_type``; tokenizer files present and loading into a real
    vocabulary no larger than the model's ``vocab_size``, with an EOS token; LoRA ``lora_targets``
    that match a module of the architecture (built on the meta device: no weights read). Returns
    the tokenizer (None for a hub name or a ``promised`` path, which are checked when loaded)."""
    check_model_path(name_or_path, field, promised)
    folder = local_model_dir(name_or_path, promised)
    if folder is None:
        return None
    # validate() runs several times per process (RLlib copies configs): a folder passes once
    stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(folder.iterdir()) if f.is_file())
    key = (str(folder.resolve()), stamp, trust_remote_code, tuple(lora_targets or ()))
    if key in _FOLDERS:
        return _FOLDERS[key]
    hf = _config_json(field, name_or_path, folder)
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        fail(
            field,
            name_or_path,
            f"no tokenizer files there (one of {', '.join(TOKENIZER_FILES)}); save the model's tokenizer "
            "beside it with tokenizer.save_pretrained(DIR)",
        )
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001  (tokenizers fail in many types; the message is what matters)
        fail(field, name_or_path, f"its tokenizer does not load ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
    vocab = len(tok)
    if vocab < MIN_VOCAB:
        fail(field, name_or_path, f"its tokenizer has {vocab} token(s); the tokenizer files are incomplete")
    limit = hf.get("vocab_size")
    if isinstance(limit, int) and vocab > limit:
        fail(
            field,
            name_or_path,
            f"its tokenizer has {vocab} tokens, more than the model's vocab_size {limit} (config.json); "
            "pair the model with its own tokenizer",
        )
    if tok.eos_token is None:
        fail(field, name_or_path, "its tokenizer has no eos_token (nor a pad_token to fall back on); set one")
    if lora_targets:
        _check_lora_targets(field, name_or_path, folder, lora_targets, trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    _FOLDERS[key] = tok
    return tok


def module_names(folder: Path, trust_remote_code: bool = False) -> list[str]:
    """The module paths of the causal LM at ``folder``, built on the meta device (no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return [n for n, _ in model.named_modules() if n]


def _check_lora_targets(field: str, name_or_path: str, folder: Path, targets, trust_remote_code: bool) -> None:
    names_ = module_names(folder, trust_remote_code)
    # peft's rule for a list of names: a module matches when its path is the name or ends with ".name"
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names_)]
    if missing:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in names_ if not n.rsplit(".", 1)[-1].isdigit()})
        fail(
            "model_config.lora.target_modules",
            list(targets),
            f"{missing} match no module of the model at {name_or_path!r}; its module names: {', '.join(leaves)}",
        )


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False, padding_side: str = "left"):
    from transformers import AutoTokenizer

    check_model_path(name_or_path)
    tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    tok.padding_side = padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def torch_dtype(name: str):
    import torch

    if name not in names.LLM_DTYPES:
        raise ValueError(f"model.dtype={name!r} is invalid: use one of {', '.join(names.LLM_DTYPES)}")
    return getattr(torch, name)


def load_causal_lm(name_or_path: str, *, dtype: str = "float32", trust_remote_code: bool = False):
    from transformers import AutoModelForCausalLM

    check_model_path(name_or_path)
    try:
        return AutoModelForCausalLM.from_pretrained(
            name_or_path, dtype=torch_dtype(dtype), trust_remote_code=trust_remote_code
        )
    except OSError as e:
        raise ValueError(
            f"model.name_or_path={name_or_path!r} could not be loaded ({str(e).splitlines()[0]}); "
            "check the path, or the hub name and network access"
        ) from e


def format_prompt(tokenizer, prompt: str | list[dict]) -> str:
    """The text the model continues: the chat template's generation prompt, else PLAIN_TEMPLATE.

    ``prompt``: one user message, or a conversation (``{"role", "content"}`` dicts ending with the
    user's turn).
    """
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    turns = "".join(
        ("\n\nHuman: " if m["role"] == "user" else "\n\nAssistant: ") + m["content"] for m in messages
    )
    return turns + "\n\nAssistant:"


def train_tokenizer(texts: list[str], vocab_size: int = TINY_DEFAULTS["vocab_size"]):
    """A byte-level BPE tokenizer (``tokenizers``) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, USER, ASSISTANT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, eos_token=EOS, bos_token=None, unk_token=None
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def make_tiny(out: str | Path, *, seed: int = 0, **sizes) -> Path:
    """Write a tiny tokenizer + Qwen2 causal LM (random init from ``seed``) to ``out``.

    ``sizes`` override :data:`TINY_DEFAULTS`. The directory is written next to ``out`` and renamed
    into place, so an interrupted call leaves nothing half-written.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM


    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"DIR={str(out)!r} is invalid: it exists and is not empty; choose a new directory")
    unknown = set(sizes) - set(TINY_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown size options {sorted(unknown)}; use {sorted(TINY_DEFAULTS)}")
    dims = {**TINY_DEFAULTS, **sizes}
    head_dim = dims["hidden_size"] // dims["num_attention_heads"]
    if head_dim < 32 or dims["hidden_size"] % dims["num_attention_heads"]:
        raise ValueError(
            f"hidden_size={dims['hidden_size']} with num_attention_heads={dims['num_attention_heads']} gives "
            f"head_dim {head_dim}; vLLM's CPU backend needs head_dim >= 32 (e.g. hidden 64, 2 heads)"
        )
    tok = train_tokenizer(corpus(seed), vocab_size=dims["vocab_size"])
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=dims["hidden_size"],
        intermediate_size=dims["intermediate_size"],
        num_hidden_layers=dims["num_hidden_layers"],
        num_attention_heads=dims["num_attention_heads"],
        num_key_value_heads=dims["num_key_value_heads"],
        max_position_embeddings=dims["max_position_embeddings"],
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
        dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=False)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "pairgrpo_tiny.json").write_text(json.dumps({"seed": seed, **dims}, indent=2) + "\n")
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out
