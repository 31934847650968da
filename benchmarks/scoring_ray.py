"""Scoring throughput: the local worker pool beside the Ray backend, on this machine, in one run.

    python benchmarks/scoring_ray.py                        # 2 workers each, 3 repeats (median)
    python benchmarks/scoring_ray.py --workers 2 --repeats 5
    python benchmarks/scoring_ray.py --address auto         # a running cluster instead of a new local one
    python benchmarks/scoring_ray.py --math-items 200 --code-items 60   # the first items of each workload

Two workloads, each scored by both backends with the same number of workers,
repeats interleaved (local, Ray, local, Ray, ...): the shared answer-equivalence
cases (``../shared/benchmarks/math_equivalence.jsonl``, bare answers boxed)
through :class:`MathVerifier`, and HumanEval's canonical solutions through the
sandboxed :class:`CodeTests`. Starting the workers (and the local Ray cluster)
is timed apart and left out of the throughput. The script names the CPU, prints
each backend's median seconds and items per second, the Ray backend's overhead
per item ((Ray median - local median) / items, in milliseconds of wall time
with the given workers), and whether the verdicts are identical.

On one machine Ray can only add cost: its actors drive the same local worker
processes, one call per item through Ray's scheduler and object store.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from rlvr import Problem
from rlvr.execution.sandbox import Limits
from rlvr.verifiers.code_tests import CodeTests
from rlvr.verifiers.math_equivalence import MathVerifier

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "math_equivalence.jsonl"


def cpu_name() -> str:
    """The CPU's model name as ``lscpu`` gives it."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def math_workload() -> tuple[list[str], list[Problem]]:
    cases = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
    completions = [f"\\boxed{{{c['prediction']}}}" if c["kind"] == "bare" else c["prediction"] for c in cases]
    return completions, [Problem(c["id"], "", c["gold"]) for c in cases]


def code_workload() -> tuple[list[str], list[Problem]]:
    from rlvr.envs.code import HumanEvalEnv

    problems = HumanEvalEnv().problems
    return [p.meta["canonical_solution"] for p in problems], problems


def verdicts_of(verdicts: list) -> list[tuple]:
    return [(v.status, v.score, dict(v.details)) for v in verdicts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--address", default=None, help="a Ray cluster to connect to (default: a new local one)")
    parser.add_argument("--math-items", type=int, default=None, help="the first N equivalence cases (default: all)")
    parser.add_argument("--code-items", type=int, default=None, help="the first N HumanEval problems (default: all)")
    args = parser.parse_args()

    import ray

    start = time.perf_counter()
    if args.address:
        ray.init(address=args.address, configure_logging=False, log_to_driver=False)
    else:
        ray.init(num_cpus=args.workers, include_dashboard=False, configure_logging=False, log_to_driver=False)
    cluster_seconds = time.perf_counter() - start
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; {args.workers} workers per backend; {args.repeats} repeats")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} (other work on the machine slows both backends)")
    print(f"Ray {ray.__version__}: cluster {'joined' if args.address else 'started'} in {cluster_seconds:.1f} s")

    math, code = math_workload(), code_workload()
    workloads = {
        "math (shared equivalence cases)": (
            (math[0][: args.math_items], math[1][: args.math_items]),
            lambda b: MathVerifier(workers=args.workers, backend=b),
        ),
        "code (HumanEval canonical)": (
            (code[0][: args.code_items], code[1][: args.code_items]),
            lambda b: CodeTests(workers=args.workers, limits=Limits(wall_seconds=10.0), backend=b),
        ),
    }
    for name, ((completions, problems), make) in workloads.items():
        verifiers, seconds, verdicts = {}, {"local": [], "ray": []}, {}
        for backend in ("local", "ray"):  # one after the other: start-up is timed apart
            verifiers[backend] = make(backend)
            begin = time.perf_counter()
            verifiers[backend].warm_up()
            print(f"{name}: {backend} workers ready in {time.perf_counter() - begin:.1f} s")
        try:
            for _ in range(args.repeats):
                for backend, verifier in verifiers.items():
                    begin = time.perf_counter()
                    verdicts[backend] = verifier.batch(completions, problems)
                    seconds[backend].append(time.perf_counter() - begin)
        finally:
            for verifier in verifiers.values():
                pool = getattr(verifier, "_pool", None) or getattr(verifier, "_sandbox", None)
                if pool is not None:
                    pool.close()
        n = len(completions)
        local, remote = statistics.median(seconds["local"]), statistics.median(seconds["ray"])
        same = verdicts_of(verdicts["local"]) == verdicts_of(verdicts["ray"])
        print(f"\n{name}: {n} items")
        print(
            f"  local pool  {local:7.2f} s  {n / local:7.1f} items/s   (runs: {', '.join(f'{s:.2f}' for s in seconds['local'])})"
        )
        print(
            f"  Ray         {remote:7.2f} s  {n / remote:7.1f} items/s   (runs: {', '.join(f'{s:.2f}' for s in seconds['ray'])})"
        )
        print(
            f"  Ray / local throughput {local / remote:.2f}x; overhead {(remote - local) / n * 1000:+.1f} ms per item"
        )
        print(f"  verdicts identical: {same}\n")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
