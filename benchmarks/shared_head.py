"""The prompts' common head (the system prompt) run once per batch, against once per prompt, one run.

    python benchmarks/shared_head.py --repeats 3

On the main job's model and prompts (the environment's suggested system prompt,
float32 unless the CPU has native bf16), three workloads, each with the head
shared (``rlvr.prefix.MIN_SHARED_HEAD`` as it stands) and without (the
threshold set past any prompt's length), alternating within each repeat so
machine noise hits both alike:

- ``eval``: greedy answers to 100 distinct problems, up to 48 new tokens, as the
  in-run evaluation does;
- ``rollout``: 4 problems x 8 samples at temperature 0.5, as a training step does;
- ``update``: the policy's forward and backward over 2 groups of 8 rows (16-token
  completions), in micro-batches of 8 rows (one group each: nothing to share
  across groups) and of 16 (both groups, one head pass).

The report gives median seconds and the ratio of shared to unshared.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import rlvr
import rlvr.policy
import rlvr.prefix
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.policy import Policy
from rlvr.precision import describe, pick_autocast
from rlvr.rollout import Rollouts, SamplingParams, TransformersEngine
from rlvr.tokens import default_system_prompt

OFF = 10**9  # a head threshold no prompt reaches


def set_threshold(value: int) -> None:
    rlvr.prefix.MIN_SHARED_HEAD = value
    rlvr.policy.MIN_SHARED_HEAD = value


def update(policy: Policy, rollouts: Rollouts, micro: int) -> None:
    """One forward and backward over the batch, ``micro`` rows at a time."""
    ids = torch.cat([rollouts.prompt_ids, rollouts.completion_ids], 1)
    mask = torch.cat([rollouts.prompt_mask, rollouts.completion_mask], 1)
    p = rollouts.prompt_ids.shape[1]
    for i in range(0, len(ids), micro):
        logp, _ = policy(ids[i : i + micro], mask[i : i + micro], prompt_len=p)
        (logp * rollouts.completion_mask[i : i + micro]).sum().backward()
    policy.model.zero_grad(set_to_none=True)


def main() -> None:
    """Alternate shared and unshared for each workload and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, tokenizer = load_model_and_tokenizer(DEFAULT_MODEL)
    mixed = pick_autocast("auto")
    print(describe("auto", "cpu", mixed), flush=True)
    env = rlvr.make("rlvr/Arithmetic-v0")
    default_system_prompt(tokenizer, env.unwrapped.system_prompt())
    batched = rlvr.BatchedEnv(env)
    eval_prompts = [p.prompt for p in batched.reset(100, seed=1)]
    step_prompts = [p.prompt for p in batched.reset(4, seed=0)]
    engine = TransformersEngine(model, tokenizer, autocast=mixed)
    policy = Policy(model, temperature=0.5, autocast=mixed)
    shared = rlvr.prefix.MIN_SHARED_HEAD
    torch.manual_seed(0)
    batch = engine.generate(step_prompts[:2], SamplingParams(n=8, max_new_tokens=16, temperature=0.5))
    workloads = {
        "eval 100 x 1, greedy": lambda: engine.generate(
            eval_prompts, SamplingParams(n=1, max_new_tokens=48, greedy=True)
        ),
        "rollout 4 x 8": lambda: engine.generate(step_prompts, SamplingParams(n=8, max_new_tokens=48, temperature=0.5)),
        "update 16 rows, micro 8": lambda: update(policy, batch, 8),
        "update 16 rows, micro 16": lambda: update(policy, batch, 16),
    }
    times = {(w, s): [] for w in workloads for s in ("shared", "unshared")}
    for repeat in range(args.repeats + 1):
        for name, run in workloads.items():
            for setting, threshold in (("shared", shared), ("unshared", OFF)):
                set_threshold(threshold)
                torch.manual_seed(repeat)
                model.train() if name.startswith("update") else model.eval()
                start = time.perf_counter()
                run()
                if repeat > 0:  # the first round warms up kernels
                    times[name, setting].append(time.perf_counter() - start)
                    print(f"repeat {repeat} {name} {setting}: {times[name, setting][-1]:.2f} s", flush=True)
    set_threshold(shared)
    for name in workloads:
        a, b = statistics.median(times[name, "shared"]), statistics.median(times[name, "unshared"])
        print(f"{name:26} shared {a:6.2f} s  unshared {b:6.2f} s  x{a / b:.2f}", flush=True)


if __name__ == "__main__":
    main()
