"""Env steps per second including learning: the GRPO family against RLlib's PPO, side by side.

The settings are those of ``tune_configs/halfcheetah_comparison.yaml`` (read from it): batch 8000
steps, 10 epochs, minibatch 1600 steps (one group of 8 x 200 for the GRPO family), actor [64, 64]
tanh, observation normalisation, local sampling (num_env_runners=0); PPO adds its critic and samples
8 vectorised envs as in the comparison; "PPO (1 env)" shows RLlib's sampler with one env.
Rounds are interleaved (each round runs every algorithm once) so that machine noise hits all alike;
the figure per algorithm is the median over rounds of (steps sampled / wall time of ``train()``),
after one warm-up iteration. Also: the raw MuJoCo and gymnasium step rates on this machine.

Usage: ``.venv/bin/python benchmarks/throughput.py [--rounds 3] [--iters 3] [--out docs/data/throughput.json]``
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from rounds import local_ray, timing_args

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

ALGOS = ["PPO", "GRPO", "Soft-Pair-GRPO", "Hard-Pair-GRPO", "PG-GRPO"]
CONFIG = Path(__file__).resolve().parents[1] / "tune_configs" / "halfcheetah_comparison.yaml"
# The comparison's own settings, less evaluation and the grad-cosine diagnostic (not training work).
OVERRIDES = [
    "training.eval_interval=0",
    "training.grad_cosine_every=0",
    "per_algorithm.PPO.evaluation={evaluation_interval: null}",
]


def raw_rates(steps: int = 20000) -> dict:
    import gymnasium as gym
    import mujoco

    env = gym.make("HalfCheetah-v4")
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 6)).astype(np.float32)
    t = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    gym_rate = steps / (time.perf_counter() - t)
    u = env.unwrapped
    t = time.perf_counter()
    for _ in range(steps * u.frame_skip):
        mujoco.mj_step(u.model, u.data)
    physics_rate = steps / (time.perf_counter() - t)
    return {"gymnasium_env_step_per_s": gym_rate, "mujoco_physics_env_step_per_s": physics_rate}


def main() -> None:
    import ray

    from pairgrpo_rllib.app import experiment as X

    args = timing_args()
    local_ray()
    spec = X.load(CONFIG, OVERRIDES)
    algos = {a: X.build_config(spec, a, seed=0).build_algo() for a in ALGOS}
    # RLlib's sampler pays ~0.7 ms per step and env (docs/rllib_notes.md): PPO with one env shows how much of
    # the gap is the sampler rather than the critic.
    algos["PPO (1 env)"] = (
        X.build_config(spec, "PPO", seed=0).env_runners(num_envs_per_env_runner=1).build_algo()
    )
    for algo in algos.values():
        algo.train()  # warm-up
    rates: dict[str, list[float]] = {a: [] for a in algos}
    for r in range(args.rounds):
        for name, algo in algos.items():
            t = time.perf_counter()
            steps = 0
            for _ in range(args.iters):
                res = algo.train()
                steps += (
                    int(res["env_runners"].get("num_env_steps_sampled", 8000))
                    if name.startswith("PPO")
                    else 8000
                )
            rates[name].append(steps / (time.perf_counter() - t))
            print(f"round {r} {name:<15} {rates[name][-1]:8.0f} env steps/s", flush=True)
    raw = raw_rates()
    med = {a: statistics.median(v) for a, v in rates.items()}
    out = {
        "env_steps_per_s_median": med,
        "all_rounds": rates,
        "ratio_vs_ppo": {a: med[a] / med["PPO"] for a in algos},
        "ratio_vs_ppo_1_env": {a: med[a] / med["PPO (1 env)"] for a in algos},
        "fraction_of_gymnasium_step_rate": {a: med[a] / raw["gymnasium_env_step_per_s"] for a in algos},
        **raw,
        "settings": {
            "rounds": args.rounds,
            "iters_per_round": args.iters,
            "config": str(CONFIG.relative_to(CONFIG.parents[1])),
            "overrides": OVERRIDES,
        },
    }
    print(json.dumps(out, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)
    for algo in algos.values():
        algo.stop()
    ray.shutdown()


if __name__ == "__main__":
    main()
