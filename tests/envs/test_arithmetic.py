import ast
import operator

import numpy as np
import pytest

import rlvr
from rlvr.envs.arithmetic import ArithmeticEnv, evaluate

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def python_value(expression: str) -> int:
    """Independent oracle: Python's own parser and precedence."""

    def walk(node):
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        return node.value

    return walk(ast.parse(expression, mode="eval").body)


@pytest.mark.parametrize("digits, terms, operations", [(1, 2, "+"), (2, 2, "+"), (3, 4, "+-*"), (2, 5, "*-")])
def test_references_match_an_independent_oracle(digits, terms, operations):
    env = ArithmeticEnv(digits=digits, terms=terms, operations=operations)
    rng = np.random.default_rng(0)
    for _ in range(100):
        problem = env.draw_problem(rng)
        expression = problem.meta["expression"]
        numbers = expression.replace("+", " ").replace("-", " ").replace("*", " ").split()
        assert len(numbers) == terms
        assert all(len(n) == digits for n in numbers if digits > 1)
        assert set(expression) - set("0123456789 ") <= set(operations)
        assert problem.reference == str(python_value(expression))
        assert expression in problem.prompt and "\\boxed{}" in problem.prompt


def test_evaluate_precedence_hand_computed():
    assert evaluate([2, 3, 4], ["+", "*"]) == 14
    assert evaluate([2, 3, 4], ["*", "-"]) == 2
    assert evaluate([10, 3, 2, 5], ["-", "*", "+"]) == 9


def test_bad_knobs_are_rejected():
    for kwargs, match in [
        ({"digits": 0}, "digits"),
        ({"digits": 2.5}, "digits"),
        ({"terms": 1}, "terms"),
        ({"operations": "/"}, "operations"),
        ({"operations": ""}, "operations"),
        ({"prompt": "no placeholder"}, "expression"),
    ]:
        with pytest.raises(ValueError, match=match):
            rlvr.make("rlvr/Arithmetic-v0", **kwargs)


def test_custom_prompt_and_problem_ids_regenerate():
    env = rlvr.make("rlvr/Arithmetic-v0", prompt="Compute {expression}. Reply in \\boxed{}.").unwrapped
    obs, info = env.reset(seed=5)
    assert obs.startswith("Compute ") and obs.endswith("Reply in \\boxed{}.")
    assert env.problem_from_id(info["problem_id"]) == env.problem
