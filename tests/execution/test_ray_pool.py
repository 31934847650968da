"""The worker pool on Ray: the local pool's bounds, statuses and verdicts, and no zero for a lost Ray worker.

One local Ray cluster (``ray.init``, 4 logical CPUs) serves the whole module and
is shut down after it. Ray is in the dev extra, so a missing Ray fails these
tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import ray
from pooltasks import boom, die, hog, sleepy, square

from rlvr import Problem, Status
from rlvr.execution.ray_pool import RayPool
from rlvr.execution.sandbox import Limits, RunResult, _from_task
from rlvr.execution.workers import TaskResult, WorkerPool, resolve_backend
from rlvr.verifiers.code_tests import CodeTests, verdict_of
from rlvr.verifiers.math_equivalence import MathVerifier

SHARED_CASES = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "math_equivalence.jsonl"
# The answer-equivalence cases of tests/verifiers/test_math_equivalence.py: (gold, answer).
CASES = [
    ("85", "85"), ("85", "85.0"), ("0.5", r"\frac{1}{2}"), (r"\frac{1}{2}", "1/2"), ("1,000", "1000"),
    ("-12", "-12"), ("x=2", "2"), ("85", "86"), ("-12", "12"), (r"\frac{1}{3}", "0.33"), ("104", "11 + 93"),
    ("104", "2 \\cdot 52"), ("104", "104 \\text{ apples}"), ("28\\%", "28 \\text{percent}"), ("1000", "1 000"),
    ("11", "x = 11"), ("2", "\\sqrt{4}"), ("2\\sqrt{3}", "\\sqrt{12}"),
]  # fmt: skip
SECRET = f"rlvr-secret-{uuid.uuid4().hex}"
ADD = Problem("add", "write add(a, b)", {"tests": ["assert candidate(1, 2) == 3"], "entry_point": "add"})
HOSTILE = {
    "infinite loop": "def add(a, b):\n    while True:\n        pass",
    "memory bomb": "x = bytearray(8 * 1024 ** 3)\ndef add(a, b):\n    return a + b",
    "fork bomb (bounded)": "import os\nfor _ in range(200):\n    try:\n        os.fork()\n    except OSError:\n"
    "        pass\nimport time\ntime.sleep(100)",
    "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef add(a, b): return None",
    "kill every process it can": "import os, signal\nos.kill(-1, signal.SIGKILL)",
    "read secrets": "import os, glob\nprint(dict(os.environ))\nfor p in glob.glob('/proc/*/environ'):\n    try:\n"
    "        print(open(p, 'rb').read())\n    except OSError:\n        pass",
}


@pytest.fixture(scope="module")
def cluster():
    os.environ["RLVR_TEST_SECRET"] = SECRET  # inherited by Ray's processes; must not reach a program
    tests = str(Path(__file__).resolve().parents[1])  # where the pool's task functions live (pooltasks)
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}}
    try:
        ray.init(
            num_cpus=4, include_dashboard=False, configure_logging=False, log_to_driver=False, runtime_env=runtime_env
        )
    except Exception:
        ray.shutdown()  # what a failed start left running
        raise
    yield
    ray.shutdown()
    os.environ.pop("RLVR_TEST_SECRET", None)


def kill_one_mid_batch(pool: RayPool) -> threading.Thread:
    """SIGKILL one Ray actor of ``pool`` as soon as it holds a task."""

    def kill() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [m for m in list(pool.members) if m.calls and m.pid]
            if busy:
                time.sleep(0.2)
                os.kill(busy[0].pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_the_backend_option(monkeypatch):
    monkeypatch.delenv("RLVR_POOL_BACKEND", raising=False)
    assert resolve_backend() == "local" and resolve_backend("ray") == "ray"
    monkeypatch.setenv("RLVR_POOL_BACKEND", "ray")
    assert resolve_backend() == "ray" and resolve_backend("local") == "local"
    assert MathVerifier().backend == "ray" and CodeTests().backend == "ray"
    monkeypatch.setenv("RLVR_POOL_BACKEND", "dask")
    with pytest.raises(ValueError, match="RLVR_POOL_BACKEND"):
        MathVerifier()
    with pytest.raises(ValueError, match="backend"):
        CodeTests(backend="threads")


def test_a_lost_ray_worker_is_machinery_never_the_completion():
    lost = TaskResult("unavailable", error="the Ray worker running it was lost (ActorDiedError), 2 time(s)")
    assert MathVerifier()._verdict("104", lost).status is Status.ERROR
    run = _from_task(lost)
    assert run.status == "error"
    assert verdict_of({"program": "", "tests": ["assert True"]}, run).status is Status.ERROR
    assert _from_task(TaskResult("crashed")).status == "lost"  # the sandbox worker itself: the program's


def test_bounds_and_statuses_are_the_local_pools(cluster):
    def outcomes(pool) -> list[tuple[str, object]]:
        results = pool.map(square, [(i,) for i in range(6)])
        start = time.monotonic()
        results += pool.map(sleepy, [(0.01,), (30,), (0.02,), (30,)], timeout=1.0)
        assert time.monotonic() - start < 1.0 + 3.0
        results += [pool.run(boom, ()), pool.run(die, ()), pool.run(hog, ()), pool.run(square, (7,))]
        return [(r.status, r.value) for r in results]

    with WorkerPool(2, memory_limit_mb=256) as local, RayPool(2, memory_limit_mb=256) as remote:
        expected = outcomes(local)
        assert outcomes(remote) == expected
    assert [s for s, _ in expected] == ["ok"] * 6 + [
        "ok",
        "timeout",
        "ok",
        "timeout",
        "error",
        "crashed",
        "error",
        "ok",
    ]


def test_math_verdicts_identical_to_the_local_pool(cluster):
    # The shared cases live beside the repository (CI has them); a bare clone checks the verifier's own.
    lines = SHARED_CASES.read_text().splitlines() if SHARED_CASES.exists() else []
    shared = [json.loads(line) for line in lines if line.strip()]
    pairs = [(c["gold"], f"\\boxed{{{c['prediction']}}}" if c["kind"] == "bare" else c["prediction"]) for c in shared]
    pairs += [(gold, f"So \\boxed{{{answer}}}") for gold, answer in CASES]
    problems = [Problem(f"case-{i}", "q", gold) for i, (gold, _) in enumerate(pairs)]
    completions = [completion for _, completion in pairs]
    local, remote = MathVerifier(timeout_seconds=10.0), MathVerifier(timeout_seconds=10.0, backend="ray")
    try:
        want, got = local.batch(completions, problems), remote.batch(completions, problems)
    finally:
        local._get_pool().close()
        remote._get_pool().close()
    assert len(got) == len(pairs) >= (490 if shared else len(CASES))
    assert [(v.status, v.score, dict(v.details)) for v in got] == [(v.status, v.score, dict(v.details)) for v in want]
    assert Status.ERROR not in {v.status for v in got}


def test_humaneval_verdicts_identical_to_the_local_pool(cluster):
    from rlvr.envs.code import HumanEvalEnv

    problems = HumanEvalEnv().problems
    completions = [p.meta["canonical_solution"] for p in problems] + ["    return None\n"] * len(problems)
    limits = Limits(wall_seconds=10.0)  # room for a contended machine; the same on both sides
    local, remote = CodeTests(workers=2, limits=limits), CodeTests(workers=2, limits=limits, backend="ray")
    try:
        want, got = local.batch(completions, problems * 2), remote.batch(completions, problems * 2)
    finally:
        local.close()
        remote.close()
    assert [(v.status, v.score, dict(v.details)) for v in got] == [(v.status, v.score, dict(v.details)) for v in want]
    assert [v.score for v in got[: len(problems)]] == [1.0] * len(problems)
    assert all(v.score < 1.0 for v in got[len(problems) :])


def test_the_sandbox_holds_inside_a_ray_worker(cluster):
    limits = Limits(wall_seconds=2.0, memory_mb=512)
    local, remote = CodeTests(workers=2, limits=limits), CodeTests(workers=2, limits=limits, backend="ray")
    try:
        payloads = [local._prepare(program, ADD) for program in HOSTILE.values()]
        want, got = local._get_sandbox().run(payloads), remote._get_sandbox().run(payloads)
        assert remote("```python\ndef add(a, b):\n    return a + b\n```", ADD).status is Status.CORRECT
    finally:
        local.close()
        remote.close()
    for name, payload, mine, theirs in zip(HOSTILE, payloads, got, want, strict=True):
        verdict = verdict_of(payload, mine)
        assert verdict.status is Status.INCORRECT and verdict.score == 0.0, (name, mine)
        assert mine.seconds <= limits.wall_seconds + 1.0, (name, mine.seconds)
        assert (mine.status, mine.signal, mine.isolation) == (theirs.status, theirs.signal, theirs.isolation), name
        assert SECRET not in mine.stdout + mine.stderr, name


def test_a_ray_worker_killed_mid_batch_scores_no_sample_zero(cluster):
    from rlvr.envs.code import HumanEvalEnv

    problems = HumanEvalEnv(limit=40).problems
    verifier = CodeTests(workers=2, limits=Limits(wall_seconds=10.0), backend="ray")
    try:
        verifier.warm_up()
        pool = verifier._get_sandbox().pool
        killer = kill_one_mid_batch(pool)
        verdicts = verifier.batch([p.meta["canonical_solution"] for p in problems], problems)
        killer.join()
        assert pool.retried >= 1 and pool.replaced >= 1
    finally:
        verifier.close()
    assert {v.status for v in verdicts} <= {Status.CORRECT, Status.ERROR}
    assert [v.score for v in verdicts if v.status is Status.CORRECT] == [1.0] * sum(
        v.status is Status.CORRECT for v in verdicts
    )


def test_a_task_lost_on_every_try_comes_back_unavailable(cluster):
    with RayPool(1, retries=0) as pool:
        pool.wait_ready()
        killer = kill_one_mid_batch(pool)
        results = pool.map(sleepy, [(5.0,)], timeout=10.0)
        killer.join()
        assert results[0].status == "unavailable" and "lost" in results[0].error
        assert pool.run(square, (3,)).value == 9  # a fresh actor took its place
    assert isinstance(_from_task(results[0]), RunResult) and _from_task(results[0]).status == "error"
