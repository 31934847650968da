"""Math answer equivalence on ``math-verify`` (which parses LaTeX into ``sympy``).

This is the first version; the brief of issue 3 (killable workers with hard time
bounds, richer extraction, a status for timeouts) builds on it.

Limits, stated plainly:
* ``math-verify`` bounds its own work with ``signal.alarm``, which only works on
  the main thread. Off the main thread this verifier runs without a time bound;
  answers longer than ``max_answer_chars`` are rejected up front to keep the
  worst case small.
"""

from __future__ import annotations

import threading

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from rlvr.types import Problem, Verdict
from rlvr.verifiers.extract import answer_tags, boxed_contents

__all__ = ["MathVerifier"]


class MathVerifier:
    """1 when the extracted answer is mathematically equivalent to the reference.

    Args:
        extract: ``"boxed"`` (default: the ``\\boxed{}`` contents) or
            ``"answer_tag"`` (``<answer>...</answer>``). A completion without one is
            incorrect: the verifier never searches the rest of the text for a number,
            so an answer that merely appears somewhere does not win by accident.
        reject_multiple: several *different* extracted answers in one completion
            score 0 (answer spraying must not be rewarded). Identical repeats pass.
        timeout_seconds: ``math-verify``'s time bound for parsing and comparing
            (main thread only; see the module docstring).
        max_answer_chars: longer extracted answers are incorrect without parsing.
        max_nesting: answers whose brackets nest deeper than this are incorrect
            without parsing (real answers rarely pass 4; towers of ``\\frac`` or
            parentheses only cost parse time).
    """

    name = "math"

    def __init__(
        self,
        extract: str = "boxed",
        reject_multiple: bool = True,
        timeout_seconds: int = 5,
        max_answer_chars: int = 1000,
        max_nesting: int = 12,
    ) -> None:
        if extract not in ("boxed", "answer_tag"):
            raise ValueError(f"extract must be 'boxed' or 'answer_tag', got {extract!r}")
        self.extract = extract
        self.reject_multiple = bool(reject_multiple)
        self.timeout_seconds = int(timeout_seconds)
        self.max_answer_chars = int(max_answer_chars)
        self.max_nesting = int(max_nesting)

    def _timeout(self) -> int | None:
        return self.timeout_seconds if threading.current_thread() is threading.main_thread() else None

    def _parse(self, text: str) -> list:
        config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
        return parse(text, extraction_config=config, parsing_timeout=self._timeout())

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        gold = self._parse(f"${problem.reference}$") if isinstance(problem.reference, str | int | float) else []
        if not any(not isinstance(g, str) for g in gold):  # only the raw string came back: no math in it
            return Verdict.unscorable(f"cannot parse the reference {str(problem.reference)[:200]!r}")
        answers = boxed_contents(completion) if self.extract == "boxed" else answer_tags(completion)
        if not answers:
            return Verdict.incorrect(f"no answer found ({self.extract})")
        distinct = list(dict.fromkeys(a.strip() for a in answers))
        if self.reject_multiple and len(distinct) > 1:
            return Verdict.incorrect(f"{len(distinct)} different answers given", answers=distinct[:8])
        answer = distinct[-1]
        if len(answer) > self.max_answer_chars:
            return Verdict.incorrect(f"answer longer than {self.max_answer_chars} characters")
        if not answer:
            return Verdict.incorrect("empty answer")
        if _nesting(answer) > self.max_nesting:
            return Verdict.incorrect(f"brackets nest deeper than {self.max_nesting}", extracted=answer[:200])
        pred = self._parse(f"${answer}$")
        if not pred:
            return Verdict.incorrect("cannot parse the answer", extracted=answer[:200])
        if verify(gold, pred, timeout_seconds=self._timeout()):
            return Verdict.correct(extracted=answer[:200], parsed=str(pred[-1])[:200])
        return Verdict.incorrect(
            "not equivalent", extracted=answer[:200], parsed=str(pred[-1])[:200], gold=str(gold[-1])
        )


def _nesting(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "({[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")}]":
            depth = max(depth - 1, 0)
    return deepest
