"""Seconds per GRPO training step, rlvr against TRL's GRPOTrainer, on the same workload in one run.

Workload: 4 prompts x 8 completions x 64 new tokens, SmolLM2-135M-Instruct,
CPU, KL to a reference model (beta = 0.04) in both, two-digit addition prompts with
the same reward. rlvr's step is split into rollout, scoring and update.

    pip install -e ".[dev,bench]" torch==2.13.0
    python benchmarks/step_time.py --steps 5            # prints medians and the ratio
    python benchmarks/step_time.py --engine transformers vllm   # both rlvr engines (vLLM: docs/vllm.md)

Each framework runs one warm-up step first (not counted). TRL runs on its own
defaults apart from what the workload fixes (notably gradient checkpointing on
and bf16 as it chooses; ``--trl-bf16 false`` turns bf16 off, which a CPU without
native bf16 needs); rlvr runs on ``rlvr train``'s defaults (bf16 autocast where
the CPU has it; groups without signal skip the update, unless ``--no-skip``).
With ``--engine vllm`` rlvr samples with a colocated vLLM engine and syncs its
weights after every update (the sync is timed inside the step); TRL keeps its
default ``transformers`` generation. Machines are shared and noisy: compare the
medians of the same run only.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time

import torch

import rlvr
from rlvr.agents import GRPO, Experience
from rlvr.config import RunConfig
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer, resolve_model_path
from rlvr.policy import Policy
from rlvr.precision import pick_autocast
from rlvr.rollout import SamplingParams, TransformersEngine

PROMPTS, GROUP, NEW_TOKENS, BETA, LR = 4, 8, 64, 0.04, 1e-6  # the workload, the same for both


def rlvr_steps(
    model_name: str, steps: int, engine_name: str = "transformers", skip_groups: bool = True
) -> dict[str, list[float]]:
    """Rlvr's step times with ``rlvr train``'s defaults (GRPO, its sampling temperature).

    With ``skip_groups=False`` groups without signal still pay their update, as
    every row does in TRL; with the default they are skipped, as ``rlvr train`` does.
    """
    torch.manual_seed(0)
    defaults = RunConfig()
    temperature = defaults.rollout.temperature
    model, tokenizer = load_model_and_tokenizer(model_name)
    mixed = pick_autocast("auto")
    config = dataclasses.replace(defaults.algorithm.grpo, beta=BETA, drop_zero_std_groups=skip_groups)
    micro = config.micro_batch_size  # both policies take it, as rlvr train builds them
    policy = Policy(model, temperature=temperature, micro_batch_size=micro, autocast=mixed)
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    reference = Policy(frozen, temperature=temperature, micro_batch_size=micro, autocast=mixed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, fused=True)  # fused, as rlvr train builds it
    agent = GRPO(policy, optimizer, config, reference)
    if engine_name == "vllm":
        from rlvr.vllm_engine import VLLMEngine

        dtype = "bfloat16" if mixed == torch.bfloat16 else "float32"
        engine = VLLMEngine(resolve_model_path(model_name), tokenizer, dtype=dtype, seed=0)
    else:
        engine = TransformersEngine(model, tokenizer, autocast=mixed)
    env = rlvr.BatchedEnv(rlvr.make("rlvr/Arithmetic-v0"))
    env.reset(1, seed=0)
    times: dict[str, list[float]] = {"rollout": [], "scoring": [], "update": [], "step": []}
    for step in range(steps + 1):
        t0 = time.perf_counter()
        problems = env.reset(PROMPTS)
        rollouts = engine.generate(
            [p.prompt for p in problems],
            SamplingParams(n=GROUP, max_new_tokens=NEW_TOKENS, temperature=temperature, seed=step),
        )
        t1 = time.perf_counter()
        result = env.step(problems, rollouts.groups(), on_error="record")
        t2 = time.perf_counter()
        agent.update(Experience.from_rollouts(rollouts, result.rewards, result.scored))
        engine.sync_weights(model)  # a no-op for the transformers engine, which samples from `model` itself
        t3 = time.perf_counter()
        if step > 0:  # the first step warms up kernels and caches
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                times[key].append(value)
        print(
            f"rlvr step {step}: {t3 - t0:.1f}s (rollout {t1 - t0:.1f}, scoring {t2 - t1:.2f}, update+sync {t3 - t2:.1f})",
            flush=True,
        )
    return times


def trl_steps(model_name: str, steps: int, bf16: bool | None = None) -> list[float]:
    """TRL's GRPOTrainer step times; ``bf16=None`` keeps TRL's own choice (bf16 where it can)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    path = resolve_model_path(model_name)
    _, tokenizer = load_model_and_tokenizer(model_name)
    env = rlvr.make("rlvr/Arithmetic-v0").unwrapped
    env.reset(seed=0)
    problems = [env.draw_problem(env.np_random) for _ in range(PROMPTS * (steps + 2))]
    data = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": p.prompt}], "problem_id": p.id} for p in problems]
    )
    by_id = {p.id: p for p in problems}

    def reward(prompts, completions, problem_id, **kwargs):  # the same scoring path as rlvr's
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [r for r, _ in env.score_many([by_id[i] for i in problem_id], texts)]

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.start)
            print(f"TRL step {len(self.times) - 1}: {self.times[-1]:.1f}s", flush=True)

    config = TRLConfig(
        output_dir="/tmp/rlvr-bench-trl",
        per_device_train_batch_size=PROMPTS * GROUP,
        gradient_accumulation_steps=1,
        num_generations=GROUP,
        max_completion_length=NEW_TOKENS,
        beta=BETA,
        learning_rate=LR,
        max_steps=steps + 1,
        use_cpu=True,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
        **({} if bf16 is None else {"bf16": bf16}),
    )
    timer = Timer()
    trainer = GRPOTrainer(
        model=path, reward_funcs=reward, args=config, train_dataset=data, processing_class=tokenizer, callbacks=[timer]
    )
    trainer.train()
    return timer.times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=5, help="measured steps per framework (after one warm-up)")
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument(
        "--trl-bf16", choices=["default", "false"], default="default",
        help="TRL with its own precision choice (bf16 and gradient checkpointing, emulated on CPUs without "
        "native bf16), or with bf16=False",
    )  # fmt: skip
    parser.add_argument("--no-skip", action="store_true", help="rlvr pays the update of groups without signal too")
    parser.add_argument(
        "--engine", nargs="+", choices=["transformers", "vllm"], default=["transformers"],
        help="rlvr's rollout engine(s), each timed in turn",
    )  # fmt: skip
    args = parser.parse_args()
    print(
        f"workload: {PROMPTS} prompts x {GROUP} completions x {NEW_TOKENS} new tokens, {args.model}, beta {BETA}, torch threads {torch.get_num_threads()}"
    )
    medians = {}
    for engine in args.engine:
        times = rlvr_steps(args.model, args.steps, engine, skip_groups=not args.no_skip)
        med = {k: statistics.median(v) for k, v in times.items()}
        medians[engine] = med["step"]
        print(
            f"rlvr ({engine} rollouts) median s/step: {med['step']:.1f} (rollout {med['rollout']:.1f}, scoring {med['scoring']:.2f}, update+sync {med['update']:.1f})"
        )
    if not args.skip_trl:
        theirs = statistics.median(trl_steps(args.model, args.steps, None if args.trl_bf16 == "default" else False))
        print(f"TRL GRPOTrainer median s/step: {theirs:.1f}")
        for engine, ours in medians.items():
            print(f"ratio rlvr ({engine} rollouts) / TRL: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
