"""The math layer on a CUDA device: same values and gradients as on the CPU (float64), LLM-sized.

The LLM learners will run these functions on GPU batches of padded token sequences; nothing in the
math layer may assume the CPU (a stray ``.numpy()``, a CPU-created tensor mixed in). Each function is
evaluated on the same float64 inputs on both devices; the largest absolute difference of the outputs
and of the input gradients is reported. Needs only torch (run it where a GPU is):

    PYTHONPATH=. python3 benchmarks/math_on_gpu.py [--out gpu_math.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pairgrpo_rllib.core import advantages as A
from pairgrpo_rllib.core import hard_pair as H
from pairgrpo_rllib.core import losses as L
from pairgrpo_rllib.core import preferences as P


def inputs(device: str, b: int = 64, t: int = 512, g: int = 8, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    f = torch.float64
    lengths = torch.randint(t // 4, t + 1, (b,), generator=gen)
    mask = torch.arange(t)[None, :] < lengths[:, None]
    old = -torch.rand(b, t, generator=gen, dtype=f) * 3
    x = {
        "logp": old + 0.05 * torch.randn(b, t, generator=gen, dtype=f),
        "old_logp": old,
        "ref_logp": old + 0.1 * torch.randn(b, t, generator=gen, dtype=f),
        "mask": mask,
        "scores": torch.randn(b // g, g, generator=gen, dtype=f),
        "rewards": torch.randn(b // g, g, t, generator=gen, dtype=f),
        "g": g,
    }
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in x.items()}


def cases(x: dict) -> dict:
    """name -> (output tensor, tensor whose gradient is compared or None)."""
    logp = x["logp"].clone().requires_grad_(True)
    g = x["g"]
    out = {}
    adv_seq = A.group_advantages(x["scores"]).reshape(-1)
    loss, _ = L.grpo_loss(
        logp, x["old_logp"], x["ref_logp"], adv_seq, x["mask"], beta=0.04, kl_estimator="k3"
    )
    out["grpo_loss (k3, seq_mean_token_mean)"] = (loss, logp)
    logp2 = x["logp"].clone().requires_grad_(True)
    loss, _ = L.pg_grpo_loss(logp2, x["old_logp"], x["ref_logp"], adv_seq, x["mask"], beta_pg=0.1, w1=0.04)
    out["pg_grpo_loss"] = (loss, logp2)
    rtg = A.reward_to_go(x["rewards"], torch.ones_like(x["rewards"], dtype=torch.bool), 0.99)
    out["reward_to_go"] = (rtg, None)
    out["step group advantages"] = (
        A.from_step_groups(A.group_advantages(A.step_groups(rtg)), rtg.shape[0]),
        None,
    )
    labels = P.preference_matrix(x["scores"], "deterministic")
    adv, _ = P.pairwise_advantages(labels, "all")
    out["pairwise_advantages (all)"] = (adv, None)
    logp3 = x["logp"].clone().requires_grad_(True)
    shares = H.group_shares(L.sequence_logp(logp3, x["mask"], length_norm=True).reshape(-1, g))
    pairs = P.select_pairs(labels, "best_worst")
    target, _ = H.hard_pair_targets(shares.detach(), pairs, 0.02)
    loss, _ = H.hard_pair_loss(shares, target, pairs[:, 0], trust_region_kl=None, trust_region=False)
    out["hard_pair_loss"] = (loss, logp3)
    out["suffix_logp (length_norm)"] = (L.suffix_logp(x["logp"], x["mask"], length_norm=True), None)
    w = x["logp"].clone().requires_grad_(True)
    dpo, _ = L.dpo_loss(
        L.sequence_logp(w[::2], x["mask"][::2]),
        L.sequence_logp(w[1::2], x["mask"][1::2]),
        L.sequence_logp(x["ref_logp"][::2], x["mask"][::2]),
        L.sequence_logp(x["ref_logp"][1::2], x["mask"][1::2]),
        beta=0.1,
    )
    out["dpo_loss"] = (dpo, w)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    assert torch.cuda.is_available(), "no CUDA device"
    cpu, gpu = cases(inputs("cpu")), cases(inputs("cuda"))
    rows = {}
    for name, (val_c, grad_c) in cpu.items():
        val_g, grad_g = gpu[name]
        row = {"max_abs_diff_value": float((val_c.detach() - val_g.detach().cpu()).abs().max())}
        if grad_c is not None:
            (gc,) = torch.autograd.grad(val_c, grad_c)
            (gg,) = torch.autograd.grad(val_g, grad_g)
            row["max_abs_diff_grad"] = float((gc - gg.cpu()).abs().max())
        rows[name] = row
    # One LLM-scale timing on the GPU: GRPO loss forward + backward, 256 sequences x 2048 tokens, fp32.
    x = inputs("cuda", b=256, t=2048)
    x = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in x.items()}
    adv = A.group_advantages(x["scores"]).reshape(-1)
    times = []
    for _ in range(23):
        logp = x["logp"].clone().requires_grad_(True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = L.grpo_loss(
            logp, x["old_logp"], x["ref_logp"], adv, x["mask"], beta=0.04, kl_estimator="k3"
        )
        loss.backward()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times = sorted(times[3:])
    result = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cpu_vs_cuda_float64": rows,
        "grpo_loss_fwd_bwd_256x2048_fp32_median_ms": 1e3 * times[len(times) // 2],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
