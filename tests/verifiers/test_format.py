import pytest

from rlvr import Problem
from rlvr.testing import check_verifier
from rlvr.verifiers.format import BoxedOnce, LengthBounds, RegexFormat, ThinkAnswer

P = Problem(id="p", prompt="q", reference="4")


@pytest.mark.parametrize(
    "text, score, reason",
    [
        (r"so \boxed{4}", 1.0, None),
        (r"\boxed{\frac{1}{2}}", 1.0, None),
        ("no box", 0.0, "no \\boxed{}"),
        (r"\boxed{}", 0.0, "empty"),
        (r"\boxed{ }", 0.0, "empty"),
        (r"\boxed{} \boxed{} \boxed{}", 0.0, "3 \\boxed{} found"),
        (r"\boxed{4} \boxed{4}", 0.0, "2 \\boxed{} found"),
        (r"\boxed{4", 0.0, "unbalanced"),
    ],
)
def test_boxed_once(text, score, reason):
    verdict = BoxedOnce()(text, P)
    assert verdict.score == score
    if reason:
        assert reason in verdict.details["reason"]


def test_boxed_once_contract():
    check_verifier(BoxedOnce(), P, positives=[r"The answer is \boxed{4}."], negatives=[r"\boxed{4}\boxed{5}", "4"])


@pytest.mark.parametrize(
    "text, score",
    [
        ("<think>add them</think><answer>4</answer>", 1.0),
        ("  <think>add\nthem</think>\n<answer> 4 </answer>\n", 1.0),
        ("<think></think><answer>4</answer>", 0.0),
        ("<think>x</think><answer> </answer>", 0.0),
        ("<think>x</think>4", 0.0),
        ("preamble <think>x</think><answer>4</answer>", 0.0),
        ("<think>x</think><answer>4</answer> trailing", 0.0),
        ("<think>x</think><think>y</think><answer>4</answer>", 0.0),
        ("<think>x</think><answer>4</answer><answer>5</answer>", 0.0),
    ],
)
def test_think_answer(text, score):
    assert ThinkAnswer()(text, P).score == score


def test_think_answer_without_answer_tag():
    v = ThinkAnswer(answer_tag=False)
    assert v("<think>x</think> The answer is 4.", P).score == 1.0
    assert v("<think>x</think>   ", P).score == 0.0
    check_verifier(v, P, positives=["<think>sum</think>4"], negatives=["4"], context_invariant=False)


def test_think_answer_contract():
    check_verifier(
        ThinkAnswer(),
        P,
        positives=["<think>2+2</think><answer>4</answer>"],
        negatives=["<answer>4</answer>"],
        context_invariant=False,  # the format itself forbids text before <think>
    )


def test_regex_format():
    v = RegexFormat(r"Answer: \d+")
    assert v("Answer: 12", P).score == 1.0
    assert v("So. Answer: 12", P).score == 0.0
    assert RegexFormat(r"Answer: \d+", mode="search")("So. Answer: 12", P).score == 1.0
    assert RegexFormat("answer", ignore_case=True, mode="search")("ANSWER", P).score == 1.0
    with pytest.raises(ValueError, match="invalid regular expression"):
        RegexFormat("(")
    with pytest.raises(ValueError, match="mode"):
        RegexFormat("x", mode="match")
    check_verifier(RegexFormat(r"Answer: \d+", mode="search"), P, positives=["Answer: 4"], negatives=["Answer: four"])


def test_length_bounds():
    v = LengthBounds(min_chars=3, max_chars=10)
    assert v("  abc  ", P).score == 1.0 and v("ab", P).score == 0.0 and v("x" * 11, P).score == 0.0
    assert "more than 10" in v("x" * 11, P).details["reason"]
    assert LengthBounds(None, None)("", P).score == 1.0
    with pytest.raises(ValueError, match="must not exceed"):
        LengthBounds(5, 2)
    check_verifier(
        LengthBounds(1, 50),
        P,
        positives=["a fine answer"],
        negatives=["x" * 51],
        degenerate=False,
        context_invariant=False,
    )
