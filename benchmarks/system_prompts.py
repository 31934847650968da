r"""What the untrained model writes under each system prompt: boxed answers, right answers, groups with signal.

    python benchmarks/system_prompts.py --problems 48 --n 8

GRPO learns only from a group whose rewards differ, so the first steps of the
main job depend on how often the untrained policy boxes an answer, and how
often a boxed answer is right. This samples the default model on training
problems of ``rlvr/Arithmetic-v0`` (two-digit addition) at the main job's
temperature and length limit, once per system prompt, the same problems and
sampling seeds for each, and reports per prompt: the share of samples with
exactly one ``\boxed{}``, the share scored right, the share holding the right
sum anywhere in the text, the share of groups of ``--n`` with at least one
right sample, and the rendered prompt's length in tokens. Runs in float32.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

import rlvr
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.rollout import SamplingParams, TransformersEngine
from rlvr.tokens import default_system_prompt, render_prompt

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--problems", type=int, default=48, help="training problems (a multiple of 4)")
parser.add_argument("--n", type=int, default=8, help="samples per problem")
parser.add_argument("--temperature", type=float, default=0.5)
parser.add_argument("--max-new-tokens", type=int, default=48)
args = parser.parse_args()

env = rlvr.make("rlvr/Arithmetic-v0").unwrapped
ONE_EXAMPLE = "Example.\nUser: What is 7 + 5? Put the final answer in \\boxed{}.\nAssistant: 7 + 5 = \\boxed{12}"
PROMPTS = {
    "the template's own": None,
    "empty": "",
    "an instruction": "You are a careful calculator. Give the final answer in \\boxed{}.",
    "one worked example": ONE_EXAMPLE,
    "the environment's suggestion": env.system_prompt(),
}

model, base_tokenizer = load_model_and_tokenizer(args.model)
model.eval()
rng = np.random.default_rng(123)
problems = [env.draw_problem(rng) for _ in range(args.problems)]
repeated = [p for p in problems for _ in range(args.n)]
print(f"{args.model}: {args.problems} training problems x {args.n} samples, temperature {args.temperature}")
print(f"{'system prompt':30s} {'boxed':>6s} {'right':>6s} {'anywhere':>8s} {'groups':>6s} {'tokens':>6s} {'s':>4s}")
for name, text in PROMPTS.items():
    tokenizer = copy.deepcopy(base_tokenizer)
    if text is not None:
        default_system_prompt(tokenizer, text)
    engine = TransformersEngine(model, tokenizer)
    start, texts = time.perf_counter(), []
    with torch.no_grad():
        for i in range(0, len(problems), 4):
            params = SamplingParams(
                n=args.n, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=i
            )  # fmt: skip
            texts += engine.generate([p.prompt for p in problems[i : i + 4]], params).texts
    scored = env.score_many(repeated, texts)
    right = np.array([info["status"] == "correct" for _, info in scored]).reshape(args.problems, args.n)
    boxed = np.mean([info["components"]["format"] for _, info in scored])
    anywhere = np.mean([p.reference in t for p, t in zip(repeated, texts, strict=True)])
    groups = np.mean(right.any(axis=1))
    tokens = len(tokenizer(render_prompt(tokenizer, problems[0].prompt), add_special_tokens=False).input_ids)
    print(
        f"{name:30s} {boxed:6.3f} {right.mean():6.3f} {anywhere:8.3f} {groups:6.2f} {tokens:6d} "
        f"{time.perf_counter() - start:4.0f}"
    )
