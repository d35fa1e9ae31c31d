"""Seeds of a trial: every random stream derives from the trial's seed. Standard library only.

A study's seeds must be independent runs: two seeds may share no random stream (start states,
action noise, preference labels), and one seed must reproduce exactly. :func:`derive_seed` maps the
trial seed and a purpose (``"runner"``, ``"labels"``, a worker index) to a 63-bit seed through a
cryptographic hash, so streams of different purposes or seeds are unrelated, and nothing depends on
the order in which streams are created.
"""

from __future__ import annotations

import hashlib


def derive_seed(*parts: int | str | None) -> int:
    """A seed in ``[0, 2**63)`` for the stream named by ``parts`` (e.g. ``(seed, "runner", 2)``)."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1
