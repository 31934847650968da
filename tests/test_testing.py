"""The property-test kit catches the verifiers it exists to catch."""

import itertools
import time

import pytest

from rlvr import Problem, VerifierError
from rlvr.testing import check_verifier

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
