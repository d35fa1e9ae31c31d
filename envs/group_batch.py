"""Group batches as samplers return them: dicts of numpy arrays with leading dims ``(N, G, T)``.

The columns are named in ``pairgrpo_rllib.core.names`` (with their shapes); this module only joins
the batches of several samplers (env runners) into one.
"""

from __future__ import annotations

import numpy as np

from pairgrpo_rllib.core import names


def collate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate group batches along N, padding the time axis T to the longest."""
    if not parts:
        raise ValueError("no groups were sampled")
    t_max = max(p[names.MASK].shape[2] for p in parts)
    out: dict[str, np.ndarray] = {}
    for key in parts[0]:
        arrays = []
        for p in parts:
            a = p[key]
            if a.ndim >= 3 and key not in names.NOT_TIME_INDEXED and a.shape[2] < t_max:
                pad = [(0, 0)] * a.ndim
                pad[2] = (0, t_max - a.shape[2])
                a = np.pad(a, pad)
            arrays.append(a)
        out[key] = np.concatenate(arrays, axis=0)
    return out
