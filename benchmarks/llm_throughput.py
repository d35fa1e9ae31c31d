"""A whole GRPO iteration on the tiny LM: ours (transformers and vLLM engines) against TRL's GRPOTrainer.

Same model (the quick start's SFT policy), same prompts (the synthetic task's), G = 8, 16 prompts per
iteration (128 responses), responses up to 16 tokens, fp32 (TRL: ``bf16=False``), one optimizer step
per iteration over the whole batch, KL weight 0.04 (k3), the same reward model scoring every
response. An iteration = generate + score + update. Rounds are interleaved (each round times every
system ``iters`` times, after one warm-up iteration each) so machine noise hits all alike; the figure
is the median over all timed iterations; ratios are against TRL. Ours: a whole ``algo.train()``.
TRL: one optimizer step from ``on_step_begin`` to ``on_step_end`` (its generation and scoring happen
inside the step; ``train()``'s start-up, paid once per call here, is excluded, which favours TRL).

Needs the quick start's prepare stages (``results/llm/{sft,reward_model,task}``) and TRL
(``pip install trl==1.16.0``: a peer measured against, not a dependency).

Usage: ``.venv/bin/python benchmarks/llm_throughput.py [--rounds 3] [--iters 3] [--out docs/data/llm_throughput.json]``
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from rounds import local_ray, timing_args

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
LLM = ROOT / "results" / "llm"
G, PROMPTS, MAX_NEW, MAX_PROMPT, LR, BETA = 8, 16, 16, 24, 5e-5, 0.04


def ours(engine: str):
    from pairgrpo_rllib.algorithms.registry import algorithm_config
    from pairgrpo_rllib.core import names

    cfg = (
        algorithm_config("GRPO")
        .environment(
            names.LLM_ENV,
            env_config={
                "prompts": {"path": str(LLM / "task" / "sft_train.jsonl")},
                "scorer": {"kind": "reward_model", "path": str(LLM / "reward_model")},
                "engine": engine,
                "max_prompt_tokens": MAX_PROMPT,
                "max_new_tokens": MAX_NEW,
            },
        )
        .rl_module(model_config={"name_or_path": str(LLM / "sft")})
        .env_runners(num_env_runners=0)
        .training(
            group_size=G,
            train_batch_size_per_learner=PROMPTS * G * MAX_NEW,
            minibatch_size=PROMPTS,  # one optimizer step per iteration, as TRL below
            num_epochs=1,
            lr=LR,
            kl_coeff=BETA,
            eval_interval=0,
            grad_cosine_every=0,
        )
        .debugging(seed=0)
    )
    algo = cfg.build_algo()
    return timed(algo.train), algo.stop


def trl():
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from pairgrpo_rllib.envs.llm.data import load_prompts
    from pairgrpo_rllib.envs.llm.models import load_causal_lm, load_tokenizer
    from pairgrpo_rllib.judges.reward_model import RewardModelJudge

    scorer = RewardModelJudge(str(LLM / "reward_model"))
    prompts = load_prompts(str(LLM / "task" / "sft_train.jsonl"))
    dataset = Dataset.from_list([{"prompt": p} for p in prompts])

    def reward(prompts, completions, **kw):  # the same scorer as ours, on the same texts
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return scorer.score([[p[-1]] for p in prompts], [[t] for t in texts])[:, 0].tolist()

    args = GRPOConfig(
        output_dir="/tmp/trl_bench",
        per_device_train_batch_size=PROMPTS * G,
        num_generations=G,
        max_completion_length=MAX_NEW,
        learning_rate=LR,
        beta=BETA,
        loss_type="grpo",
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        num_iterations=1,
        bf16=False,
        use_cpu=True,
        max_steps=10_000,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    tok = load_tokenizer(str(LLM / "sft"))
    trainer = GRPOTrainer(
        model=load_causal_lm(str(LLM / "sft")),
        reward_funcs=[reward],
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )

    class StepClock(TrainerCallback):
        """Times each optimizer step from its begin to its end (generation and scoring happen inside
        the step in GRPOTrainer), and stops training after it so that steps can be interleaved with
        the other systems; ``train()``'s own start-up cost is thereby excluded."""

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds = time.perf_counter() - self.start
            control.should_training_stop = True
            return control

    clock = StepClock()
    trainer.add_callback(clock)
    state = {"calls": 0}

    def step() -> float:
        trainer.args.max_steps = state["calls"] + 1
        trainer.train(resume_from_checkpoint=None)
        state["calls"] += 1
        return clock.seconds

    return step, lambda: None


def timed(fn):
    """Seconds of one call of ``fn`` (ours: a whole ``algo.train()``)."""

    def run() -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    return run


def main() -> None:
    import ray

    args = timing_args()
    local_ray()
    systems = {
        "ours (transformers)": ours("transformers"),
        "ours (vLLM)": ours("vllm"),
        "TRL GRPOTrainer": trl(),
    }
    for step, _ in systems.values():
        step()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in systems}
    for r in range(args.rounds):
        for name, (step, _) in systems.items():
            for _ in range(args.iters):
                times[name].append(step())
            print(
                f"round {r} {name:<20} {statistics.median(times[name][-args.iters :]):.3f} s/iteration",
                flush=True,
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "seconds_per_iteration_median": med,
        "speed_vs_trl": {k: med["TRL GRPOTrainer"] / v for k, v in med.items()},
        "all_rounds": times,
        "settings": {"G": G, "prompts": PROMPTS, "max_new_tokens": MAX_NEW, "lr": LR, "beta": BETA,
                     "rounds": args.rounds, "iters_per_round": args.iters},
    }  # fmt: skip
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for _, stop in systems.values():
        stop()
    ray.shutdown()


if __name__ == "__main__":
    main()
