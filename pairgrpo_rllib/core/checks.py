"""Argument checks: every message names the field, the value and the fix (STYLE habit 4).

:func:`fail` is the one way a check reports: ``{field}={value!r} is invalid: {fix}``. :func:`check_value`
checks a value against a kind and a range or a set of choices and writes the fix from them;
:func:`check_field` takes those from an entry of the field table (``core.defaults.Field``), so that
a range is written once, in the table. The math layer's helpers below report the same way.

Pure Python: the CLI, the math layer and the RLlib config all use it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from pairgrpo_rllib.core.defaults import Field

KINDS = ("int", "float", "bool", "choice")
_NO_DEFAULT = object()


def fail(field: str, value: object, fix: str, error: type[Exception] = ValueError) -> NoReturn:
    """Raise ``error`` with the one message format of every check."""
    raise error(f"{field}={value!r} is invalid: {fix}")


def suggest(word: object, options) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def describe(
    kind: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    none_ok: bool = False,
    choices: Sequence = (),
) -> str:
    """The values a check accepts, in words: ``an integer in [2, 1024]``, ``a finite number > 0``."""
    if kind == "bool":
        text = "true or false"
    elif kind == "choice":
        text = "one of " + ", ".join(map(repr, choices))
    else:
        text = "an integer" if kind == "int" else "a finite number"
        if low is not None and high is not None:
            text += f" in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
        elif low is not None:
            text += f" {'>' if low_open else '>='} {_num(low)}"
        elif high is not None:
            text += f" {'<' if high_open else '<='} {_num(high)}"
        text += "".join(f" or {c!r}" for c in choices)  # special values beside the numbers ('auto')
    return text + (" or None" if none_ok else "")


def _accepts(value, kind, low=None, high=None, low_open=False, high_open=False, none_ok=False, choices=()):
    if value is None:
        return none_ok
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, str) or kind == "choice":
        return value in choices
    if not (is_int(value) if kind == "int" else is_number(value)):
        return False
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


def check_value(
    field: str,
    value,
    kind: str,
    *,
    fix: str = "",
    default=_NO_DEFAULT,
    error: type[Exception] = ValueError,
    **allowed,
):
    """Return ``value`` if it is of ``kind`` ("int", "float": finite, "bool", "choice") and within
    ``allowed`` (:func:`describe`'s ``low``, ``high``, ``low_open``, ``high_open``, ``none_ok``,
    ``choices``); otherwise :func:`fail` with the accepted values, the default and ``fix`` (a note
    the range cannot say)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is invalid: use one of {', '.join(map(repr, KINDS))}")
    if not _accepts(value, kind, **allowed):
        text = "use " + describe(kind, **allowed)
        if default is not _NO_DEFAULT:
            text += f" (default {default!r})"
        fail(field, value, text + (f"; {fix}" if fix else ""), error)
    return value


def check_field(name: str, field: Field, value, error: type[Exception] = ValueError):
    """``value`` checked against the kind, range and choices of its table entry ``field``."""
    if not field.kind:
        return value
    return check_value(
        name,
        value,
        field.kind,
        low=field.low,
        high=field.high,
        low_open=field.low_open,
        high_open=field.high_open,
        none_ok=field.none_ok,
        choices=field.choices,
        fix=field.fix,
        default=field.default,
        error=error,
    )


# --- the math layer's checks (tensors' scalars compare too; no type check) -----------------------
def check_choice(field: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise fail naming all three."""
    if value not in choices:
        fail(field, value, "use " + describe("choice", choices=choices))
    return value  # type: ignore[return-value]


def check_positive(field: str, value: float, *, allow_zero: bool = False) -> float:
    bad = value < 0 if allow_zero else value <= 0
    if bad or value != value:  # NaN fails too
        fail(field, value, "use " + describe("float", 0, low_open=not allow_zero))
    return value


def check_range(field: str, value: float, low: float, high: float, *, closed: bool = True) -> float:
    ok = (low <= value <= high) if closed else (low < value < high)
    if not ok:
        fail(field, value, "use " + describe("float", low, high, low_open=not closed, high_open=not closed))
    return value
