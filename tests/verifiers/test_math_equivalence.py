import threading
import time

import pytest

from rlvr import Problem, Status
from rlvr.testing import check_verifier
from rlvr.verifiers.math_equivalence import MathVerifier


def problem(reference):
    return Problem(id="m", prompt="q", reference=reference)


@pytest.mark.parametrize(
    "gold, answer, correct",
    [
        ("85", "85", True),
        ("85", "85.0", True),
        ("0.5", r"\frac{1}{2}", True),
        (r"\frac{1}{2}", "1/2", True),
        ("1,000", "1000", True),
        ("-12", "-12", True),
        ("x=2", "2", True),
        ("85", "86", False),
        ("-12", "12", False),
        (r"\frac{1}{3}", "0.33", False),
    ],
)
def test_equivalence(gold, answer, correct):
    verdict = MathVerifier()(f"Reasoning... \\boxed{{{answer}}}", problem(gold))
    assert (verdict.status is Status.CORRECT) is correct, verdict


def test_no_fallback_to_the_whole_text():
    verdict = MathVerifier()("The answer is 85", problem("85"))
    assert verdict.score == 0.0 and "no answer found" in verdict.details["reason"]


def test_answer_spraying_scores_zero_but_repeats_pass():
    assert MathVerifier()(r"\boxed{84} \boxed{85}", problem("85")).score == 0.0
    assert MathVerifier()(r"\boxed{85} and again \boxed{85}", problem("85")).score == 1.0
    assert MathVerifier(reject_multiple=False)(r"\boxed{84} \boxed{85}", problem("85")).score == 1.0


def test_answer_tag_extraction_and_limits():
    assert MathVerifier(extract="answer_tag")("<answer>85</answer>", problem("85")).score == 1.0
    long = MathVerifier(max_answer_chars=5)(r"\boxed{1+1+1+1}", problem("4"))
    assert long.score == 0.0 and "longer than" in long.details["reason"]
    with pytest.raises(ValueError, match="extract"):
        MathVerifier(extract="anywhere")


def test_unparsable_reference_is_unscorable_never_rewarded():
    for reference in [None, {"a": 1}, "\\frac{"]:
        verdict = MathVerifier()(r"\boxed{1}", problem(reference))
        assert verdict.status is Status.UNSCORABLE and verdict.score == 0.0, (reference, verdict)


def test_works_off_the_main_thread():
    results = []
    thread = threading.Thread(target=lambda: results.append(MathVerifier()(r"\boxed{\frac{2}{4}}", problem("0.5"))))
    thread.start()
    thread.join(30)
    assert results and results[0].score == 1.0


def test_deep_nesting_is_rejected_without_parsing():
    verdict = MathVerifier()("\\boxed{" + "\\frac{1}{" * 20 + "2" + "}" * 20 + "}", problem("1"))
    assert verdict.score == 0.0 and "nest deeper" in verdict.details["reason"]


def test_math_contract():
    # A 1 s bound keeps hostile power towers cheap here (the verifier runs them in killable workers).
    check_verifier(
        MathVerifier(timeout_seconds=1),
        problem("128"),
        positives=[r"83 + 45 = 128, so \boxed{128}", r"\boxed{128.0}"],
        negatives=[r"\boxed{127}", "128"],
        sprayed_answer="128",
        examples=25,
        max_seconds=5.0,
    )


@pytest.mark.parametrize(
    "gold, answer, correct",
    [
        ("104", "11 + 93", False),  # the exploit GRPO found on SmolLM2-135M (run B, step 40)
        ("104", "2 \\cdot 52", False),
        ("104", "104", True),
        ("104", "104.0", True),
        ("104", "104 \\text{ apples}", True),
        ("28\\%", "28 \\text{percent}", True),
        ("1000", "1 000", True),
        ("11", "x = 11", True),
        ("2", "\\sqrt{4}", False),
        ("0.5", "\\frac{1}{2}", True),
        ("0.5", "1/2", True),
        ("1000", "1,000", True),
        ("2\\sqrt{3}", "\\sqrt{12}", True),  # a non-numeric reference: any equivalent form
        ("x=2", "2", True),
    ],
)
def test_a_numeric_reference_needs_a_number_not_an_expression(gold, answer, correct):
    verdict = MathVerifier()(f"\\boxed{{{answer}}}", problem(gold))
    assert (verdict.status is Status.CORRECT) is correct, verdict
    if not correct:
        assert "not one" in verdict.details["reason"]
    assert MathVerifier(literal_numbers=False)(f"\\boxed{{{answer}}}", problem(gold)).status is Status.CORRECT


