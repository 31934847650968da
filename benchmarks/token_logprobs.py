"""Forward and backward of completion-token log-probs from logits: rlvr's chunked pass against whole tensors.

The shape is one training micro-batch of the step-time workload: 16 rows x 64
tokens x SmolLM2's 49,152-token vocabulary, with the entropy metric, at
temperature 0.5. The whole-tensor pass is what ``Policy.forward`` did before
:mod:`rlvr.token_logprobs`: float32 copy, divide, ``logsumexp``, gather, and a
softmax for the entropy.

    python benchmarks/token_logprobs.py            # medians of 7, bf16 and float32 logits
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlvr.token_logprobs import token_logprobs


def whole_tensor(logits: torch.Tensor, targets: torch.Tensor, temperature: float):
    scaled = logits.float() / temperature
    log_z = torch.logsumexp(scaled, dim=-1)
    logp = scaled.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
    with torch.no_grad():
        entropy = log_z - (torch.softmax(scaled, dim=-1) * scaled).sum(-1)
    return logp, entropy


def chunked(logits: torch.Tensor, targets: torch.Tensor, temperature: float):
    return token_logprobs(logits, targets, temperature, with_entropy=True)


def seconds(fn, base: torch.Tensor, targets: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first warms up
        x = base.clone().requires_grad_(True)
        start = time.perf_counter()
        logp, _ = fn(x, targets, 0.5)
        logp.sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[16, 64, 49152], metavar=("N", "T", "V"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n, t, v = args.shape
    torch.manual_seed(0)
    targets = torch.randint(v, (n, t))
    print(f"logits [{n}, {t}, {v}], {torch.get_num_threads()} threads, forward + backward, median of {args.repeats}")
    for dtype in (torch.bfloat16, torch.float32):
        base = (torch.randn(n, t, v) * 3).to(dtype)
        whole = seconds(whole_tensor, base, targets, args.repeats)
        chunk = seconds(chunked, base, targets, args.repeats)
        print(f"{str(dtype):15} whole-tensor {whole:.3f} s   chunked {chunk:.3f} s   ratio {chunk / whole:.2f}")


if __name__ == "__main__":
    main()
