"""The math verifier on the shared answer-equivalence cases, beside plain math-verify, in one run.

    python benchmarks/verifiers.py                      # ../shared/benchmarks/math_equivalence.jsonl
    python benchmarks/verifiers.py --cases FILE --throughput-repeats 3

Prints accuracy on all cases and on the ``core`` subset, false positives
(non-equivalent pairs accepted) and false negatives, the slowest case of each
grader, then verifications per second of plain sequential
``math_verify.verify(parse(gold), parse(pred))`` against rlvr's verifier
single-process (inline) and pooled, on the same pairs, with the ratio, and the
same plain math-verify checks through rlvr's worker pool (verdicts identical).

The cases are graded by general rules only: ``bare`` predictions are read whole,
``response`` predictions with rlvr's extraction rules in order. Nothing in the
verifier looks at case ids or strings of this file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from rlvr import Problem, Status
from rlvr.execution.workers import WorkerPool
from rlvr.verifiers.math_equivalence import RULES, MathVerifier, plain_math_verify

DEFAULT_CASES = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "math_equivalence.jsonl"
RESPONSE_RULES = ("boxed", "answer_tag", "gsm8k", "answer_is", "bold", "last_math", "bracket", "last_line")


def score(name: str, verdicts: list[bool], cases: list[dict], seconds: list[float]) -> dict:
    core = [i for i, c in enumerate(cases) if c["core"]]
    right = [v == c["expected"] for v, c in zip(verdicts, cases, strict=True)]
    fp = [c["id"] for v, c in zip(verdicts, cases, strict=True) if v and not c["expected"]]
    fn = [c["id"] for v, c in zip(verdicts, cases, strict=True) if not v and c["expected"]]
    slowest = max(range(len(cases)), key=lambda i: seconds[i])
    core_fp = [i for i in fp if next(c for c in cases if c["id"] == i)["core"]]
    print(
        f"{name:24} all {sum(right)}/{len(cases)} = {sum(right) / len(cases):.3f}   "
        f"core {sum(right[i] for i in core)}/{len(core)} = {sum(right[i] for i in core) / len(core):.3f}   "
        f"FP {len(fp)} (core {len(core_fp)})   FN {len(fn)}   slowest {cases[slowest]['id']} {seconds[slowest]:.2f}s"
    )
    return {"fp": fp, "fn": fn}


def fresh_sequential(pairs: list[tuple[str, str]]) -> tuple[float, list[bool]]:
    """Seconds and verdicts of plain math-verify over ``pairs``, one after another, in a new process."""
    code = (
        "import json, sys, time\n"
        "from rlvr.verifiers.math_equivalence import plain_math_verify as check\n"
        "pairs = json.load(sys.stdin)\n"
        "check('1/2', '0.5')\n"  # the same warm-up the pool's workers get
        "start = time.perf_counter()\n"
        "verdicts = [check(g, p) for g, p in pairs]\n"
        "print(json.dumps([time.perf_counter() - start, verdicts]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(pairs), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    seconds, verdicts = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--throughput-repeats", type=int, default=1)
    parser.add_argument("--show", action="store_true", help="list the ids of rlvr's false positives and negatives")
    parser.add_argument(
        "--literal-numbers",
        action="store_true",
        help="grade as in training (a numeric reference needs a number); the file labels plain equivalence",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    cases = [json.loads(line) for line in args.cases.read_text().splitlines() if line.strip()]
    problems = [Problem(id=c["id"], prompt="", reference=c["gold"]) for c in cases]
    assert set(RESPONSE_RULES) <= set(RULES)

    plain, plain_t = [], []
    for c in cases:
        start = time.perf_counter()
        plain.append(plain_math_verify(c["gold"], c["prediction"]))
        plain_t.append(time.perf_counter() - start)
    score("plain math-verify", plain, cases, plain_t)

    literal = args.literal_numbers
    bare = MathVerifier(extract=("whole",), isolation="process", literal_numbers=literal)
    response = MathVerifier(extract=RESPONSE_RULES, isolation="process", literal_numbers=literal)
    for grader in (bare, response):  # start the worker pools before timing (start-up is not verification)
        grader.warm_up()
    ours, ours_t = [], []
    for c, p in zip(cases, problems, strict=True):
        verifier = bare if c["kind"] == "bare" else response
        start = time.perf_counter()
        ours.append(verifier(c["prediction"], p).status is Status.CORRECT)
        ours_t.append(time.perf_counter() - start)
    errors = score(f"rlvr MathVerifier{' (literal)' if literal else ''}", ours, cases, ours_t)
    if args.show:
        print("false positives:", errors["fp"])
        print("false negatives:", errors["fn"])

    if args.skip_throughput:
        return
    # Throughput on the same pairs: plain math-verify sequentially (the peer), the same
    # checks through rlvr's worker pool (verdicts must be identical), and rlvr's own
    # verifier inline and pooled (its rules differ by design, so its verdicts may too).
    # The sequential peer runs in a fresh process, as fresh as the pool's workers: sympy's
    # caches, warmed by the accuracy pass above, would otherwise favour it.
    pairs = [(c["gold"], c["prediction"]) for c in cases] * args.throughput_repeats
    seconds, sequential = fresh_sequential(pairs)
    plain_rate = len(pairs) / seconds
    with WorkerPool(2, preload=("math_verify",), warmup=(plain_math_verify, ("1/2", "0.5"))) as pool:
        pool.wait_ready()  # worker start-up is not verification
        start = time.perf_counter()
        pooled = pool.map(plain_math_verify, pairs, timeout=30.0)
        pooled_rate = len(pairs) / (time.perf_counter() - start)
    identical = [r.value if r.status == "ok" else None for r in pooled] == sequential
    rates = {}
    for isolation in ("inline", "process"):
        graders = {
            k: MathVerifier(extract=r, isolation=isolation, literal_numbers=literal)
            for k, r in (("bare", ("whole",)), ("response", RESPONSE_RULES))
        }
        for grader in graders.values():
            grader.warm_up()
        if isolation == "inline":  # as cold as the workers: no parse or sympy cache from the accuracy pass
            import sympy.core.cache

            from rlvr.verifiers.math_equivalence import _parse

            _parse.cache_clear()
            sympy.core.cache.clear_cache()
        start = time.perf_counter()
        for _ in range(args.throughput_repeats):
            for kind, grader in graders.items():
                subset = [(c["prediction"], p) for c, p in zip(cases, problems, strict=True) if c["kind"] == kind]
                grader.batch([t for t, _ in subset], [p for _, p in subset])
        rates[isolation] = len(pairs) / (time.perf_counter() - start)
    print(
        f"throughput (verifications/s, {len(pairs)} pairs): plain math-verify sequential {plain_rate:.1f}, "
        f"pooled (2 workers) {pooled_rate:.1f}   rlvr MathVerifier inline {rates['inline']:.1f}, "
        f"pooled {rates['process']:.1f}"
    )
    print(
        f"ratio pooled / sequential math-verify: {pooled_rate / plain_rate:.2f}x, verdicts identical: {identical}"
        f"   rlvr pooled / sequential math-verify: {rates['process'] / plain_rate:.2f}x"
    )


if __name__ == "__main__":
    main()
