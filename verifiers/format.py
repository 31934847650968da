r"""Format verifiers: does the completion have the shape the task asks for?

Each scores 1 when the rule holds and 0 otherwise, and says which rule failed in
``details["reason"]``. They are deliberately strict, because a lenient format
reward is the first thing a policy games: a probe on SmolLM2-135M rewarded for
"a ``\boxed{}`` is present" collapsed within 16 GRPO steps into
``\boxed{} \boxed{} \boxed{} ...``. :class:`BoxedOnce` gives that no credit.
"""

from __future__ import annotations

import re

from rlvr.rewards import Gate, WeightedSum
from rlvr.types import Problem, Verdict, Verifier
from rlvr.verifiers.extract import boxed_contents

__all__ = ["BoxedOnce", "LengthBounds", "RegexFormat", "ThinkAnswer", "boxed_answer_bad", "boxed_answer_reward"]


class BoxedOnce:
    r"""Exactly one ``\boxed{...}`` whose content is not blank."""

    name = "boxed-once"

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        r"""Check that ``completion`` holds exactly one non-empty ``\boxed{}``.

        Returns:
            A correct verdict with the box's content in ``details["boxed"]``, or an
            incorrect one naming the failure (unbalanced braces, no box, several
            boxes, an empty box).
        """
        boxes = boxed_contents(completion)
        if boxes is None:
            return Verdict.incorrect("unbalanced braces in \\boxed{")
        if not boxes:
            return Verdict.incorrect("no \\boxed{}")
        if len(boxes) > 1:
            return Verdict.incorrect(f"{len(boxes)} \\boxed{{}} found; exactly one is required", boxes=boxes[:8])
        if not boxes[0].strip():
            return Verdict.incorrect("empty \\boxed{}")
        return Verdict.correct(boxed=boxes[0])


class ThinkAnswer:
    """``<think>reasoning</think>`` then the answer, both non-empty, nothing else.

    With ``answer_tag=True`` (default) the answer must be ``<answer>...</answer>``
    and the whole completion is exactly ``<think>…</think><answer>…</answer>``
    (surrounding whitespace allowed), as in DeepSeek-R1's format reward (ref 003).
    With ``answer_tag=False`` any non-empty text may follow ``</think>``.
    Each tag must appear exactly once.
    """

    name = "think-answer"
    _TAGS = ("<think>", "</think>", "<answer>", "</answer>")

    def __init__(self, answer_tag: bool = True) -> None:
        self.answer_tag = bool(answer_tag)

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Check that ``completion`` is a non-empty think block followed by a non-empty answer.

        Returns:
            A correct verdict with the stripped answer in ``details["answer"]``, or an
            incorrect one naming the rule that failed.
        """
        text = completion.strip()
        tags = self._TAGS if self.answer_tag else self._TAGS[:2]
        for tag in tags:
            count = text.count(tag)
            if count != 1:
                return Verdict.incorrect(f"{tag} appears {count} times; exactly once is required")
        if not text.startswith("<think>"):
            return Verdict.incorrect("the completion must start with <think>")
        thought, _, rest = text[len("<think>") :].partition("</think>")
        if not thought.strip():
            return Verdict.incorrect("empty <think></think>")
        rest = rest.strip()
        if self.answer_tag:
            if not (rest.startswith("<answer>") and rest.endswith("</answer>")):
                return Verdict.incorrect("after </think> must come exactly <answer>...</answer>")
            answer = rest[len("<answer>") : -len("</answer>")]
        else:
            answer = rest
        if not answer.strip():
            return Verdict.incorrect("empty answer")
        return Verdict.correct(answer=answer.strip())


class RegexFormat:
    """The completion matches ``pattern`` (``mode``: ``fullmatch`` or ``search``).

    Limits: Python's ``re`` has no timeout, so a pattern with catastrophic
    backtracking can be slow on hostile input; keep patterns simple (no nested
    quantifiers) or bound the completion length.
    """

    name = "regex"

    def __init__(self, pattern: str, mode: str = "fullmatch", ignore_case: bool = False, dotall: bool = True) -> None:
        if mode not in ("fullmatch", "search"):
            raise ValueError(f"mode must be 'fullmatch' or 'search', got {mode!r}")
        flags = (re.IGNORECASE if ignore_case else 0) | (re.DOTALL if dotall else 0)
        try:
            self.regex = re.compile(pattern, flags)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        self.mode = mode

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Match ``completion`` against the pattern with ``fullmatch`` or ``search``.

        Returns:
            A correct verdict with the matched text (first 200 characters) in
            ``details["match"]``, or an incorrect one when there is no match.
        """
        match = getattr(self.regex, self.mode)(completion)
        if match is None:
            return Verdict.incorrect(f"no {self.mode} of /{self.regex.pattern}/")
        return Verdict.correct(match=match.group(0)[:200])


class LengthBounds:
    """The completion's length lies in ``[min_chars, max_chars]``.

    The length is counted in characters after stripping surrounding whitespace;
    either bound may be None. Characters, not tokens: a verifier does not know the
    policy's tokenizer.
    """

    name = "length"

    def __init__(self, min_chars: int | None = 1, max_chars: int | None = None) -> None:
        if min_chars is not None and max_chars is not None and min_chars > max_chars:
            raise ValueError(f"min_chars ({min_chars}) must not exceed max_chars ({max_chars})")
        if (min_chars is not None and min_chars < 0) or (max_chars is not None and max_chars < 0):
            raise ValueError("length bounds must be >= 0")
        self.min_chars, self.max_chars = min_chars, max_chars

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Check the stripped length of ``completion`` against the bounds.

        Returns:
            A verdict, correct when the length is within the bounds, with the length
            in ``details["chars"]``.
        """
        n = len(completion.strip())
        if self.min_chars is not None and n < self.min_chars:
            return Verdict.incorrect(f"{n} characters, fewer than {self.min_chars}", chars=n)
        if self.max_chars is not None and n > self.max_chars:
            return Verdict.incorrect(f"{n} characters, more than {self.max_chars}", chars=n)
        return Verdict.correct(chars=n)


def boxed_answer_reward(answer: Verifier, format_weight: float = 0.1) -> WeightedSum:
    r"""``(1 - w) * [answer correct, gated on exactly one non-empty \boxed{}] + w * [that format]``.

    The gate means a right answer among several boxes earns nothing, and the
    format credit needs exactly one non-empty box, so the degenerate
    ``\boxed{} \boxed{} ...`` earns 0. Leaves: ``answer/format``,
    ``answer/correct`` and ``format``.
    """
    if not 0.0 <= format_weight <= 1.0:
        raise ValueError(f"format_weight must lie in [0, 1], got {format_weight}")
    return WeightedSum(
        {"answer": Gate(BoxedOnce(), answer, names=("format", "correct")), "format": BoxedOnce()},
        weights={"answer": 1.0 - format_weight, "format": format_weight},
    )


def boxed_answer_bad(gold: str, wrong: str) -> list[str]:
    """Completions :func:`boxed_answer_reward` must score 0.

    They are: no answer, the right one unboxed, the right one sprayed among wrong
    ones, or hidden among empty boxes. (A single boxed wrong answer earns the format
    credit, so it is not listed.)
    """
    return [
        "",
        f"The answer is {gold}.",
        f"\\boxed{{{wrong}}} is wrong, \\boxed{{{gold}}} is right",
        "\\boxed{} \\boxed{} \\boxed{}",
        f"\\boxed{{}} \\boxed{{{gold}}}",
    ]
