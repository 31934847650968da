import pytest

from rlvr import Problem, Status
from rlvr.execution import wire
from rlvr.execution.harness import program_names, same_output
from rlvr.execution.sandbox import Limits, RunResult, Sandbox, signal_name
from rlvr.testing import check_verifier
from rlvr.verifiers.code_extract import defines, fenced_blocks
from rlvr.verifiers.code_tests import CodeTests, extract_program, suite_from_check, verdict_of

SUITE = {
    "tests": ["assert candidate(2) == 4", "assert candidate(3) == 9", "assert candidate(0) == 0"],
    "entry_point": "sq",
}
PROBLEM = Problem("sq", "square a number", SUITE)
RIGHT = "```python\ndef sq(x):\n    return x * x\n```"


@pytest.fixture(scope="module")
def verifier():
    verifier = CodeTests(workers=2, limits=Limits(wall_seconds=4.0))  # room for a contended machine
    yield verifier
    verifier._get_sandbox().close()


def test_extract_program():
    text = "Try:\n```python\na = 1\n```\nthen\n```\nb = 2\n```\nand\n```bash\nls\n```"
    assert extract_program(text) == "b = 2\n"
    assert extract_program(text, "whole") == text
    assert extract_program("no code here", "last_block") is None
    assert extract_program("x = 1", "auto") == "x = 1"
    with pytest.raises(ValueError, match="rule"):
        extract_program("x", "first")


def test_suite_from_check_one_test_per_assert_with_its_setup_lines():
    check = (
        "METADATA = {}\n\ndef check(candidate):\n    x = candidate(1)\n    assert x == 2\n"
        "    for i in range(3):\n        assert candidate(i) == i + 1\n    y = 3\n"
    )
    suite = suite_from_check(check, "inc", "import math\ndef helper():\n    return 1\ndef inc(x):\n    '''doc'''\n")
    assert suite["tests"] == [
        "x = candidate(1)\nassert x == 2",
        "for i in range(3):\n    assert candidate(i) == i + 1\ny = 3",
    ]
    assert "def helper" in suite["setup"] and "METADATA" in suite["setup"] and "def inc" not in suite["setup"]
    with pytest.raises(ValueError, match="no assert"):
        suite_from_check("def check(candidate):\n    pass\n", "f")
    with pytest.raises(ValueError, match="exactly one"):
        suite_from_check("x = 1\n", "f")


def test_fraction_and_all_or_nothing(verifier):
    half = "```python\ndef sq(x):\n    return 4 if x == 2 else x\n```"  # passes tests 0 and 2
    verdict = verifier(half, PROBLEM)
    assert verdict.score == pytest.approx(2 / 3) and verdict.status == Status.INCORRECT
    assert verdict.details["failures"] == [{"test": 1, "why": "assertion failed"}]
    all_or_nothing = CodeTests(mode="all", workers=1)
    assert all_or_nothing(half, PROBLEM).score == 0.0
    assert all_or_nothing(RIGHT, PROBLEM).status == Status.CORRECT


def test_failure_reasons(verifier):
    cases = {
        "def sq(x):\n    raise ValueError('no')": "exception: ValueError: no",
        "def sq(x) return": "syntax error",
        "def square(x):\n    return x * x": "the program defines no function 'sq'",
        "import time\ndef sq(x):\n    time.sleep(10)": "timeout",
        "def sq(x):\n    return float(x * x) + 0.5": "assertion failed",
        "def sq(x):\n    return [x] * 10 ** 7": "returned a value deeper than 100 or larger than",
    }
    verdicts = verifier.batch(list(cases), [PROBLEM] * len(cases))
    for (program, why), verdict in zip(cases.items(), verdicts, strict=True):
        assert verdict.score == 0.0 and verdict.details["failures"][0]["why"].startswith(why), (program, verdict)


def test_partial_credit_survives_a_timeout_in_a_later_test(verifier):
    slow = "def sq(x):\n    while x == 0:\n        pass\n    return x * x"
    verdict = verifier(slow, PROBLEM)
    assert verdict.score == pytest.approx(2 / 3)
    assert verdict.details["failures"] == [{"test": 2, "why": "timeout"}]


