r"""``rlvr/GSM8K-v0`` and ``rlvr/MATH-v0``: math datasets loaded with ``datasets.load_dataset``.

Both read the hub by default and local files in the same format through
``data_files`` (a path, or ``{"train": path, "test": path}``; ``.json``/``.jsonl``,
``.csv`` or ``.parquet``), so a machine without hub access trains on its own copy.

* GSM8K rows: ``question`` and ``answer``, the answer ending in ``#### 42``.
* MATH rows: ``problem`` and ``solution`` (the gold answer is the solution's last
  ``\boxed{}``), or an explicit ``answer`` field when the file has one.

A row whose gold answer cannot be found becomes a problem with no reference; the
math verifier reports it UNSCORABLE and training leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlvr.core import DatasetEnv
from rlvr.envs.rows import load_rows
from rlvr.types import Problem, Verifier
from rlvr.verifiers.extract import boxed_contents
from rlvr.verifiers.format import boxed_answer_reward

__all__ = ["GSM8KEnv", "MATHEnv"]

SUFFIX_PROMPT = "{question}\nPut the final answer in \\boxed{}."


class _MathDatasetEnv(DatasetEnv):
    hub_path: str = ""
    hub_name: str | None = None

    def __init__(
        self,
        split: str = "train",
        *,
        data_files: str | Mapping[str, str] | None = None,
        path: str | None = None,
        name: str | None = None,
        prompt: str = SUFFIX_PROMPT,
        limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if "{question}" not in prompt:
            raise ValueError("prompt must contain '{question}'")
        self.split = split
        rows = load_rows(path or self.hub_path, name or self.hub_name, split, data_files, limit)
        prefix = type(self).__name__.removesuffix("Env").lower()
        problems = [self.to_problem(row, f"{prefix}-{split}-{i}", prompt) for i, row in enumerate(rows)]
        super().__init__(problems, **kwargs)

    def default_reward(self) -> Verifier:
        from rlvr.verifiers.math_equivalence import MathVerifier

        return boxed_answer_reward(MathVerifier())

    def to_problem(self, row: dict[str, Any], problem_id: str, prompt: str) -> Problem:
        raise NotImplementedError

    def known_answers(self, problem: Problem) -> tuple[list[str], list[str]] | None:
        if problem.reference is None:
            return None
        gold = str(problem.reference)
        return [f"So the answer is \\boxed{{{gold}}}."], ["", f"The answer is {gold}.", "\\boxed{} \\boxed{}"]


class GSM8KEnv(_MathDatasetEnv):
    """GSM8K (``openai/gsm8k``, config ``main``), reward: the boxed answer, math-equivalent to the gold."""

    hub_path, hub_name = "openai/gsm8k", "main"

    def to_problem(self, row: dict[str, Any], problem_id: str, prompt: str) -> Problem:
        """Turn a GSM8K row into a problem; the gold is what follows ``####`` (commas dropped), else None.

        Raises:
            ValueError: the row lacks ``question`` or ``answer``.
        """
        try:
            question, answer = row["question"], row["answer"]
        except KeyError as exc:
            raise ValueError(
                f"GSM8K rows need 'question' and 'answer' fields; row {problem_id} has {sorted(row)}"
            ) from exc
        gold = answer.rsplit("####", 1)[1].strip().replace(",", "") if "####" in answer else None
        return Problem(problem_id, prompt.replace("{question}", question), gold, {"solution": answer})


class MATHEnv(_MathDatasetEnv):
    """MATH competition problems (``DigitalLearningGmbH/MATH-lighteval``), reward as for GSM8K."""

    hub_path, hub_name = "DigitalLearningGmbH/MATH-lighteval", None

    def to_problem(self, row: dict[str, Any], problem_id: str, prompt: str) -> Problem:
        """Turn a MATH row into a problem; the gold is its ``answer``, else the solution's last box.

        Raises:
            ValueError: the row lacks ``problem``.
        """
        if "problem" not in row:
            raise ValueError(f"MATH rows need a 'problem' field; row {problem_id} has {sorted(row)}")
        gold = row.get("answer")
        if gold is None:
            boxes = boxed_contents(row.get("solution", ""))
            gold = boxes[-1] if boxes else None
        meta = {k: row[k] for k in ("level", "type") if k in row}
        return Problem(problem_id, prompt.replace("{question}", row["problem"]), gold, meta)
