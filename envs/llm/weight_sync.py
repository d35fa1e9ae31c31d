"""How new weights reach the rollout actors after a learner update (``env_config.weight_sync``).

``object_store`` (default): RLlib's own sync. The driver asks the learner group for the module's
state, puts it in Ray's object store once and every rollout actor reads it (``set_state``), then tells
its engine to serve it. Simple and what a laptop needs; for a 7B model it moves 14-28 GB through the
driver and the object store at every step.

``collective`` (ours): learner rank 0 and the remote rollout actors form their own process group (a
``TCPStore`` on learner 0's node, ranks: learner 0 = 0, rollout actor *i* = *i*), apart from the
learners' data-parallel group. After an update learner 0 broadcasts the tensors that training can
change (:meth:`CausalLMModule.trained_parameters`: all of the policy LM, or only the LoRA adapters),
in a fixed order agreed when the group formed (names, shapes and dtypes are checked then), and each
actor receives them in place into its module and tells its engine to serve the result. Nothing goes
through the driver or the object store. Backend: ``gloo`` over TCP (CPU; what the tests run here) or
``nccl`` (GPU learners and actors: the tensors move GPU to GPU). ``auto`` picks ``nccl`` where the
learner has CUDA, ``gloo`` otherwise. The NCCL path is the same code with CUDA buffers; it has not
run on this project's machines (no GPU).

The group is formed on the first sync and formed again (a new port, a new epoch) whenever an actor
does not hold the current one, e.g. after RLlib restarted a failed actor. The local env runner (the
driver's, used for evaluation) does not join: it is refreshed through the object store only when an
evaluation needs it.
"""

from __future__ import annotations

import datetime
import socket

import torch

MODES = ("object_store", "collective")
BACKENDS = ("auto", "gloo", "nccl")
DEFAULTS = {"mode": "object_store", "backend": "auto", "timeout_s": 600}


def weight_sync_settings(spec) -> dict:
    """``weight_sync: collective`` or ``{mode, backend, timeout_s}``, checked (ValueError names the
    field, the value and the fix)."""
    if spec is None:
        spec = {}
    if isinstance(spec, str):
        spec = {"mode": spec}
    if not isinstance(spec, dict):
        raise ValueError(
            f"env_config.weight_sync={spec!r} is invalid: use object_store, collective or "
            "{mode: collective, backend: auto|gloo|nccl, timeout_s: 600}"
        )
    unknown = set(spec) - set(DEFAULTS)
    if unknown:
        k = sorted(unknown)[0]
        raise ValueError(
            f"env_config.weight_sync.{k}={spec[k]!r} is invalid: known keys: {', '.join(DEFAULTS)}"
        )
    s = dict(DEFAULTS, **spec)
    if s["mode"] not in MODES:
        raise ValueError(
            f"env_config.weight_sync.mode={s['mode']!r} is invalid: use one of {', '.join(MODES)}"
        )
    if s["backend"] not in BACKENDS:
        raise ValueError(
            f"env_config.weight_sync.backend={s['backend']!r} is invalid: use one of {', '.join(BACKENDS)}"
        )
    t = s["timeout_s"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 1 <= t <= 86_400:
        raise ValueError(
            f"env_config.weight_sync.timeout_s={t!r} is invalid: seconds a broadcast may wait, in [1, 86400]"
        )
    return s


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def layout(named: list[tuple[str, torch.Tensor]]) -> list[tuple[str, tuple[int, ...], str]]:
    """What both ends must agree on: names, shapes and dtypes, in broadcast order."""
    return [(n, tuple(t.shape), str(t.dtype)) for n, t in named]


def check_layout(mine: list, theirs: list, where: str) -> None:
    mine, theirs = [tuple(map(_plain, x)) for x in mine], [tuple(map(_plain, x)) for x in theirs]
    if mine == theirs:
        return
    if len(mine) != len(theirs):
        raise ValueError(
            f"weight_sync: {where} holds {len(mine)} trained tensors, the learner {len(theirs)}: "
            "the rollout actors must build the same policy (model_config) as the learners"
        )
    a, b = next((a, b) for a, b in zip(mine, theirs) if a != b)
    raise ValueError(f"weight_sync: {where} has {a}, the learner {b}: the policies differ")


def _plain(x):
    return list(x) if isinstance(x, tuple) else x


class WeightGroup:
    """One member of the learner-0-plus-rollout-actors process group (module docstring)."""

    def __init__(
        self, host: str, port: int, rank: int, world: int, backend: str, timeout_s: float, epoch: int
    ):
        import torch.distributed as dist

        self.rank, self.world, self.backend, self.epoch = rank, world, backend, epoch
        timeout = datetime.timedelta(seconds=float(timeout_s))
        self._store = dist.TCPStore(host, port, world, rank == 0, timeout=timeout)
        if backend == "gloo":
            self._pg = dist.ProcessGroupGloo(self._store, rank, world, timeout)
        elif backend == "nccl":
            options = dist.ProcessGroupNCCL.Options()
            options._timeout = timeout
            self._pg = dist.ProcessGroupNCCL(self._store, rank, world, options)
        else:
            raise ValueError(f"weight_sync.backend={backend!r}: use gloo or nccl")
        self.device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else None

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Rank 0's tensors to every member, in place, one call per tensor."""
        import torch.distributed as dist

        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        for t in tensors:
            self._pg.broadcast([t], opts).wait()


def send(group: WeightGroup, named: list[tuple[str, torch.Tensor]]) -> None:
    """Learner 0: broadcast the trained tensors (contiguous, on the backend's device)."""
    with torch.no_grad():
        out = []
        for _, t in named:
            t = t.detach()
            if group.device is not None and t.device != group.device:
                t = t.to(group.device)
            out.append(t.contiguous())
        group.broadcast(out)


def receive(group: WeightGroup, named: list[tuple[str, torch.Tensor]]) -> None:
    """A rollout actor: receive the trained tensors in place into ``named`` (its module's)."""
    with torch.no_grad():
        staged = []
        for _, t in named:
            direct = (group.device is None or t.device == group.device) and t.is_contiguous()
            staged.append(t.data if direct else torch.empty(t.shape, dtype=t.dtype, device=group.device))
        group.broadcast(staged)
        for (_, t), buf in zip(named, staged):
            if buf is not t.data:
                t.data.copy_(buf)
