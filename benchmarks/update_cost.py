"""What one GRPO update costs under each setting that changes the work, on one fixed batch.

One batch of 4 prompts x 8 completions is sampled once from the default model
(two-digit addition, temperature 0.5, 48 new tokens); then the update on that
batch is timed for each variant, the variants interleaved round by round so
that a busy machine slows them alike. Quote the ratios to the first variant.

    python benchmarks/update_cost.py --rounds 3

Variants: the default (full fine-tuning, a frozen reference copy, beta 0.04,
each prompt computed once for its group's rows); every row's prompt computed
(the plain full pass, as before the shared prefix); LoRA r=32 (the reference is
the model with its adapters off); no reference (beta 0); half the rows (the update after dropping half the groups, which is
what groups without signal cost once they are skipped); a prompt without
SmolLM2's default system message; and two optimiser steps per batch (minibatches
of 16 rows) of shuffled rows with a recomputed pi_old, of whole groups with a
recomputed pi_old, and of whole groups with the sampler's log-probs as pi_old.
``--variants`` times a subset (the default is always timed first).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import rlvr
from rlvr.agents import GRPO, Experience, GRPOConfig
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.policy import Policy, add_lora
from rlvr.precision import pick_autocast
from rlvr.rollout import SamplingParams, TransformersEngine
from rlvr.tokens import default_system_prompt


def batch(model: torch.nn.Module, tokenizer, system_prompt: str | None) -> Experience:
    """One sampled, scored batch; every row kept (rewards spread so no group is dropped)."""
    if system_prompt is not None:
        tokenizer = copy.deepcopy(tokenizer)
        default_system_prompt(tokenizer, system_prompt)
    env = rlvr.BatchedEnv(rlvr.make("rlvr/Arithmetic-v0"))
    problems = env.reset(4, seed=0)
    engine = TransformersEngine(model, tokenizer, autocast=pick_autocast("auto"))
    rollouts = engine.generate(
        [p.prompt for p in problems], SamplingParams(n=8, max_new_tokens=48, temperature=0.5, seed=1)
    )
    rewards = torch.arange(32, dtype=torch.float32) % 3  # every group has spread: nothing is dropped
    return Experience.from_rollouts(rollouts, rewards)


def variant(name: str, base: torch.nn.Module) -> GRPO:
    """A fresh agent for ``name`` over a copy of ``base``."""
    mixed = pick_autocast("auto")
    model = copy.deepcopy(base)
    reference = None
    share = name != "prompt per row"
    beta = 0.0 if name == "no reference" else 0.04
    if name == "LoRA r=32":
        model = add_lora(model, r=32, alpha=64)
    elif beta > 0:
        reference = Policy(
            copy.deepcopy(base).eval().requires_grad_(False), temperature=0.5, autocast=mixed, share_prompts=share
        )
    policy = Policy(model, temperature=0.5, autocast=mixed, share_prompts=share)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6, fused=True)
    two_steps = {
        "2 steps, rows": dict(minibatch_size=16, group_minibatches=False),
        "2 steps, groups": dict(minibatch_size=16, group_minibatches=True),
        "2 steps, groups, sampler pi_old": dict(minibatch_size=16, group_minibatches=True, old_logprobs="sampler"),
    }
    return GRPO(policy, optimizer, GRPOConfig(beta=beta, **two_steps.get(name, {})), reference)


def main() -> None:
    """Time each variant's update, interleaved, and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", nargs="*", help="the variants to time beside the default (all when omitted)")
    args = parser.parse_args()
    torch.manual_seed(0)
    base, tokenizer = load_model_and_tokenizer(DEFAULT_MODEL)
    full = batch(base, tokenizer, None)
    short = batch(base, tokenizer, "")
    half = full.rows(torch.arange(16))
    names = [
        "default", "prompt per row", "LoRA r=32", "no reference", "half the rows", "no system prompt",
        "2 steps, rows", "2 steps, groups", "2 steps, groups, sampler pi_old",
    ]  # fmt: skip
    if args.variants:
        unknown = set(args.variants) - set(names)
        if unknown:
            raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {names}")
        names = ["default", *[n for n in names[1:] if n in args.variants]]
    agents = {n: variant(n, base) for n in names}
    data = {
        "default": full,
        "prompt per row": full,
        "LoRA r=32": full,
        "no reference": full,
        "half the rows": half,
        "no system prompt": short,
    }
    data |= {n: full for n in names if n.startswith("2 steps")}
    print(
        f"tokens per row: {full.input_ids.shape[1]} (default), {short.input_ids.shape[1]} (no system prompt)",
        flush=True,
    )
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds + 1):
        for name in names:
            start = time.perf_counter()
            agents[name].update(data[name])
            if r > 0:  # the first round warms up kernels
                times[name].append(time.perf_counter() - start)
                print(f"round {r} {name}: {times[name][-1]:.1f} s", flush=True)
    base_median = statistics.median(times["default"])
    for name in names:
        median = statistics.median(times[name])
        print(f"{name:18} median {median:6.1f} s   x{median / base_median:.2f}", flush=True)


if __name__ == "__main__":
    main()
