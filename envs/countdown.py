"""``rlvr/Countdown-v0``: reach a target number from given numbers with + - * /."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlvr.core import ProceduralEnv
from rlvr.types import Problem, Verifier
from rlvr.verifiers.format import boxed_answer_bad, boxed_answer_reward

__all__ = ["CountdownEnv"]

DEFAULT_PROMPT = (
    "Using the numbers {numbers}, write an arithmetic expression that equals {target}. "
    "Use each number exactly once, with + - * / and parentheses. "
    "Put the expression in \\boxed{}."
)


class CountdownEnv(ProceduralEnv):
    """The Countdown numbers game (as in TinyZero), always solvable.

    The generator combines the drawn numbers in a random order with random
    operations, keeping every intermediate result a positive integer, and uses the
    result as the target; that expression is kept as ``reference["solution"]``.

    Args:
        count: how many numbers (2 to 6).
        max_number: numbers are drawn from 1 to ``max_number``.
        max_target: targets above this are redrawn (at most 100 tries, then the
            smallest candidate found is used).
    """

    def __init__(
        self, count: int = 4, max_number: int = 25, max_target: int = 200, prompt: str = DEFAULT_PROMPT, **kwargs: Any
    ) -> None:
        if not (isinstance(count, int) and 2 <= count <= 6):
            raise ValueError(f"count must be an integer from 2 to 6, got {count!r}")
        if not (isinstance(max_number, int) and max_number >= 2):
            raise ValueError(f"max_number must be an integer >= 2, got {max_number!r}")
        if not (isinstance(max_target, int) and max_target >= 1):
            raise ValueError(f"max_target must be a positive integer, got {max_target!r}")
        for field in ("{numbers}", "{target}"):
            if field not in prompt:
                raise ValueError(f"prompt must contain {field!r}")
        self.count, self.max_number, self.max_target, self.prompt = count, max_number, max_target, prompt
        super().__init__(**kwargs)

    def default_reward(self) -> Verifier:
        """The boxed-answer reward over :class:`rlvr.verifiers.countdown.CountdownVerifier`."""
        from rlvr.verifiers.countdown import CountdownVerifier

        return boxed_answer_reward(CountdownVerifier())

    def known_answers(self, problem: Problem) -> tuple[list[str], list[str]]:
        """The generator's solution, boxed, and the boxed-answer reward's must-score-0 completions."""
        solution = problem.reference["solution"]
        return [f"\\boxed{{{solution}}}"], boxed_answer_bad(solution, f"{solution} + 1")

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        """Draw ``count`` numbers and a reachable target (with its solution) from ``rng``."""
        numbers = [int(x) for x in rng.integers(1, self.max_number + 1, size=self.count)]
        best: tuple[int, str] | None = None
        for _ in range(100):
            target, solution = _combine(rng, numbers)
            if best is None or target < best[0]:
                best = (target, solution)
            if target <= self.max_target:
                break
        target, solution = best
        prompt = self.prompt.replace("{numbers}", str(numbers)).replace("{target}", str(target))
        return Problem(
            id=problem_id,
            prompt=prompt,
            reference={"numbers": numbers, "target": target, "solution": solution},
            meta={"count": self.count},
        )


def _combine(rng: np.random.Generator, numbers: list[int]) -> tuple[int, str]:
    order = [int(i) for i in rng.permutation(len(numbers))]
    value, text = numbers[order[0]], str(numbers[order[0]])
    for i in order[1:]:
        x = numbers[i]
        candidates = [("+", value + x), ("*", value * x)]
        if value - x > 0:
            candidates.append(("-", value - x))
        if x > 1 and value % x == 0:
            candidates.append(("/", value // x))
        op, value = candidates[int(rng.integers(len(candidates)))]
        text = f"({text} {op} {x})"
    return value, text[1:-1] if text.startswith("(") else text
