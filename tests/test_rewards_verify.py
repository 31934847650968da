import pytest

import rlvr
from rlvr import Problem, Verdict, VerifierError
from rlvr.rewards import as_verifier, verify, verify_batch


def test_plain_function_becomes_verifier_and_numbers_become_verdicts(problem):
    v = as_verifier(lambda completion, problem: completion.strip() == problem.reference)
    assert verify(v, " 4 ", problem) == Verdict(1.0, "correct")
    assert verify(v, "5", problem).score == 0.0


def test_keyword_options_are_bound(problem):
    def contains(completion, problem, *, needle="x"):
        return needle in completion

    v = as_verifier(contains, needle="4")
    assert verify(v, "is 4", problem).score == 1.0


@pytest.mark.parametrize(
    "fn, fragment",
    [
        (lambda completion: 1.0, "fn(completion, problem"),
        (lambda completion, problem, extra: 1.0, "need defaults"),
        (lambda: 1.0, "problem.reference"),
    ],
)
def test_bad_signature_says_how_to_fix(fn, fragment):
    with pytest.raises(TypeError, match="cannot be called as") as info:
        as_verifier(fn, "bad")
    assert fragment in str(info.value)


def test_wrong_return_type_is_reported(problem):
    v = as_verifier(lambda completion, problem: "yes", "stringy")
    with pytest.raises(VerifierError, match="stringy.*p1.*returned str"):
        verify(v, "x", problem)


def test_exceptions_name_the_problem_and_are_not_zero(problem):
    def boom(completion, problem):
        raise ZeroDivisionError("oops")

    with pytest.raises(VerifierError, match="'boom' raised on problem 'p1': ZeroDivisionError: oops") as info:
        verify(as_verifier(boom), "x", problem)
    assert info.value.problem_id == "p1"


def test_cancellation_is_not_swallowed(problem):
    def interrupted(completion, problem):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        verify(as_verifier(interrupted), "x", problem)


def test_verify_batch_prefers_batch_method_and_checks_length():
    calls = []

    class Batched:
        def __call__(self, completion, problem):
            raise AssertionError("batch should be used")

        def batch(self, completions, problems):
            calls.append(len(completions))
            return [float(c == p.reference) for c, p in zip(completions, problems, strict=True)]

    problems = [Problem(id=str(i), prompt="q", reference=str(i)) for i in range(3)]
    verdicts = verify_batch(Batched(), ["0", "x", "2"], problems)
    assert [v.score for v in verdicts] == [1.0, 0.0, 1.0] and calls == [3]

    class Short(Batched):
        def batch(self, completions, problems):
            return [1.0]

    with pytest.raises(VerifierError, match="1 verdicts for 3"):
        verify_batch(Short(), ["0", "1", "2"], problems)
    with pytest.raises(ValueError, match="2 completions but 3"):
        verify_batch(Batched(), ["0", "1"], problems)


def test_instance_with_bad_call_is_rejected():
    class NoProblem:
        def __call__(self, completion):
            return 1.0

    with pytest.raises(TypeError, match="cannot be called"):
        rlvr.as_verifier(NoProblem())
    with pytest.raises(TypeError, match="not callable"):
        rlvr.as_verifier(42)
