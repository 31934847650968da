r"""Property tests for verifiers: the contract every reward function must keep.

Needs ``hypothesis`` (``pip install rlvr[dev]``). Test a verifier in a few lines::

    from rlvr import Problem
    from rlvr.testing import check_verifier

    def test_my_verifier():
        problem = Problem(id="p", prompt="2+2?", reference="4")
        check_verifier(MyVerifier(), problem, positives=["\\boxed{4}"], negatives=["\\boxed{5}"])

:func:`check_verifier` asserts that known-good completions score 1 and known-bad
ones 0, then throws arbitrary Unicode, huge, empty, adversarial-LaTeX and
degenerate (the shapes a policy finds when it games a reward) completions at the
verifier and checks that it never raises, returns a Verdict in range, is
deterministic, stays within a time bound, and gives degenerate output no credit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlvr.rewards import verify
from rlvr.types import Problem, Status, Verdict, Verifier

__all__ = [
    "DEGENERATE_COMPLETIONS",
    "adversarial_latex",
    "check_code_verifier",
    "check_verifier",
    "completions",
    "hostile_completions",
    "sprayed",
]

# Output a policy produces when it games a lenient reward: nothing, empty or
# repeated boxes and tags, a bare tag skeleton. None of it deserves credit.
DEGENERATE_COMPLETIONS: tuple[str, ...] = (
    "",
    " ",
    "\n\n\n",
    "\\boxed{}",
    "\\boxed{} \\boxed{} \\boxed{} \\boxed{}",
    "\\boxed{ }",
    "\\boxed{",
    "}}}}{{{{",
    "<think></think><answer></answer>",
    "<think></think>",
    "<answer></answer>",
    "$$",
)


def adversarial_latex() -> st.SearchStrategy[str]:
    """LaTeX that is expensive or confusing to parse: towers, deep nesting, junk."""
    depth = st.integers(1, 60)
    return st.one_of(
        depth.map(lambda n: "\\boxed{" + "10^{" * n + "10" + "}" * n + "}"),
        depth.map(lambda n: "\\boxed{" + "\\frac{1}{" * n + "2" + "}" * n + "}"),
        depth.map(lambda n: "\\boxed{" + "(" * n + "1" + ")" * n + "}"),
        st.just("\\boxed{9^{9^{9^{9}}}}"),
        st.just("\\boxed{\\int_0^\\infty e^{-x^2} dx}"),
        st.just("\\boxed{\\left( \\right.}"),
        st.just("\\boxed{\\\\\\\\\\{\\}}"),
        st.text(alphabet="\\{}^_$()[]0123456789xfracboxed", max_size=200),
    )


def sprayed(answer: str) -> st.SearchStrategy[str]:
    """Completions that give ``answer`` among other candidates (answer spraying)."""
    others = st.lists(st.integers(-1000, 1000).map(str), min_size=1, max_size=6)
    others = others.filter(lambda xs: any(x != answer for x in xs))
    return st.builds(
        lambda xs, i: " ".join(f"\\boxed{{{x}}}" for x in [*xs[:i], answer, *xs[i:]]), others, st.integers(0, 6)
    )


def completions(max_size: int = 2_000) -> st.SearchStrategy[str]:
    """Arbitrary completions: Unicode text, degenerate shapes, adversarial LaTeX, huge text."""
    return st.one_of(
        st.text(max_size=max_size),
        st.sampled_from(DEGENERATE_COMPLETIONS),
        adversarial_latex(),
        st.integers(10_000, 200_000).map(lambda n: "9" * n),
        st.builds(lambda t, a: t + "\\boxed{" + a + "}", st.text(max_size=200), st.text(max_size=50)),
    )


def check_verifier(
    verifier: Verifier,
    problem: Problem,
    *,
    positives: Sequence[str] = (),
    negatives: Sequence[str] = (),
    score_range: tuple[float, float] = (0.0, 1.0),
    max_seconds: float = 10.0,
    degenerate: bool = True,
    whitespace_invariant: bool = True,
    context_invariant: bool = True,
    sprayed_answer: str | None = None,
    examples: int = 60,
) -> None:
    """Assert the verifier contract; raises AssertionError naming the failing input.

    Args:
        verifier: the verifier under test.
        problem: the problem every completion is scored against.
        positives: completions that must score exactly 1 (CORRECT).
        negatives: completions that must score exactly 0.
        score_range: the bounds every score must lie in (widen it for a reward model).
        max_seconds: time bound for any single verification.
        degenerate: :data:`DEGENERATE_COMPLETIONS` must score 0 (turn off only for a
            verifier that rewards such text on purpose).
        whitespace_invariant: surrounding a positive or negative with whitespace
            must not change its score.
        context_invariant: reasoning text before a positive or negative (outside
            the extracted answer) must not change its score; turn off for verifiers
            that judge the whole text (a full-text exact match, a length bound).
        sprayed_answer: if given, completions that box this (right) answer among
            other candidates must score 0.
        examples: how many random completions hypothesis tries.

    Raises:
        AssertionError: a check failed; the message names the failing input.
        VerifierError: the verifier raised on some completion.
    """
    low, high = score_range

    def run(completion: str) -> Verdict:
        start = time.perf_counter()
        verdict = verify(verifier, completion, problem)  # raises VerifierError on a crash
        elapsed = time.perf_counter() - start
        assert isinstance(verdict, Verdict), f"returned {type(verdict).__name__}, not a Verdict"
        assert elapsed <= max_seconds, f"took {elapsed:.2f}s > {max_seconds}s on {completion[:80]!r}"
        assert low <= verdict.score <= high, f"score {verdict.score} outside [{low}, {high}] on {completion[:80]!r}"
        assert isinstance(verdict.status, Status)
        return verdict

    for text in positives:
        verdict = run(text)
        assert verdict.score == 1.0 and verdict.status is Status.CORRECT, f"positive {text[:80]!r} got {verdict}"
    for text in negatives:
        verdict = run(text)
        assert verdict.score == 0.0, f"negative {text[:80]!r} got {verdict}"
    if whitespace_invariant:
        for text in [*positives, *negatives]:
            assert run(f"  \n{text}\n\t ").score == run(text).score, (
                f"surrounding whitespace changed the score of {text[:80]!r}"
            )
    if context_invariant:
        for text in [*positives, *negatives]:
            framed = "Let me think about this step by step. First, I read the question carefully.\n\n" + text
            assert run(framed).score == run(text).score, f"text before the answer changed the score of {text[:80]!r}"
    if degenerate:
        for text in DEGENERATE_COMPLETIONS:
            verdict = run(text)
            assert verdict.score <= max(low, 0.0), f"degenerate completion {text!r} earned {verdict.score}"

    @settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
    )
    @given(completions())
    def arbitrary(completion: str) -> None:
        first, second = run(completion), run(completion)
        assert (first.score, first.status) == (second.score, second.status), f"not deterministic on {completion[:80]!r}"

    arbitrary()

    if sprayed_answer is not None:

        @settings(max_examples=max(10, examples // 4), deadline=None)
        @given(sprayed(sprayed_answer))
        def spraying(completion: str) -> None:
            assert run(completion).score <= max(low, 0.0), f"answer spraying earned credit: {completion[:120]!r}"

        spraying()


def hostile_completions(**canaries: Any) -> st.SearchStrategy[str]:
    """Completions carrying hostile programs for ``add(a, b)`` (see :mod:`rlvr.execution.redteam`), fenced or bare.

    Keyword arguments go to :func:`rlvr.execution.redteam.hostile_programs` (the
    function, its right value, the secret and canaries to use).
    """
    from rlvr.execution.redteam import HOSTILE_COMPLETIONS, hostile_programs

    programs = [p for group in hostile_programs(**canaries).values() for p in group.values()]
    return st.one_of(
        st.sampled_from(programs).map(lambda p: f"```python\n{p}```"),
        st.sampled_from(programs),
        st.sampled_from(sorted(HOSTILE_COMPLETIONS.values(), key=len)),
    )


def check_code_verifier(
    verifier: Verifier,
    problem: Problem,
    *,
    right: str,
    wall_seconds: float,
    classes: Sequence[str] = ("forge", "read", "reach", "escape"),
    **canaries: Any,
) -> dict[str, Verdict]:
    """Assert that no hostile program scores above 0 or turns into ERROR, and that ``right`` passes.

    ``problem`` must pose the function the programs define (``add(a, b)`` unless
    ``function``/``params``/``body`` say otherwise in ``canaries``, which go to
    :func:`rlvr.execution.redteam.hostile_programs`). Every verdict must come
    within ``wall_seconds`` + 1 s of the verifier's batch time per program, on
    average. Checking what escaped (canary files, sockets, IPC objects, keys)
    is the caller's: only it knows where it listens.

    Returns:
        The verdict on each hostile program and completion, by name.

    Raises:
        AssertionError: a hostile program scored, or became ERROR, or ``right`` did not pass.
    """
    from rlvr.execution.redteam import HOSTILE_COMPLETIONS, hostile_programs

    programs = hostile_programs(**canaries)
    named = {name: text for kind in classes for name, text in programs[kind].items()}
    named.update(HOSTILE_COMPLETIONS)
    texts = list(named.values())
    batch = getattr(verifier, "batch", None)
    start = time.perf_counter()
    verdicts = batch(texts, [problem] * len(texts)) if batch else [verify(verifier, t, problem) for t in texts]
    elapsed = time.perf_counter() - start
    results = dict(zip(named, verdicts, strict=True))
    for name, verdict in results.items():
        assert verdict.status is not Status.ERROR, f"hostile program {name!r} turned into ERROR: {verdict}"
        assert verdict.score == 0.0, f"hostile program {name!r} scored {verdict.score}: {verdict}"
    assert elapsed <= len(texts) * (wall_seconds + 1.0), f"{len(texts)} hostile programs took {elapsed:.1f}s"
    good = verify(verifier, right, problem)
    assert good.status is Status.CORRECT, f"the right program did not pass: {good}"
    return results
