"""Argument checks shared by the math layer: every message names the field, the value and the fix."""

from __future__ import annotations

from collections.abc import Sequence


def check_choice(field: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ValueError naming all three."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{field}={value!r} is not supported; use one of {allowed}")
    return value  # type: ignore[return-value]


def check_positive(field: str, value: float, *, allow_zero: bool = False) -> float:
    bad = value < 0 if allow_zero else value <= 0
    if bad or value != value:  # NaN fails too
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{field}={value!r} must be {bound}")
    return value


def check_range(field: str, value: float, low: float, high: float, *, closed: bool = True) -> float:
    ok = (low <= value <= high) if closed else (low < value < high)
    if not ok:
        brackets = f"[{low}, {high}]" if closed else f"({low}, {high})"
        raise ValueError(f"{field}={value!r} must lie in {brackets}")
    return value
