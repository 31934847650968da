import pytest

from rlvr import Problem, Status
from rlvr.execution.harness import plain_data_problem
from rlvr.execution.sandbox import Limits
from rlvr.testing import check_verifier
from rlvr.verifiers.code_tests import CodeTests, extract_program, suite_from_check

SUITE = {
    "tests": ["assert candidate(2) == 4", "assert candidate(3) == 9", "assert candidate(0) == 0"],
    "entry_point": "sq",
}
PROBLEM = Problem("sq", "square a number", SUITE)
RIGHT = "```python\ndef sq(x):\n    return x * x\n```"


@pytest.fixture(scope="module")
def verifier():
    verifier = CodeTests(workers=2, limits=Limits(wall_seconds=2.0))
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
        "def sq(x):\n    return [x] * 10 ** 7": "returned a value with more than",
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


def test_plain_data_problem():
    assert plain_data_problem([1, (2.0, "a"), {"k": {3}}, None, b"x", True]) == ""
    assert "not plain" in plain_data_problem([1, object()])
    assert "not plain" in plain_data_problem({"k": type("S", (str,), {})("x")})
    loop = []
    loop.append(loop)
    assert plain_data_problem(loop) == ""


def test_contract_with_the_kit(verifier):
    check_verifier(
        verifier,
        PROBLEM,
        positives=[RIGHT, "Here you go:\n" + RIGHT],
        negatives=["```python\ndef sq(x):\n    return None\n```", "sq = lambda x: -1"],
        examples=15,
    )
