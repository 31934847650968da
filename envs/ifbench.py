"""``rlvr/IFBench-v0``: follow IFBench's out-of-distribution constraints.

* ``IFBench-v0`` is generated from a seed: a short writing task plus one
  constraint (or two, with ``max_constraints=2``, drawn from the ones that can
  hold together) from :data:`rlvr.verifiers.ifbench.IFBENCH_CONSTRAINTS`, worded
  as IFBench words it, with parameters drawn at random. The fixed tasks
  (``custom:*``, ``repeat:repeat_simple``) are posed alone, as IFBench poses them;
  the repeat rules repeat the writing task. Offline, unlimited.
* :class:`IFBenchDataEnv` loads rows in IFBench's format (IFEval's: ``prompt``,
  ``instruction_id_list``, ``kwargs``) from ``data_files`` or the hub
  (``allenai/IFBench_test``, split ``train``); rows using one of the four ids rlvr
  does not implement are left out and counted in ``skipped``.

Both are scored by :class:`~rlvr.verifiers.ifbench.IFBenchFollowing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rlvr.core import ProceduralEnv
from rlvr.envs.instructions import TASKS, VOCABULARY, IFEvalEnv, _InstructionEnvBase
from rlvr.types import Problem

__all__ = ["IFBenchDataEnv", "IFBenchEnv"]

QUESTIONS = ["Is the sea salty?", "Can a fish climb a tree?", "Will it rain in Paris next Tuesday?"]
REFERENCE_TEXTS = [
    "The lighthouse keeper climbed the stairs every evening to light the lamp for the ships at sea.",
    "Farmers rise early in summer to water the fields before the heat of the day arrives.",
    "A small library in the village lends books, maps and music to anyone who asks.",
]
# Posed alone: each is a whole task, not a rule on a writing task.
SOLO = (
    "custom:multiples", "custom:mcq_count_length", "custom:reverse_newline", "custom:word_reverse",
    "custom:character_reverse", "custom:sentence_alphabet", "custom:european_capitals_sort", "custom:csv_city",
    "custom:csv_special_character", "custom:csv_quotes", "custom:date_format_list", "repeat:repeat_simple",
    "repeat:repeat_change", "repeat:repeat_span", "format:options",
)  # fmt: skip
# Rules on counts and words that a second, different rule of this set does not contradict.
COMBINABLE = (
    "count:numbers", "count:person_names", "count:conjunctions", "count:pronouns", "count:unique_word_count",
    "sentence:keyword", "format:output_template", "format:thesis", "format:list", "count:keywords_multiple",
    "format:parentheses", "format:quotes", "count:punctuation", "format:quote_unquote",
)  # fmt: skip


def draw_kwargs(constraint_id: str, task: str, rng: np.random.Generator) -> dict[str, Any]:
    """Random parameters for one IFBench constraint posed on ``task``."""
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    words = [str(w) for w in rng.choice(VOCABULARY, size=5, replace=False)]
    start = int(rng.integers(0, len(task) // 2))
    return {
        "count:word_count_range": lambda: {"min_words": (n := pick([40, 80, 120])), "max_words": n + pick([10, 20, 40])},
        "count:unique_word_count": lambda: {"N": pick([20, 40, 60])},
        "count:conjunctions": lambda: {"small_n": pick([2, 3, 4])},
        "count:person_names": lambda: {"N": pick([2, 3, 5])},
        "ratio:overlap": lambda: {"reference_text": pick(REFERENCE_TEXTS), "percentage": pick([30, 50, 70])},
        "count:numbers": lambda: {"N": pick([2, 3, 5])},
        "count:words_japanese": lambda: {"N": pick([3, 5, 8])},
        "words:repeats": lambda: {"small_n": pick([1, 2, 3])},
        "sentence:keyword": lambda: {"word": words[0], "N": pick([1, 2, 3])},
        "count:pronouns": lambda: {"N": pick([5, 10, 15])},
        "sentence:increment": lambda: {"small_n": pick([1, 2])},
        "format:list": lambda: {"sep": pick(["...", "SEPARATOR", "!?!?", "-"])},
        "format:options": lambda: {"options": pick(["yes/no/maybe", "I know or I don't know"])},
        "count:keywords_multiple": lambda: {f"keyword{i + 1}": w for i, w in enumerate(words)},
        "words:keywords_specific_position": lambda: {"keyword": words[0], "n": pick([1, 2, 3]), "m": pick([2, 3, 5])},
        "words:words_position": lambda: {"keyword": words[0]},
        "repeat:repeat_change": lambda: {"prompt_to_repeat": task},
        "repeat:repeat_span": lambda: {"prompt_to_repeat": task, "n_start": start,
                                       "n_end": int(rng.integers(start + 4, len(task)))},
    }.get(constraint_id, dict)()  # fmt: skip


def _sentence(constraint_id: str, kwargs: Mapping[str, Any]) -> str:
    from rlvr.verifiers.ifbench import IFBENCH_CONSTRAINTS

    template = IFBENCH_CONSTRAINTS[constraint_id].instruction
    text = template.format(**kwargs) if kwargs else template  # some wordings hold literal braces
    if constraint_id == "ratio:overlap":
        text += f" Reference text: {kwargs['reference_text']}"
    return text


class IFBenchEnv(_InstructionEnvBase, ProceduralEnv):
    """A writing task plus IFBench constraints, generated from a seed.

    Args:
        max_constraints: 1 (default, as most IFBench prompts) or 2 (a second rule
            from :data:`COMBINABLE` joins a first from it).
        constraint_ids: the constraints to draw from (default: all implemented ones).
        mode: ``"strict"``, ``"loose"`` or ``"fraction"`` scoring.
        rules: ``"ifeval"`` (the reference checkers' rules) or ``"hardened"``.
    """

    verifier_target = "rlvr.verifiers.ifbench:IFBenchFollowing"

    def __init__(
        self,
        max_constraints: int = 1,
        constraint_ids: tuple[str, ...] | None = None,
        mode: str = "strict",
        rules: str = "ifeval",
        **kwargs: Any,
    ) -> None:
        from rlvr.verifiers.ifbench import IFBENCH_CONSTRAINTS

        self.mode, self.rules = mode, rules
        self.verifier()  # a bad mode or rule set fails here
        ids = tuple(IFBENCH_CONSTRAINTS) if constraint_ids is None else tuple(constraint_ids)
        unknown = [c for c in ids if c not in IFBENCH_CONSTRAINTS]
        if unknown or not ids:
            raise ValueError(
                f"unknown IFBench constraint ids {unknown}; known: {', '.join(sorted(IFBENCH_CONSTRAINTS))}"
            )
        if max_constraints not in (1, 2):
            raise ValueError(f"max_constraints must be 1 or 2, got {max_constraints}")
        self.max_constraints, self.constraint_ids = max_constraints, ids
        super().__init__(**kwargs)

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        """Draw a writing task and one constraint (two combinable ones, if allowed and drawn)."""
        task = TASKS[int(rng.integers(len(TASKS)))]
        first = str(self.constraint_ids[int(rng.integers(len(self.constraint_ids)))])
        chosen = [first]
        partners = [c for c in self.constraint_ids if c in COMBINABLE and c != first]
        if self.max_constraints == 2 and first in COMBINABLE and partners and rng.random() < 0.5:
            chosen.append(str(partners[int(rng.integers(len(partners)))]))
        constraints = [{"id": cid, "kwargs": draw_kwargs(cid, task, rng)} for cid in chosen]
        sentences = [_sentence(c["id"], c["kwargs"]) for c in constraints]
        if first in ("repeat:repeat_change", "repeat:repeat_span"):
            prompt = f"{task} {sentences[0]}"
        elif first == "format:options":
            prompt = f"{QUESTIONS[int(rng.integers(len(QUESTIONS)))]} {sentences[0]}"
        elif first in SOLO:
            prompt = sentences[0]
        else:
            prompt = " ".join([task, *sentences])
        return Problem(problem_id, prompt, constraints, {"task": task})


class IFBenchDataEnv(IFEvalEnv):
    """Rows in IFBench's format from ``data_files`` or the hub (``allenai/IFBench_test``)."""

    verifier_target = "rlvr.verifiers.ifbench:IFBenchFollowing"
    prefix = "IFBench"

    def __init__(self, *, path: str = "allenai/IFBench_test", **kwargs: Any) -> None:
        super().__init__(path=path, **kwargs)
