"""``pairgrpo/CrashOnce-v0``: a fault-injection wrapper to check that a run survives a failing trial.

It wraps any gymnasium id and raises ``RuntimeError`` at the ``crash_after_steps``-th step it takes,
once per ``marker`` file: the first crash creates the marker, later instances (the retried trial)
never crash. Use it to see Tune's ``max_failures`` retry a trial and the report mark it::

    environment: {env: pairgrpo/CrashOnce-v0,
                  env_config: {inner: HalfCheetah-v4, crash_after_steps: 500, marker: /tmp/crashed}}
    max_failures: 1

``fault`` picks what is raised, as the real failure reaches the trial: ``runtime`` (the default, a
``RuntimeError``), ``no_space`` (``OSError`` errno ENOSPC, as a write to a full disk) or
``out_of_memory`` (``ray.exceptions.OutOfMemoryError`` with the text of Ray's memory monitor, its
numbers made up).

Everything else (spaces, MuJoCo state for branching, the step limit) is the inner env's.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import gymnasium as gym

ENV_ID = "pairgrpo/CrashOnce-v0"


class CrashOnce(gym.Wrapper):
    metadata = {"render_modes": []}  # gym.make reads it from the class

    FAULTS = ("runtime", "no_space", "out_of_memory")

    def __init__(
        self,
        inner: str = "HalfCheetah-v4",
        crash_after_steps: int = 1000,
        marker: str = "",
        fault: str = "runtime",
    ):
        if fault not in self.FAULTS:
            raise ValueError(f"env_config.fault={fault!r}: use one of {list(self.FAULTS)}")
        if not marker:
            raise ValueError("env_config.marker is missing: give a file path that records the one crash")
        if int(crash_after_steps) < 1:
            raise ValueError(f"env_config.crash_after_steps={crash_after_steps!r}: use an integer >= 1")
        super().__init__(gym.make(inner))
        self.crash_after_steps = int(crash_after_steps)
        self.marker = Path(marker)
        self.fault = fault
        self._steps = 0

    def step(self, action):
        self._steps += 1
        if self._steps >= self.crash_after_steps and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text("crashed once\n")
            raise self._error(f"CrashOnce: injected failure after {self._steps} steps (marker {self.marker})")
        return self.env.step(action)

    def _error(self, text: str) -> Exception:
        if self.fault == "no_space":
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), text)
        if self.fault == "out_of_memory":
            from ray.exceptions import OutOfMemoryError

            return OutOfMemoryError(
                f"{text}: Task was killed due to the node running low on memory.\n"
                "Memory on the node (IP: 10.0.0.1, ID: 0123abcd) was 7.45GB used / 7.77GB limit "
                "(0.958838), which exceeds the memory usage threshold of 0.95."
            )
        return RuntimeError(text)


def register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=CrashOnce)