HOSTILE = {
    "power tower": "\\boxed{9^{9^{9^{9^{9}}}}}",
    "huge exponent": "\\boxed{10^{10^{10}}}",
    "factorial tower": "\\boxed{(10^{10})!}",
    "deep nesting": "\\boxed{" + "\\frac{1}{" * 200 + "2" + "}" * 200 + "}",
    "megabyte response": "so " * 350_000 + "\\boxed{1" + "0" * 900 + "}",
    "megabyte of digits": "9" * 1_000_000,
    "integral": "\\boxed{\\int_0^{\\infty} e^{-x^{10^{6}}} \\sin(x^{x^{x}}) dx}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_answers_return_zero_within_the_bound(name):
    verifier = MathVerifier(timeout_seconds=1.0)
    start = time.monotonic()
    verdict = verifier(HOSTILE[name], problem("104"))
    assert verdict.score == 0.0 and verdict.status is Status.INCORRECT, verdict
    assert time.monotonic() - start < 1.0 + 1.0


def test_the_pool_keeps_serving_after_killed_workers():
    verifier = MathVerifier(timeout_seconds=1.0, literal_numbers=False)
    texts = [HOSTILE["power tower"], "\\boxed{104}", HOSTILE["integral"], "\\boxed{105}", "\\boxed{2 \\cdot 52}"]
    verdicts = verifier.batch(texts, [problem("104")] * len(texts))
    assert [v.score for v in verdicts] == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert verifier(r"\boxed{104}", problem("104")).score == 1.0


def test_safe_under_threads():
    from concurrent.futures import ThreadPoolExecutor

    verifier = MathVerifier()
    cases = [(f"\\boxed{{{n}}}", problem(str(n if n % 2 else n + 1))) for n in range(24)]
    with ThreadPoolExecutor(4) as pool:
        scores = list(pool.map(lambda c: verifier(*c).score, cases))
    assert scores == [float(n % 2 == 1) for n in range(24)]


def test_inside_a_daemonic_process_pool_it_falls_back_to_inline():
    import multiprocessing as mp

    from toymodels import math_score_in_child  # an importable module: the pool's child must load it

    with mp.get_context("forkserver").Pool(1) as pool:
        assert pool.apply_async(math_score_in_child, ("\\boxed{\\frac{1}{2}}", "0.5")).get(timeout=120) == 1.0


def test_extraction_rules_and_multipart_references():
    rules = ("boxed", "gsm8k", "answer_is", "last_line")
    v = MathVerifier(extract=rules)
    assert v("so #### 1,234", problem("1234")).score == 1.0
    assert v("Final Answer: The final answer is $10,455$. I hope it is correct.", problem("10455")).score == 1.0
    assert v("We add them.\n42", problem("42")).score == 1.0
    assert v("The largest $n$ is 34.", problem("34")).score == 1.0
    assert MathVerifier()(r"\boxed{(2, 2)} and \boxed{(6, 2)}", problem("(2, 2), (6, 2)")).score == 1.0
    assert MathVerifier()(r"\boxed{1}, \boxed{2}, \boxed{3}", problem("\\{1,2,3\\}")).score == 1.0
    assert MathVerifier()(r"\boxed{1} \boxed{2}", problem("2")).score == 0.0  # a one-part reference: spraying
    assert MathVerifier()("the answer is B, not A", problem("B")).score == 1.0
    assert MathVerifier()("\\mathrm{E}*2", problem("E")).score == 0.0
    with pytest.raises(ValueError, match="extract must name rules"):
        MathVerifier(extract=("anywhere",))
