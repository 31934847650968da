from fractions import Fraction

import pytest

from rlvr import Problem, Status
from rlvr.testing import check_verifier
from rlvr.verifiers.countdown import CountdownVerifier, evaluate

P = Problem(id="c", prompt="q", reference={"numbers": [3, 5, 3, 8], "target": 16})


def test_evaluate_is_exact_and_restricted():
    assert evaluate("(3 + 5) * 3 / 8") == (Fraction(3), [3, 5, 3, 8])
    assert evaluate(r"3 \times 5 - 8 \div 8")[0] == Fraction(14)
    for bad in ["2 ** 10", "__import__('os')", "-3 + 5", "3.5 + 1", "x + 1", "1 / 0", "True + 1", "1+" * 150 + "1"]:
        with pytest.raises(ValueError):
            evaluate(bad)
    assert evaluate("(" * 60 + "7" + ")" * 60) == (Fraction(7), [7])  # nesting is fine, length is bounded


@pytest.mark.parametrize(
    "answer, score",
    [
        ("(3 * 8) - (5 + 3)", 1.0),
        ("3 * 8 - 5 - 3 = 16", 1.0),
        ("3 * 8 - 5 - 3 = 17", 0.0),  # the stated result must be the target
        ("8 + 8", 0.0),  # 8 used twice
        ("3 + 5 + 8", 0.0),  # not every number used
        ("3 * 5 + 3 - 8", 0.0),  # 10, not 16
    ],
)
def test_countdown(answer, score):
    assert CountdownVerifier()(f"\\boxed{{{answer}}}", P).score == score


def test_use_all_off_and_bad_reference():
    assert CountdownVerifier(use_all=False)(r"\boxed{8 + 8}", P).score == 0.0
    assert CountdownVerifier(use_all=False)(r"\boxed{(3 + 5) * 3 - 8}", P).score == 1.0
    assert CountdownVerifier(use_all=False)(r"\boxed{8 * (5 - 3)}", P).score == 1.0
    bad = Problem(id="b", prompt="q", reference={"numbers": [1]})
    assert CountdownVerifier()(r"\boxed{1}", bad).status is Status.UNSCORABLE


def test_countdown_contract():
    check_verifier(CountdownVerifier(), P, positives=[r"\boxed{3 * 8 - 5 - 3}"], negatives=[r"\boxed{3 + 5 + 3 + 8}"])
