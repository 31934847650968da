"""``rlvr/Arithmetic-v0``: integer arithmetic problems, generated from a seed."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlvr.env import ProceduralEnv
from rlvr.rewards import Gate, WeightedSum
from rlvr.types import Problem, Verifier

__all__ = ["ArithmeticEnv", "boxed_answer_bad", "boxed_answer_reward"]

DEFAULT_PROMPT = "What is {expression}? Put the final answer in \\boxed{}."


def boxed_answer_reward(answer: Verifier, format_weight: float = 0.1) -> WeightedSum:
    """``(1 - w) * [answer correct, gated on exactly one non-empty \\boxed{}] + w * [that format]``.

    The gate means a right answer among several boxes earns nothing, and the
    format credit needs exactly one non-empty box, so the degenerate
    ``\\boxed{} \\boxed{} ...`` earns 0. Leaves: ``answer/format``,
    ``answer/correct`` and ``format``.
    """
    from rlvr.verifiers.format import BoxedOnce

    if not 0.0 <= format_weight <= 1.0:
        raise ValueError(f"format_weight must lie in [0, 1], got {format_weight}")
    return WeightedSum(
        {"answer": Gate(BoxedOnce(), answer, names=("format", "correct")), "format": BoxedOnce()},
        weights={"answer": 1.0 - format_weight, "format": format_weight},
    )


def boxed_answer_bad(gold: str, wrong: str) -> list[str]:
    """Completions :func:`boxed_answer_reward` must score 0: no answer, the right
    one unboxed, the right one sprayed among wrong ones, or hidden among empty boxes.
    (A single boxed wrong answer earns the format credit, so it is not listed.)"""
    return [
        "",
        f"The answer is {gold}.",
        f"\\boxed{{{wrong}}} is wrong, \\boxed{{{gold}}} is right",
        "\\boxed{} \\boxed{} \\boxed{}",
        f"\\boxed{{}} \\boxed{{{gold}}}",
    ]


class ArithmeticEnv(ProceduralEnv):
    """Evaluate an integer expression such as ``37 + 48`` or ``12 * 7 - 30``.

    Args:
        digits: operands have exactly this many digits (1 to 9; 1 includes 0).
        terms: number of operands (2 to 8).
        operations: the operators to draw from, a subset of ``"+-*"``; the usual
            precedence applies (``*`` before ``+``/``-``). Division is left out so
            every answer is an integer.
        prompt: template with ``{expression}`` (filled by plain replacement, so
            other braces such as ``\\boxed{}`` need no escaping).
        split, reward, ...: see :class:`rlvr.env.ProceduralEnv` / :class:`rlvr.env.BanditEnv`.

    Default reward: :func:`boxed_answer_reward` over the math verifier.
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
        from rlvr.verifiers.math_equivalence import MathVerifier

        return boxed_answer_reward(MathVerifier())

    def known_answers(self, problem: Problem) -> tuple[list[str], list[str]]:
        gold = int(problem.reference)
        good = [f"{problem.meta['expression']} = {gold}, so the answer is \\boxed{{{gold}}}."]
        return good, boxed_answer_bad(str(gold), str(gold + 1))

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
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
