"""The Countdown rule: an arithmetic expression over the given numbers that hits the target.

The expression is parsed with :mod:`ast` and evaluated exactly with
:class:`fractions.Fraction`; only integer literals, ``+ - * /`` and parentheses
are allowed, so no user text is ever executed and no power tower can be built.
"""

from __future__ import annotations

import ast
from collections import Counter
from fractions import Fraction

from rlvr.types import Problem, Verdict
from rlvr.verifiers.extract import answer_tags, boxed_contents

__all__ = ["CountdownVerifier", "evaluate"]

_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b}
_LATEX = {"\\times": "*", "\\cdot": "*", "\\div": "/", "×": "*", "÷": "/", "−": "-", "\\left": "", "\\right": ""}
MAX_EXPRESSION_CHARS = 200


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """Value and integer literals of ``expression``; ValueError when it is not allowed."""
    for latex, op in _LATEX.items():
        expression = expression.replace(latex, op)
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg if isinstance(exc, SyntaxError) else exc}") from None
    literals: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div):
                if right == 0:
                    raise ValueError("division by zero")
                return left / right
            if type(node.op) in _OPS:
                return _OPS[type(node.op)](left, right)
        raise ValueError(f"only integers, + - * / and parentheses are allowed, found {type(node).__name__}")

    return walk(tree.body), literals


class CountdownVerifier:
    r"""1 when the answer evaluates to ``reference["target"]`` using the given numbers.

    Args:
        extract: ``"boxed"`` (last ``\boxed{}``) or ``"answer_tag"``.
        use_all: every number must be used exactly once (default, as in the
            TinyZero task); otherwise each at most once.

    The answer may end in ``= target``; the left side is what is evaluated. The
    reference is ``{"numbers": [...], "target": int}``.
    """

    name = "countdown"

    def __init__(self, extract: str = "boxed", use_all: bool = True) -> None:
        if extract not in ("boxed", "answer_tag"):
            raise ValueError(f"extract must be 'boxed' or 'answer_tag', got {extract!r}")
        self.extract = extract
        self.use_all = bool(use_all)

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Score ``completion`` against the numbers and target in ``problem.reference``.

        Returns:
            A correct verdict when the last extracted expression uses the allowed numbers
            and evaluates exactly to the target; incorrect otherwise, and unscorable when
            the reference is malformed.
        """
        ref = problem.reference
        try:
            numbers, target = Counter(int(n) for n in ref["numbers"]), Fraction(int(ref["target"]))
        except (TypeError, KeyError, ValueError):
            return Verdict.unscorable("the reference must be {'numbers': [...], 'target': int}")
        answers = boxed_contents(completion) if self.extract == "boxed" else answer_tags(completion)
        if not answers:
            return Verdict.incorrect(f"no answer found ({self.extract})")
        expression = answers[-1]
        if expression.count("=") == 1:
            expression, rhs = expression.split("=")
            if rhs.strip() != str(target):
                return Verdict.incorrect("the right-hand side is not the target", extracted=answers[-1][:200])
        try:
            value, used = evaluate(expression)
        except ValueError as exc:
            return Verdict.incorrect(str(exc), extracted=expression[:200])
        used_counts = Counter(used)
        if used_counts - numbers:
            return Verdict.incorrect(f"uses numbers not given: {sorted((used_counts - numbers).elements())}")
        if self.use_all and used_counts != numbers:
            return Verdict.incorrect(
                f"must use every number once; unused: {sorted((numbers - used_counts).elements())}"
            )
        if value != target:
            return Verdict.incorrect(f"evaluates to {value}, not {target}", extracted=expression[:200])
        return Verdict.correct(extracted=expression[:200])
