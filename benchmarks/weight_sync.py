"""Weight sync, learner -> two remote rollout actors: RLlib's object store against our collective
broadcast (``env_config.weight_sync``), for three model sizes.

What is timed: from the call that starts a sync until both remote actors serve the new weights
(a no-op call to each actor after the sync returns; Ray runs an actor's calls in order, so it
completes after the actor's ``set_state`` / ``receive_weights``). RLlib's path also refreshes the
driver's own runner; the collective path leaves that to the next evaluation (as in training). Before
each timed sync the learner's weights sequence number is advanced, so RLlib does not skip the copy.
Both algorithms live side by side; rounds are interleaved; median over rounds after one warm-up
sync each (the collective one forms its process group then). Backend here: gloo over loopback TCP
on one machine (2 cores); on a GPU cluster the collective path runs NCCL, not measured here.

Usage: ``.venv/bin/python benchmarks/weight_sync.py [--rounds 7] [--out docs/data/weight_sync.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

SIZES = {  # name -> make_tiny sizes (head_dim 32 or 64)
    "tiny": {},
    "small": {
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
    },
    "medium": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 8,
        "num_attention_heads": 12,
        "num_key_value_heads": 12,
    },
}


def build(model: str, task: Path, mode: str):
    from pairgrpo_rllib.algorithms.registry import algorithm_config
    from pairgrpo_rllib.core import names

    return (
        algorithm_config("GRPO")
        .environment(
            names.LLM_ENV,
            env_config={
                "prompts": {"path": str(task / "sft_train.jsonl"), "limit": 64},
                "scorer": {"kind": "truth"},
                "max_prompt_tokens": 24,
                "max_new_tokens": 8,
                "weight_sync": mode,
            },
        )
        .rl_module(model_config={"name_or_path": model})
        .env_runners(num_env_runners=2)
        .training(group_size=2, train_batch_size_per_learner=2 * 8 * 2, eval_interval=0, grad_cosine_every=0)
        .debugging(seed=0)
        .build_algo()
    )


def timed_sync(algo) -> float:
    def bump(lrn):
        lrn._weights_seq_no += 1

    algo.learner_group.foreach_learner(bump)
    clock = time.perf_counter()
    algo.weight_sync.sync(algo)
    algo.env_runner_group.foreach_env_runner(lambda r: 0, local_env_runner=False)
    return time.perf_counter() - clock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default="docs/data/weight_sync.json")
    args = ap.parse_args()

    import ray

    from pairgrpo_rllib.envs.llm.models import make_tiny
    from pairgrpo_rllib.envs.llm.synthetic import write_task

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    tmp = Path(tempfile.mkdtemp(prefix="weight_sync_"))
    write_task(tmp / "task", n_train=64, n_test=8, seed=0)
    out = {"rounds": args.rounds, "actors": 2, "backend": "gloo", "sizes": {}}
    for name, sizes in SIZES.items():
        model = make_tiny(tmp / name, seed=0, **sizes)
        algos = {mode: build(str(model), tmp / "task", mode) for mode in ("object_store", "collective")}
        try:
            params = sum(
                p.numel()
                for _, p in algos["collective"]
                .learner_group._learner.module["default_policy"]
                .unwrapped()
                .trained_parameters()
            )
            times = {mode: [] for mode in algos}
            for algo in algos.values():
                timed_sync(algo)  # warm-up (the collective group forms here)
            for _ in range(args.rounds):
                for mode, algo in algos.items():
                    times[mode].append(timed_sync(algo))
            med = {m: statistics.median(v) for m, v in times.items()}
            out["sizes"][name] = {
                "parameters": params,
                "megabytes_fp32": round(params * 4 / 2**20, 1),
                "median_s": med,
                "all_s": times,
                "collective_speedup": med["object_store"] / med["collective"],
            }
            print(
                f"{name:>14}: {params / 1e6:6.2f}M params  object_store {med['object_store'] * 1e3:8.1f} ms  "
                f"collective {med['collective'] * 1e3:8.1f} ms  ratio {med['object_store'] / med['collective']:.2f}x",
                flush=True,
            )
        finally:
            for algo in algos.values():
                algo.stop()
    ray.shutdown()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
