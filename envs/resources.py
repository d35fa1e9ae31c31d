"""GPUs and CPUs a run asks for against those it can get, checked before Ray starts.

The rule (:func:`available`): inside a Ray process, or with Ray already started, the cluster's
``GPU`` resources; with ``RAY_ADDRESS`` naming a cluster this process has not joined yet, nothing is
known before joining, so the request is left to Ray; otherwise (a local Ray instance will be started
on this machine) the GPUs torch sees here (``torch.cuda.device_count()``).
"""

from __future__ import annotations

import os

from pairgrpo_rllib.core.checks import fail


def available(resource: str) -> tuple[float | None, str]:
    """``(how many, where they were counted)`` of ``resource`` ("GPU" or "CPU"): the Ray cluster's
    once Ray runs; ``None`` before joining a cluster named by RAY_ADDRESS (nothing is known yet);
    else this machine's, what a local Ray instance would offer (GPUs: ``torch.cuda.device_count()``,
    CPUs: ``os.cpu_count()``)."""
    import ray

    if ray.is_initialized():
        return float(ray.cluster_resources().get(resource, 0)), "the Ray cluster"
    if os.environ.get("RAY_ADDRESS"):
        return None, f"the cluster at RAY_ADDRESS={os.environ['RAY_ADDRESS']}"
    if resource == "GPU":
        import torch

        return float(torch.cuda.device_count()), "this machine (torch.cuda.device_count(); no RAY_ADDRESS set)"
    return float(os.cpu_count() or 1), "this machine (os.cpu_count(); no RAY_ADDRESS set)"


def check_gpus(field: str, value, total: float, what: str) -> None:
    """Fail naming ``field`` when ``total`` GPUs (``what`` asks for them) exceed those available."""
    if not total:
        return
    have, where = available("GPU")
    if have is not None and total > have:
        fail(
            field,
            value,
            f"{what} request {total:g} GPU(s) in all, {where} has {have:g}; set it to 0 or run where "
            "GPUs are (RAY_ADDRESS)",
        )


def check_trial_cpus(field: str, value, bundles: list[dict]) -> None:
    """A trial's placement group (``bundles``: the driver, learners, rollout actors, scorer actors)
    must fit the CPUs there are: Tune would otherwise wait forever for resources no node has."""
    total = sum(float(b.get("CPU", 0)) for b in bundles)
    have, where = available("CPU")
    if have is not None and total > have:
        fail(
            field,
            value,
            f"one trial asks for {total:g} CPUs (the driver, learners, rollout actors and scorer actors, "
            f"{len(bundles)} bundles), {where} has {have:g}; lower num_env_runners or scorer.actors, "
            "or run where more CPUs are (RAY_ADDRESS)",
        )
