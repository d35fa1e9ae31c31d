"""What the side-by-side timing benchmarks share: their command line and a local Ray instance.

Imported by the scripts beside it (``python benchmarks/NAME.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import argparse


def timing_args(description: str | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the systems")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per system and round")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    return ap.parse_args()


def local_ray() -> None:
    """Ray on this machine's two cores, quiet (the benchmarks print their own lines)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
