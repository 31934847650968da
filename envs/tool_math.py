r"""``rlvr/ToolMath-v0``: products such as ``347 * 58``, with a sandboxed Python tool the policy may call."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlvr.core import ProceduralEnv
from rlvr.episodes import EpisodeEnv, Response, message
from rlvr.tools import Tool, call_tools, format_call, parse_tool_calls, python_tool
from rlvr.types import Problem, Verifier
from rlvr.verifiers.format import boxed_answer_bad, boxed_answer_reward

__all__ = ["ToolMathEnv"]

SYSTEM_PROMPT = (
    "You can run Python. To run code, reply with exactly one tool call and nothing else, for example:\n"
    + format_call("python", {"code": "print(12 * 34)"})
    + "\nThe result comes back in the next message. When you know the answer, reply with it in \\boxed{}."
)
DEFAULT_PROMPT = "What is {expression}? Put the final answer in \\boxed{}."
# A worked exchange placed before the question: SmolLM2-135M-Instruct never wrote a
# tool call from the system prompt alone (0 of 64 samples at temperature 0.7 and
# 1.0), and did in 9 of 32 with this exchange in front at 0.7.
DEMONSTRATION = (12, 34)


class ToolMathEnv(EpisodeEnv, ProceduralEnv):
    r"""Multiply an ``a_digits``-digit number by a ``b_digits``-digit one, with a Python tool at hand.

    Each turn is either tool calls (``<tool_call>`` tags, :mod:`rlvr.tools`), answered
    with one ``tool`` message per call (an error message for a malformed call, a hang
    or a flood), or a final answer, scored by the reward and ending the episode. A
    turn with no tool call is the final answer, so a one-turn episode is the bandit
    step of an arithmetic problem. The episode is truncated (return 0) when
    ``max_turns`` pass without a final answer.

    Args:
        a_digits, b_digits: digits of the two factors (1 to 6 each).
        max_turns: assistant turns per episode (default 3: a call, and the answer, with one to spare).
        tools: the tools offered; default a sandboxed :func:`rlvr.tools.python_tool`.
        system_prompt: describes the tools and the call format (SmolLM2's chat template
            has no tool format of its own); ``""`` leaves the system message out.
        prompt: the question, with ``{expression}``.
        demonstration: two factors whose worked exchange (the question, a tool call,
            the tool's answer, the boxed answer) precedes the question; ``None`` leaves it out.
        split, reward, ...: see :class:`rlvr.core.ProceduralEnv` and :class:`rlvr.episodes.EpisodeEnv`.

    Step info: ``tool_calls`` and ``tool_errors`` (calls this turn, and those that
    failed); the final turn adds the reward's ``status``, ``components`` and ``details``.
    Default reward: :func:`rlvr.verifiers.format.boxed_answer_reward` over the math verifier.
    """

    def __init__(
        self,
        a_digits: int = 3,
        b_digits: int = 2,
        max_turns: int = 3,
        tools: list[Tool] | None = None,
        system_prompt: str = SYSTEM_PROMPT,
        prompt: str = DEFAULT_PROMPT,
        demonstration: tuple[int, int] | None = DEMONSTRATION,
        **kwargs: Any,
    ) -> None:
        for name, value in (("a_digits", a_digits), ("b_digits", b_digits)):
            if not (isinstance(value, int) and 1 <= value <= 6):
                raise ValueError(f"{name} must be an integer from 1 to 6, got {value!r}")
        if demonstration is not None and not (
            len(demonstration) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in demonstration)
        ):
            raise ValueError(f"demonstration must be two integers or None, got {demonstration!r}")
        if "{expression}" not in prompt:
            raise ValueError("prompt must contain '{expression}'")
        self.a_digits, self.b_digits = a_digits, b_digits
        self.system_prompt, self.prompt, self.demonstration = system_prompt, prompt, demonstration
        self._tools = tools
        super().__init__(max_turns=max_turns, **kwargs)

    @property
    def tools(self) -> list[Tool]:
        """The tools offered (the sandboxed Python tool is built on first use)."""
        if self._tools is None:
            self._tools = [python_tool()]
        return self._tools

    def default_reward(self) -> Verifier:
        """The boxed-answer reward over :class:`rlvr.verifiers.math_equivalence.MathVerifier`."""
        from rlvr.verifiers.math_equivalence import MathVerifier

        return boxed_answer_reward(MathVerifier())

    def known_answers(self, problem: Problem) -> tuple[list[str], list[str]]:
        """A boxed right answer, and the boxed-answer reward's must-score-0 completions."""
        gold = int(problem.reference)
        return [f"The tool says {gold}, so \\boxed{{{gold}}}."], boxed_answer_bad(str(gold), str(gold + 1))

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        """Two factors drawn from ``rng``; the reference is their product."""

        def factor(digits: int) -> int:
            return int(rng.integers(0 if digits == 1 else 10 ** (digits - 1), 10**digits))

        a, b = factor(self.a_digits), factor(self.b_digits)
        expression = f"{a} * {b}"
        prompt = [message("system", self.system_prompt)] if self.system_prompt else []
        if self.demonstration is not None:
            prompt += self._worked(*self.demonstration)
        prompt.append(message("user", self.prompt.replace("{expression}", expression)))
        return Problem(id=problem_id, prompt=prompt, reference=str(a * b), meta={"expression": expression})

    def _worked(self, a: int, b: int) -> list[dict[str, str]]:
        """The demonstration: the question about ``a * b``, a call, its output, the boxed answer."""
        expression, value = f"{a} * {b}", str(a * b)
        return [
            message("user", self.prompt.replace("{expression}", expression)),
            message("assistant", format_call("python", {"code": f"print({expression})"})),
            message("tool", value),
            message("assistant", f"\\boxed{{{value}}}"),
        ]

    def respond(self, action: str) -> Response:
        """Tool results for a turn with tool calls; the reward for a turn without."""
        calls = parse_tool_calls(action, self.tools)
        if not calls:
            reward, info = self.score(action)
            return Response((), reward, True, {**info, "tool_calls": 0, "tool_errors": 0})
        results = call_tools(calls, self.tools)
        observation = tuple(message("tool", r.output) for r in results)
        errors = sum(not r.ok for r in results)
        return Response(observation, 0.0, False, {"tool_calls": len(results), "tool_errors": errors})
