"""The killable worker pool: time bounds that hold, crashes contained, order kept."""

import time

import pytest
from pooltasks import boom, busy_loop, die, hog, sleepy, square

from rlvr.execution.workers import WorkerPool


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(workers=2, memory_limit_mb=256) as p:
        yield p


def test_results_in_input_order(pool):
    results = pool.map(square, [(i,) for i in range(20)])
    assert [r.value for r in results] == [i * i for i in range(20)]
    assert all(r.status == "ok" for r in results)


def test_hung_tasks_are_killed_within_the_bound_and_others_survive(pool):
    start = time.monotonic()
    results = pool.map(sleepy, [(0.01,), (30,), (0.01,), (30,), (0.02,)], timeout=1.0)
    elapsed = time.monotonic() - start
    assert [r.status for r in results] == ["ok", "timeout", "ok", "timeout", "ok"]
    assert elapsed < 1.0 + 1.5, elapsed
    assert pool.run(square, (7,)).value == 49  # replaced workers serve the next task


def test_cpu_bound_loop_is_killed(pool):
    start = time.monotonic()
    assert pool.run(busy_loop, (), timeout=0.5).status == "timeout"
    assert time.monotonic() - start < 2.0


def test_errors_crashes_and_memory_limits_are_reported(pool):
    results = pool.map(boom, [()])
    assert results[0].status == "error" and "ValueError: bad input" in results[0].error
    crashed = pool.run(die, ())
    assert crashed.status == "crashed" and "-11" in crashed.error
    assert pool.run(hog, ()).status == "error"
    assert [r.value for r in pool.map(square, [(2,), (3,)])] == [4, 9]


def test_a_dead_idle_worker_is_replaced(pool):
    pool.run(square, (1,))
    for worker in pool.workers:
        worker.process.kill()
        worker.process.join()
    assert [r.value for r in pool.map(square, [(5,), (6,)])] == [25, 36]


def test_workers_do_not_rerun_the_parents_main_script(tmp_path):
    """A script read from stdin, or one without a __main__ guard, must not break or re-run."""
    import subprocess
    import sys

    marker = tmp_path / "ran"
    script = (
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).open('a').write('x')  # module level: must run once\n"
        "from rlvr import Problem\n"
        "from rlvr.verifiers.math_equivalence import MathVerifier\n"
        "v = MathVerifier(isolation='process')\n"
        "print(v('\\\\boxed{4}', Problem(id='p', prompt='', reference='4')).score)\n"
    )
    out = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1.0"
    assert marker.read_text() == "x"