def test_bad_references_are_unscorable_and_empty_completions_incorrect(verifier):
    for reference in (None, "assert f(1) == 1", {"tests": []}, {"tests": [1]}):
        assert verifier(RIGHT, Problem("p", "q", reference)).status == Status.UNSCORABLE
    broken_setup = Problem("p", "q", {**SUITE, "setup": "raise RuntimeError('bad setup')"})
    assert verifier(RIGHT, broken_setup).status == Status.UNSCORABLE
    assert verifier("", PROBLEM).status == Status.INCORRECT
    assert CodeTests(max_program_chars=10, workers=1)(RIGHT, PROBLEM).details["reason"].startswith("program longer")


def test_a_sandbox_failure_is_an_error_not_a_score(verifier, monkeypatch):
    from rlvr.execution.sandbox import RunResult

    monkeypatch.setattr(
        verifier._get_sandbox(), "run", lambda payloads: [RunResult("error", error="boom")] * len(payloads)
    )
    verdict = verifier(RIGHT, PROBLEM)
    assert verdict.status == Status.ERROR and "boom" in verdict.details["reason"]


def test_prefix_continuation_and_full_definition():
    from rlvr.verifiers.code_tests import CodeTests as C

    suite = {**SUITE, "prefix": "def sq(x):\n    '''Square x.'''\n"}
    v = C(workers=1)
    problem = Problem("p", "q", suite)
    assert v.batch(["    return x * x\n", RIGHT, "    return x\n"], [problem] * 3)[0].score == 1.0
    assert [x.score for x in v.batch(["    return x * x\n", RIGHT, "    return x\n"], [problem] * 3)] == [
        1.0,
        1.0,
        1 / 3,
    ]


def test_the_wire_carries_plain_data_exactly_and_nothing_else():
    value = [
        1,
        -(2**70),
        0.1,
        float("inf"),
        "é",
        b"\x00",
        None,
        True,
        (1, (2,)),
        {3, 4},
        frozenset({5}),
        {(1, 2): [3]},
        1j,
    ]
    decoded = wire.from_wire(wire.loads(wire.to_json(wire.to_wire(value)).encode("utf-8", "surrogatepass")))
    assert decoded == value and [type(x) for x in decoded] == [type(x) for x in value]
    assert type(wire.from_wire(wire.to_wire(True))) is bool
    for bad in (type("S", (str,), {})("x"), object(), [[[]]] * 0 + [_deep(150)], iter([])):
        with pytest.raises(wire.WireError):
            wire.to_wire(bad)
    malformed = [
        {"f": 1},
        {"x": 1},
        {"s": [[1]]},
        {"d": [[[1], 2]]},
        {"o": ["Evil", {}]},
        {"t": "ab"},
        {"f": "0x1p+1", "t": []},
    ]
    for data in malformed:
        with pytest.raises(wire.WireError):
            wire.from_wire(data)
    for frame in (b"NaN", b"1.5", b"[" * 100_000, b"\xff", b'{"a": Infinity}'):
        with pytest.raises(wire.WireError):
            wire.loads(frame)


def _deep(n):
    value = []
    for _ in range(n):
        value = [value]
    return value


def test_oversized_frames_are_refused_before_they_are_read():
    import os

    read, write = os.pipe()
    os.write(write, b"%08d" % 10**7)
    with pytest.raises(wire.WireError, match="over the"):
        wire.receive(read, 1000)
    os.close(write)
    with pytest.raises(wire.ChannelClosed):
        wire.receive(read, 1000)
    os.close(read)


def test_program_names_never_shadow_builtins_or_setup():
    tests = ["assert abs(candidate(1)) == len(helper(2))", "x = f(1)\nassert x == g(x)", "import math\nassert math.pi"]
    assert program_names(tests, {"helper"}, "sq") == ["f", "g", "sq"]
    assert same_output("1 2  \n3\n\n", "1 2\n3") and not same_output("1 2\n", "1 3")


def test_a_signal_without_a_name_is_decoded():
    assert signal_name(11) == "SIGSEGV" and signal_name(40) == "signal 40"


