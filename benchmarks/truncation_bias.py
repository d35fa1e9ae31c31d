"""How much the segment-end cut of ``credit: step`` changes the per-step advantages (issue 11, item 8).

In branch mode a member's reward-to-go stops at the end of its H-step segment (the GRPO family has no
critic to bootstrap from), so the action at step t is credited with ``H - t`` steps of reward only.
Option ``lookahead`` (ours) runs each member L steps further and adds their discounted return.

This benchmark samples real groups with the comparison's settings (HalfCheetah-v4, G = 8, H = 200,
credit_gamma 0.99) but lets every member run ``H + REF`` steps (REF = 400: gamma^400 = 0.018, so the
reference reward-to-go holds > 98 % of each step's discounted weight). From the same trajectories it
computes the per-step GRPO advantages with the reward-to-go cut at ``H + L`` for each L, and compares
them with the reference's, per block of time indices. All measures are scale-free:

* ``corr``: Pearson correlation of the advantages (over groups and members) with the reference's;
* ``sign``: fraction of (member, step) whose advantage has the reference's sign;
* ``pairs``: fraction of member pairs whose order (Soft-Pair's label) matches the reference's.

Policies: the random initial one and, with ``--checkpoint``, a trained one (the study's final
checkpoint of GRPO seed 0 by default when it exists). The members' env runs with a 2000-step limit so
that the reference is never cut by the episode's own end.

Usage: ``.venv/bin/python benchmarks/truncation_bias.py [--groups 24] [--checkpoint DIR]
[--out docs/data/truncation_bias.json]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tune_configs" / "halfcheetah_comparison.yaml"
H, REF = 200, 400
LOOKAHEADS = (0, 50, 100, 200)
BLOCKS = ((0, 50), (50, 100), (100, 150), (150, 200))


def _default_checkpoint() -> str | None:
    runs = sorted((ROOT / "results" / "halfcheetah_comparison").glob("*seed=0,trial=algorithm_GRPO_spec*"))
    for run in runs:
        ckpts = sorted(run.glob("checkpoint_*"))
        if ckpts:
            return str(ckpts[-1])
    return None


def sample_rewards(checkpoint: str | None, groups: int, seed: int) -> np.ndarray:
    """``(N, G, H + REF)`` rewards of whole branched members (groups cut short by an end are dropped)."""
    from pairgrpo_rllib.app import experiment as X
    from pairgrpo_rllib.core import names

    spec = X.load(CONFIG, ["training.eval_interval=0", "training.grad_cosine_every=0"])
    g = spec["training"]["group_size"]
    cfg = (
        X.build_config(spec, "GRPO", seed=seed)
        .environment(env_config={"max_episode_steps": 2000})
        .training(segment_length=H + REF, train_batch_size_per_learner=g * (H + REF), minibatch_size=1)
    )
    algo = cfg.build_algo()
    try:
        if checkpoint:
            algo.restore_from_path(checkpoint)
            algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group)
        runner = algo.env_runner_group.local_env_runner
        kept = []
        while len(kept) < groups:
            b = runner.sample_groups(1)
            if b[names.MASK].shape[2] == H + REF and b[names.MASK].all():
                kept.append(b[names.REWARDS][0])
        return np.stack(kept)
    finally:
        algo.stop()


def compare(rewards: np.ndarray, gamma: float) -> dict:
    from pairgrpo_rllib.core.advantages import group_advantages, reward_to_go, step_groups

    r = torch.as_tensor(rewards, dtype=torch.float64)
    mask = torch.ones_like(r, dtype=torch.bool)

    def adv(cut: int) -> torch.Tensor:  # (N, G, H) advantages from the reward-to-go cut at `cut`
        rtg = reward_to_go(r[..., :cut], mask[..., :cut], gamma)[..., :H]
        n = rtg.shape[0]
        a = group_advantages(step_groups(rtg))  # (N*H, G)
        return a.reshape(n, H, -1).transpose(1, 2), rtg

    ref_adv, ref_rtg = adv(H + REF)
    out = {}
    for look in LOOKAHEADS:
        a, rtg = adv(H + look)
        rows = {}
        for lo, hi in BLOCKS:
            x, y = a[..., lo:hi].reshape(-1), ref_adv[..., lo:hi].reshape(-1)
            corr = float(torch.corrcoef(torch.stack([x, y]))[0, 1])
            sign = float(((x > 0) == (y > 0)).double().mean())
            ri, rr = rtg[..., lo:hi], ref_rtg[..., lo:hi]  # (N, G, B)
            order = torch.sign(ri[:, :, None] - ri[:, None, :])
            order_ref = torch.sign(rr[:, :, None] - rr[:, None, :])
            off = ~torch.eye(ri.shape[1], dtype=torch.bool)[None, :, :, None].expand_as(order)
            pairs = float((order == order_ref)[off].double().mean())
            rows[f"t{lo}-{hi - 1}"] = {"corr": corr, "sign": sign, "pairs": pairs}
        out[f"L={look}"] = rows
    return out


def main() -> None:
    import ray

    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=24)
    ap.add_argument("--checkpoint", default=_default_checkpoint())
    ap.add_argument("--gamma", type=float, default=0.99)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    result = {"settings": {"H": H, "reference_lookahead": REF, "gamma": args.gamma, "groups": args.groups}}
    policies = {"initial": None}
    if args.checkpoint:
        policies["trained"] = args.checkpoint
    for label, ckpt in policies.items():
        rewards = sample_rewards(ckpt, args.groups, seed=0)
        result[label] = {
            "checkpoint": os.path.relpath(ckpt, ROOT) if ckpt else None,
            "mean_step_reward": float(rewards.mean()),
            "by_lookahead": compare(rewards, args.gamma),
        }
        print(f"\n{label} policy ({result[label]['checkpoint']}): corr / sign / pair agreement with L={REF}")
        for look, rows in result[label]["by_lookahead"].items():
            cells = "  ".join(
                f"{b}: {v['corr']:.2f}/{v['sign']:.2f}/{v['pairs']:.2f}" for b, v in rows.items()
            )
            print(f"  {look:<6} {cells}", flush=True)
    ray.shutdown()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
