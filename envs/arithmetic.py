"""``rlvr/Arithmetic-v0``: integer arithmetic problems, generated from a seed."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlvr.core import ProceduralEnv
from rlvr.types import Problem, Verifier
from rlvr.verifiers.format import boxed_answer_bad, boxed_answer_reward

__all__ = ["ArithmeticEnv"]

DEFAULT_PROMPT = "What is {expression}? Put the final answer in \\boxed{}."


class ArithmeticEnv(ProceduralEnv):
    r"""Evaluate an integer expression such as ``37 + 48`` or ``12 * 7 - 30``.

    Args:
        digits: operands have exactly this many digits (1 to 9; 1 includes 0).
        terms: number of operands (2 to 8).
        operations: the operators to draw from, a subset of ``"+-*"``; the usual
            precedence applies (``*`` before ``+``/``-``). Division is left out so
            every answer is an integer.
        prompt: template with ``{expression}`` (filled by plain replacement, so
            other braces such as ``\boxed{}`` need no escaping).
        split, reward, ...: see :class:`rlvr.core.ProceduralEnv` / :class:`rlvr.core.BanditEnv`.

    Default reward: :func:`rlvr.verifiers.format.boxed_answer_reward` over the math verifier.
    """

    def __init__(
        self,
        digits: int = 2,
        terms: int = 2,
        operations: str = "+",
        prompt: str = DEFAULT_PROMPT,
        **kwargs: Any,
    ) -> None:
        if not (isinstance(digits, int) and 1 <= digits <= 9):
            raise ValueError(f"digits must be an integer from 1 to 9, got {digits!r}")
        if not (isinstance(terms, int) and 2 <= terms <= 8):
            raise ValueError(f"terms must be an integer from 2 to 8, got {terms!r}")
        if not operations or set(operations) - set("+-*"):
            raise ValueError(f"operations must be a non-empty subset of '+-*', got {operations!r}")
        if "{expression}" not in prompt:
            raise ValueError("prompt must contain '{expression}'")
        self.digits, self.terms, self.operations, self.prompt = digits, terms, "".join(sorted(set(operations))), prompt
        super().__init__(**kwargs)

    def default_reward(self) -> Verifier:
        """The boxed-answer reward over :class:`rlvr.verifiers.math_equivalence.MathVerifier`."""
        from rlvr.verifiers.math_equivalence import MathVerifier

        return boxed_answer_reward(MathVerifier())

    def system_prompt(self) -> str:
        r"""Two worked examples of the answer format, e.g. ``7 + 5 = \boxed{12}``, posed as this environment poses problems.

        Their operands have other digit counts than the environment's (one and
        three digits for two-digit problems), so neither is a problem of either split.
        On SmolLM2-135M-Instruct at temperature 0.5 they raise the share of boxed
        answers to two-digit sums from 0.5% to about half, and of right ones
        from 0 to about 3% (docs/training.md).
        """
        lines = ["Examples."]
        for digits in [d for d in (1, 2, 3) if d != self.digits][:2]:
            operands = _EXAMPLE_OPERANDS[digits][: self.terms]
            ops = [self.operations[i % len(self.operations)] for i in range(self.terms - 1)]
            expression = " ".join([str(operands[0])] + [f"{op} {x}" for op, x in zip(ops, operands[1:], strict=True)])
            lines.append(f"User: {self.prompt.replace('{expression}', expression)}")
            lines.append(f"Assistant: {expression} = \\boxed{{{evaluate(operands, ops)}}}")
        return "\n".join(lines)

    def known_answers(self, problem: Problem) -> tuple[list[str], list[str]]:
        """A worked, boxed right answer, and the boxed-answer reward's must-score-0 completions."""
        gold = int(problem.reference)
        good = [f"{problem.meta['expression']} = {gold}, so the answer is \\boxed{{{gold}}}."]
        return good, boxed_answer_bad(str(gold), str(gold + 1))

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        """Draw operands and operators from ``rng``; the reference is the expression's exact value."""
        low = 0 if self.digits == 1 else 10 ** (self.digits - 1)
        operands = [int(x) for x in rng.integers(low, 10**self.digits, size=self.terms)]
        ops = [str(o) for o in rng.choice(list(self.operations), size=self.terms - 1)]
        expression = " ".join([str(operands[0])] + [f"{op} {x}" for op, x in zip(ops, operands[1:], strict=True)])
        return Problem(
            id=problem_id,
            prompt=self.prompt.replace("{expression}", expression),
            reference=str(evaluate(operands, ops)),
            meta={"expression": expression, "digits": self.digits, "terms": self.terms},
        )


# The example problems' operands, by digit count: fixed, so the suggested system prompt is too.
_EXAMPLE_OPERANDS = {
    1: [7, 5, 8, 6, 9, 4, 3, 2],
    2: [47, 38, 26, 59, 71, 83, 64, 92],
    3: [125, 237, 318, 462, 509, 674, 781, 853],
}


def evaluate(operands: list[int], ops: list[str]) -> int:
    """Exact value with ``*`` binding tighter than ``+`` and ``-``."""
    total, sign, product = 0, 1, operands[0]
    for op, x in zip(ops, operands[1:], strict=True):
        if op == "*":
            product *= x
        else:
            total += sign * product
            sign, product = (1 if op == "+" else -1), x
    return total + sign * product
