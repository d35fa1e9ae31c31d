"""The YAML the experiment files and ``--set`` values are read with: strict where plain YAML is lax.

* Duplicate keys are an error (plain YAML silently keeps the last one).
* Aliases (``*name``) are an error: a 1 KB file of nested aliases expands to gigabytes.
* Numbers read the way people write them: ``3e-4`` and ``1e6`` are floats (YAML 1.1 reads a
  mantissa without a dot as a string, and RLlib then complains about learning-rate schedules).
* Text that is not UTF-8 is an error naming the file, not a ``UnicodeDecodeError``.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml


class YAMLInputError(ValueError):
    """Bad YAML text; the message names where and what."""


class StrictLoader(yaml.SafeLoader):
    pass


# A copy of SafeLoader's resolvers (they are a class attribute shared by every loader), plus the
# exponent forms YAML 1.1 reads as strings: 3e-4, 1E6, 1.5e3, .5e-2.
StrictLoader.yaml_implicit_resolvers = {
    k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _compose_node(self, parent, index):
    if self.check_event(yaml.AliasEvent):
        event = self.peek_event()
        raise yaml.composer.ComposerError(
            None,
            None,
            f"alias *{event.anchor} is not allowed (write the value out; aliases can expand without limit)",
            event.start_mark,
        )
    return yaml.SafeLoader.compose_node(self, parent, index)


def _construct_mapping(self, node, deep=False):
    if isinstance(node, yaml.MappingNode):
        self.flatten_mapping(node)
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a mapping key must be a plain value, got {key!r}", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key] + 1}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(self, node, deep=deep)


StrictLoader.compose_node = _compose_node
StrictLoader.construct_mapping = _construct_mapping


def _one_line(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def loads(text: str, where: str = "<text>"):
    """Parse ``text``; a ``YAMLInputError`` naming ``where`` and the line on bad input."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (StrictLoader is a SafeLoader)
    except yaml.YAMLError as exc:
        raise YAMLInputError(f"{where}: not valid YAML ({_one_line(exc)})") from None


def load_file(path: Path):
    """Read and parse a YAML file (UTF-8)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YAMLInputError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); pass an experiment YAML"
        ) from None
    except OSError as exc:
        raise YAMLInputError(
            f"{path}: cannot be read ({exc.strerror}); check the path and its permissions"
        ) from None
    return loads(text, str(path))
