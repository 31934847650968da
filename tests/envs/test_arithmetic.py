import ast
import operator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=60, deadline=None)
@given(
    repeats=st.integers(2, 12),
    inner=st.sampled_from(["", " ", "{}", "\\,"]),
    sep=st.sampled_from([" ", "\n", "", " and "]),
    with_answer=st.booleans(),
)
def test_the_default_reward_gives_degenerate_boxes_no_credit(repeats, inner, sep, with_answer):
    """The probe's collapse (empty boxes, repeated) and its variants earn exactly 0.

    This holds even when the right answer is hidden among the repeats.
    """
    env = rlvr.make("rlvr/Arithmetic-v0")
    env.reset(seed=repeats)
    gold = env.unwrapped.problem.reference
    boxes = [f"\\boxed{{{inner}}}"] * repeats + ([f"\\boxed{{{gold}}}"] if with_answer else [])
    _, reward, *_ = env.step(sep.join(boxes))
    assert reward == 0.0


def test_the_probe_collapse_string_scores_zero_and_one_right_box_scores_one():
    env = rlvr.make("rlvr/Arithmetic-v0")
    env.reset(seed=0)
    assert env.step("\\boxed{} \\boxed{} \\boxed{} \\boxed{} \\boxed{} \\boxed{}")[1] == 0.0
    env.reset(seed=0)
    assert env.step(f"\\boxed{{{env.unwrapped.problem.reference}}}")[1] == 1.0


def test_boxing_the_question_earns_only_the_format_credit():
    env = rlvr.make("rlvr/Arithmetic-v0", terms=3, operations="+-*")
    for seed in range(10):
        env.reset(seed=seed)
        expression = env.unwrapped.problem.meta["expression"]
        _, reward, *_, info = env.step(f"\\boxed{{{expression}}}")
        assert reward == pytest.approx(0.1) and info["components"]["answer/correct"] == 0.0


@pytest.mark.parametrize(
    "digits, terms, operations", [(1, 2, "+"), (2, 2, "+"), (3, 2, "+"), (4, 3, "+-*"), (2, 5, "*-")]
)
def test_the_suggested_system_prompt_works_examples_that_are_right_and_in_neither_split(digits, terms, operations):
    env = ArithmeticEnv(digits=digits, terms=terms, operations=operations)
    text = env.system_prompt()
    users = [line.removeprefix("User: ") for line in text.splitlines() if line.startswith("User: ")]
    answers = [line.removeprefix("Assistant: ") for line in text.splitlines() if line.startswith("Assistant: ")]
    assert len(users) == len(answers) == 2
    for user, answer in zip(users, answers, strict=True):
        expression, boxed = answer.split(" = ")
        assert user == f"What is {expression}? Put the final answer in \\boxed{{}}."
        assert boxed == f"\\boxed{{{python_value(expression)}}}"  # the example's answer is right
        operands = expression.replace("+", " ").replace("-", " ").replace("*", " ").split()
        assert len(operands) == terms and all(len(x) != digits for x in operands)  # no problem of the env
        # the env's own reward takes the example's answer as right
        problem = rlvr.Problem(id="example", prompt=user, reference=str(python_value(expression)))
        ((reward, info),) = env.score_many([problem], [answer])
        assert reward == 1.0 and info["status"] == "correct"


def test_the_suggested_system_prompt_follows_a_custom_prompt_template():
    env = ArithmeticEnv(prompt="Compute {expression}.")
    assert "User: Compute 7 + 5.\nAssistant: 7 + 5 = \\boxed{12}" in env.system_prompt()
