"""The property-test kit catches the verifiers it exists to catch."""

import itertools
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings

from rlvr import Problem, VerifierError
from rlvr.testing import check_code_verifier, check_verifier, hostile_completions

P = Problem(id="p", prompt="2 + 2?", reference="4")


def good(completion, problem):
    return float(completion.strip().endswith(f"\\boxed{{{problem.reference}}}"))


def test_a_sound_verifier_passes():
    check_verifier(good, P, positives=["so \\boxed{4}"], negatives=["\\boxed{5}"], examples=20)


@pytest.mark.parametrize(
    "verifier, error",
    [
        (lambda c, p: 1.0, AssertionError),  # fails open: a negative scores 1
        (lambda c, p: 0.0, AssertionError),  # fails closed: a positive scores 0
        (lambda c, p: float("\\boxed{" in c), AssertionError),  # rewards degenerate boxes
        (lambda c, p: 2.0 if "4" in c else 0.0, AssertionError),  # out of range
        (lambda c, p: 1 / 0 if "x" in c else good(c, p), VerifierError),  # raises on some input
    ],
)
def test_bad_verifiers_are_caught(verifier, error):
    with pytest.raises(error):
        check_verifier(verifier, P, positives=["so \\boxed{4}"], negatives=["\\boxed{5}"], examples=30)


def test_nondeterminism_and_slowness_are_caught():
    counter = itertools.count()
    with pytest.raises(AssertionError, match="deterministic"):
        check_verifier(
            lambda c, p: float(next(counter) % 2), P, degenerate=False, whitespace_invariant=False, examples=10
        )

    def slow(completion, problem):
        time.sleep(0.05)
        return good(completion, problem)

    with pytest.raises(AssertionError, match="took"):
        check_verifier(slow, P, positives=["\\boxed{4}"], max_seconds=0.01, examples=5)


def test_context_and_spraying_are_checked():
    def reads_first_line(completion, problem):
        return float(completion.strip().splitlines()[0].strip() == "\\boxed{4}") if completion.strip() else 0.0

    with pytest.raises(AssertionError, match="text before the answer"):
        check_verifier(reads_first_line, P, positives=["\\boxed{4}"], examples=5)

    def last_box(completion, problem):
        return float(completion.rstrip().endswith("\\boxed{4}"))

    with pytest.raises(AssertionError, match="spraying"):
        check_verifier(last_box, P, positives=["\\boxed{4}"], sprayed_answer="4", examples=30)


ADD = Problem(
    id="add",
    prompt="write add(a, b)",
    reference={"tests": ["assert candidate(1, 2) == 3", "assert candidate(-1, 1) == 0"], "entry_point": "add"},
)
RIGHT = "def add(a, b):\n    return a + b\n"


def _fake_code_verifier(fooled_by: str = "", errors_on: str = ""):
    """A stand-in that runs nothing: CORRECT for the right program and whatever text it is fooled by."""
    from rlvr import Verdict

    def verifier(completion, problem):
        if completion == RIGHT or (fooled_by and fooled_by in completion):
            return Verdict.correct()
        if errors_on and errors_on in completion:
            return Verdict.error("the sandbox broke")
        return Verdict.incorrect("failed", passed=0)

    return verifier


def test_the_code_kit_catches_forged_verdicts_and_escapes_into_error():
    check_code_verifier(_fake_code_verifier(), ADD, right=RIGHT, wall_seconds=1.0)
    with pytest.raises(AssertionError, match="scored"):
        check_code_verifier(_fake_code_verifier(fooled_by="gc.get_objects"), ADD, right=RIGHT, wall_seconds=1.0)
    with pytest.raises(AssertionError, match="ERROR"):
        check_code_verifier(_fake_code_verifier(errors_on="os.mkdir"), ADD, right=RIGHT, wall_seconds=1.0)
    with pytest.raises(AssertionError, match="right program"):
        check_code_verifier(lambda c, p: 0.0, ADD, right=RIGHT, wall_seconds=1.0)


def test_the_code_kit_passes_the_sandboxed_verifier():
    from rlvr.execution.sandbox import Limits
    from rlvr.verifiers.code_tests import CodeTests

    verifier = CodeTests(workers=2, limits=Limits(wall_seconds=2.0, memory_mb=512))
    try:
        verdicts = check_code_verifier(verifier, ADD, right=RIGHT, wall_seconds=2.0, mark=uuid.uuid4().hex[:12])
    finally:
        verifier.close()
    assert len(verdicts) >= 30


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_completions())
def test_hostile_completions_are_text(completion):
    assert isinstance(completion, str) and completion