def test_statuses_after_the_program_started_are_the_programs():
    payload = {"program": "x", "tests": ["assert candidate(1) == 1"] * 2, "entry_point": "sq"}
    for status, extra in (("timeout", {}), ("lost", {}), ("signaled", {"signal": "signal 40"}), ("exited", {})):
        verdict = verdict_of(payload, RunResult(status, **extra))
        assert verdict.status == Status.INCORRECT and verdict.score == 0.0, (status, verdict)
    assert verdict_of(payload, RunResult("error", error="no interpreter")).status == Status.ERROR
    judge_broke = RunResult("exited", report=({"event": "judge failed", "why": "bug"},))
    assert verdict_of(payload, judge_broke).status == Status.INCORRECT


def test_machinery_failures_are_retried_once_on_fresh_workers(monkeypatch):
    sandbox = Sandbox(workers=1)
    calls = []

    def fake_map(payloads, limits):
        calls.append(len(payloads))
        runs = [
            RunResult("error", error="boom") if len(calls) == 1 and i == 0 else RunResult("done")
            for i in range(len(payloads))
        ]
        return runs, set()  # no index the pool itself already retried

    monkeypatch.setattr(sandbox, "_map", fake_map)
    results = sandbox.run([{"program": "a"}, {"program": "b"}])
    assert calls == [2, 1] and [r.status for r in results] == ["done", "done"]
    sandbox.close()


def test_stdin_stdout_problems_are_judged_outside_the_program(verifier):
    problem = Problem(
        "io", "sum two numbers", {"io": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10"}]}
    )
    right = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert verifier(right, problem).status == Status.CORRECT
    apps_style = Problem("io2", "q", {"inputs": ["4\n"], "outputs": ["16\n"]})
    assert verifier("import sys\nn = int(sys.stdin.read())\nprint(n * n)\nsys.exit(0)", apps_style).score == 1.0
    cases = {
        "print(3)": "wrong output",
        "raise ValueError('x')": "exception: ValueError: x",
        "import os\nos.write(1, b'3')": "wrong output",
        "while True: pass": "timeout",
    }
    verdicts = verifier.batch(list(cases), [problem] * len(cases))
    for (program, why), verdict in zip(cases.items(), verdicts, strict=True):
        assert verdict.score < 1.0 and verdict.details["failures"][-1]["why"].startswith(why), (program, verdict)
    assert verifier(right, Problem("bad", "q", {"io": [{"input": 1}]})).status == Status.UNSCORABLE


def test_setup_classes_cross_to_the_program(verifier):
    setup = "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
    problem = Problem("pair", "q", {"setup": setup, "tests": ["assert pair_sum(Pair(1, 2)) == 3"], "entry_point": None})
    assert verifier("def pair_sum(p):\n    return p.a + p.b", problem).status == Status.CORRECT
    assert verifier("def pair_sum(p):\n    return p", problem).details["failures"][0]["why"] == "assertion failed"
    own_class = "class Three:\n    def __eq__(self, other):\n        return True\ndef pair_sum(p):\n    return Three()"
    assert verifier(own_class, problem).details["failures"][0]["why"].startswith("returned an object of type")


def test_fence_scanning_is_linear_and_reads_no_program():
    import time

    start = time.perf_counter()
    for text in ("```python\n" * 200_000, "```\nx\n" * 100_000 + "```py", "(" * 1_000_000):
        extract_program(text)
        defines(text, "f")
    assert time.perf_counter() - start < 2.0
    assert fenced_blocks("```py title\na\n```\n```\nb\n") == [("py", "a\n")]
    assert (
        defines("x = 1\nasync def f (a):\n", "f") and not defines("  def f(a):", "f") and not defines("def fg():", "f")
    )


def test_contract_with_the_kit(verifier):
    check_verifier(
        verifier,
        PROBLEM,
        positives=[RIGHT, "Here you go:\n" + RIGHT],
        negatives=["```python\ndef sq(x):\n    return None\n```", "sq = lambda x: -1"],
        examples=15,
    )


def test_an_interpreter_that_cannot_start_is_an_error_after_a_retry():
    broken = CodeTests(workers=1, limits=Limits(wall_seconds=2.0, memory_mb=2))  # too little for Python to start
    try:
        verdict = broken(RIGHT, PROBLEM)
    finally:
        broken.close()
    assert verdict.status == Status.ERROR and "did not start" in verdict.details["reason"], verdict
