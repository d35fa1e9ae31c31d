"""``weight_sync: collective`` (ours): learner 0 broadcasts the trained tensors to the rollout actors.

Learner rank 0 and the remote rollout actors form their own process group (a ``TCPStore`` on learner
0's node, ranks: learner 0 = 0, rollout actor *i* = *i*), apart from the learners' data-parallel
group. After an update learner 0 broadcasts the tensors that training can change
(:meth:`CausalLMModule.trained_parameters`: all of the policy LM, or only the LoRA adapters), in a
fixed order agreed when the group formed (names, shapes and dtypes are checked then), and each actor
receives them in place into its module and tells its engine to serve the result. Backend: ``gloo``
over TCP (CPU; what the tests run here) or ``nccl`` (GPU learners and actors: the tensors move GPU to
GPU). ``auto`` picks ``nccl`` where the learner has CUDA, ``gloo`` otherwise. The NCCL path is the
same code with CUDA buffers; it has not run on this project's machines (no GPU).

The group is formed on the first sync and formed again (a new port, a new epoch) whenever an actor
does not hold the current one, e.g. after RLlib restarted a failed actor. The local env runner (the
driver's, used for evaluation) does not join: it is refreshed from the learner's state only when an
evaluation needs it.

This file holds all three ends: :class:`CollectiveSync` (the driver), :class:`LearnerEnd` (mixed into
``GroupLearner``) and :class:`ActorEnd` (mixed into ``LLMGroupRunner``).
"""

from __future__ import annotations

import datetime
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import ray
import torch
import torch.distributed as dist
from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE

from pairgrpo_rllib.envs.llm.weight_sync.object_store import WeightSync


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


# ---- the driver -------------------------------------------------------------------------------------
class CollectiveSync(WeightSync):
    """The driver's side: forms the group when needed, then has learner 0 send while the actors
    receive. With no remote actor (everything in the driver's process) it falls back to RLlib's sync."""

    def __init__(self, settings):
        self.settings = settings  # LLMSettings.weight_sync
        self.epoch = 0
        self.local_runner_stale = False

    def sync(self, algo) -> None:
        runners = algo.env_runner_group
        if runners.num_remote_env_runners() == 0:
            runners.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)
            return
        epochs = runners.foreach_env_runner(lambda r: r.weight_group_epoch(), local_env_runner=False)
        healthy = list(runners.healthy_worker_ids())
        if not epochs or len(epochs) != len(healthy) or any(e != self.epoch for e in epochs):
            self._form_group(algo, healthy)
        with ThreadPoolExecutor(1) as pool:  # actors receive while learner 0 sends
            received = pool.submit(
                runners.foreach_env_runner, lambda r: r.receive_weights(), local_env_runner=False
            )
            algo.on_learners(lambda lrn: lrn.send_weights())
            received.result()
        self.local_runner_stale = True

    def _form_group(self, algo, runner_ids: list[int]) -> None:
        """Learner 0 (rank 0, hosting the store) and the healthy remote runners (ranks 1..n) form a
        new process group; the trained tensors' layout is checked on every runner first."""
        offer = next(o for o in algo.on_learners(lambda lrn: lrn.weight_group_offer()) if o is not None)
        host, port, backend, learner_layout = offer
        ws = self.settings
        backend = backend if ws.backend == "auto" else ws.backend
        ranks = {w: i + 1 for i, w in enumerate(sorted(runner_ids))}
        world, epoch, timeout = len(ranks) + 1, self.epoch + 1, ws.timeout_s
        runners = algo.env_runner_group
        problems = runners.foreach_env_runner(
            lambda r: r.weight_layout_problem(learner_layout), local_env_runner=False, remote_worker_ids=list(ranks)
        )
        problem = next((p for p in problems if p), None)
        if problem:
            raise ValueError(problem)
        with ThreadPoolExecutor(1) as pool:  # the store's host waits for every member to connect
            joined = pool.submit(
                runners.foreach_env_runner,
                lambda r: r.join_weight_group(host, port, ranks[r.worker_index], world, backend, timeout, epoch),
                local_env_runner=False,
                remote_worker_ids=list(ranks),
            )
            algo.on_learners(lambda lrn: lrn.join_weight_group(host, port, world, backend, timeout, epoch))
            joined.result()
        self.epoch = epoch

    def refresh_local_runner(self, algo) -> None:
        """The driver's env runner (evaluation) after collective syncs: the learner's module state."""
        if self.local_runner_stale:
            state = algo.learner_group.get_state(
                components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}", inference_only=True
            )[COMPONENT_LEARNER]
            algo.env_runner_group.local_env_runner.set_state(state)
            self.local_runner_stale = False


# ---- the learner's end (GroupLearner) ----------------------------------------------------------------
class LearnerEnd:
    """Learner rank 0 offers the group's address, hosts it and sends; other learners do nothing."""

    _weight_group: WeightGroup | None = None

    def _trained(self):
        return self._policy_module().trained_parameters()

    @staticmethod
    def _is_rank0() -> bool:
        return not dist.is_initialized() or dist.get_rank() == 0

    def weight_group_offer(self):
        """Learner 0: ``(host, free port, backend for auto, layout of the trained tensors)``; other
        learners: None."""
        if not self._is_rank0():
            return None
        trained = self._trained()
        backend = "nccl" if trained and trained[0][1].is_cuda else "gloo"
        return ray.util.get_node_ip_address(), free_port(), backend, layout(trained)

    def join_weight_group(self, host, port, world, backend, timeout_s, epoch):
        """Learner 0 joins the group as rank 0 (it hosts the store)."""
        if self._is_rank0():
            self._weight_group = None  # an old group is dropped before the new one forms
            self._weight_group = WeightGroup(host, port, 0, world, backend, timeout_s, epoch)

    def send_weights(self) -> float:
        """Learner 0 broadcasts its trained tensors; returns the seconds taken (0 elsewhere)."""
        if not self._is_rank0():
            return 0.0
        clock = time.perf_counter()
        send(self._weight_group, self._trained())
        return time.perf_counter() - clock


# ---- the rollout actor's end (LLMGroupRunner) --------------------------------------------------------
class ActorEnd:
    """A rollout actor checks the layout, joins as its rank, receives into its module and reloads its
    engine."""

    _weight_group: WeightGroup | None = None

    def weight_layout_problem(self, learner_layout) -> str | None:
        """None when this actor's trained tensors (names, shapes, dtypes) equal the learner's, else
        the mismatch in words (returned, not raised: RLlib would count a raise as a dead actor)."""
        try:
            check_layout(
                layout(self.module.trained_parameters()), learner_layout, f"rollout actor {self.worker_index}"
            )
        except ValueError as exc:
            return str(exc)
        return None

    def join_weight_group(
        self, host: str, port: int, rank: int, world: int, backend: str, timeout_s: float, epoch: int
    ):
        self._weight_group = None  # an old group is dropped before the new one forms
        self._weight_group = WeightGroup(host, port, rank, world, backend, timeout_s, epoch)
        return rank

    def weight_group_epoch(self) -> int | None:
        return None if self._weight_group is None else self._weight_group.epoch

    def receive_weights(self) -> float:
        """Receive learner 0's broadcast into the module, then serve it; returns the seconds taken."""
        clock = time.perf_counter()
        receive(self._weight_group, self.module.trained_parameters())
        self.engine.load_weights(self.module.merged_state_dict())
        return time.perf_counter() - clock
