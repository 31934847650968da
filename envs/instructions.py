"""``rlvr/Instructions-v0`` and ``rlvr/IFEval-v0``: follow verifiable instructions.

* ``Instructions-v0`` is generated from a seed: a short writing task plus one to
  ``max_constraints`` constraints drawn from :data:`rlvr.verifiers.instructions.CONSTRAINTS`,
  worded as IFEval words them, with parameters drawn at random and never two
  that contradict each other (all lowercase and all capitals; JSON and bullet
  points; two rules on how the response ends...). Offline, unlimited.
* ``IFEval-v0`` loads prompt sets in IFEval's format (``prompt``,
  ``instruction_id_list``, ``kwargs``) from local files or the hub (``google/IFEval``)
  through ``datasets``. All 25 of IFEval's ids are implemented; rows that use an
  id rlvr does not know are left out and counted in ``skipped``.

Both are scored by :class:`~rlvr.verifiers.instructions.InstructionFollowing`:
``mode="strict"`` and IFEval's own rules by default (every constraint must hold, as
IFEval checks it); ``rules="hardened"`` closes the holes a policy could learn to
use, ``mode="loose"`` is IFEval's loose accuracy, ``mode="fraction"`` partial credit.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlvr.core import DatasetEnv, ProceduralEnv, SelfCheckError
from rlvr.types import Problem, Verifier

__all__ = ["IFEvalEnv", "InstructionsEnv"]

TASKS = [
    "Write a short poem about the sea.",
    "Describe your ideal weekend.",
    "Explain why the sky is blue.",
    "Write a product description for a reusable water bottle.",
    "Give advice to a student starting university.",
    "Write a short story about a lost key.",
    "Summarize the benefits of regular exercise.",
    "Write a letter to a friend about a recent trip.",
    "Describe how to make a cup of tea.",
    "Explain what a computer does, for a child.",
    "Write a review of an imaginary restaurant.",
    "Describe a city you would like to visit.",
    "Write a motivational message for a sports team.",
    "Explain how plants grow.",
    "Write a short speech for a friend's birthday.",
    "Describe the life of a lighthouse keeper.",
    "Give tips for saving money.",
    "Write a haiku sequence about winter.",
    "Explain the rules of a simple card game.",
    "Write an invitation to a community picnic.",
]
VOCABULARY = ["river", "light", "future", "garden", "music", "friend", "journey", "morning", "silver", "window",
              "market", "story", "ocean", "bridge", "simple", "energy", "history", "forest", "coffee", "dream"]  # fmt: skip
END_PHRASES = ["Is there anything else I can help with?", "Let me know if you have additional questions.", "Peace!"]
RELATIONS = ("less than", "at least")  # IFEval's two, so every generated prompt is valid IFEval
# Constraints that cannot hold together (at most one of each group is drawn): one
# rule on the case, one on the whole shape of the response, one on its ending...
SHAPE = {
    "detectable_format:json_format",
    "startend:quotation",
    "detectable_format:number_bullet_lists",
    "detectable_format:title",
    "length_constraints:number_paragraphs",
    "detectable_content:postscript",
    "startend:end_checker",
    "detectable_format:number_highlighted_sections",
    "length_constraints:number_sentences",
    "length_constraints:nth_paragraph_first_word",
    "detectable_format:multiple_sections",
    "detectable_format:constrained_response",
    "combination:two_responses",
    "combination:repeat_prompt",
}
CONFLICTS = [
    {"change_case:english_lowercase", "change_case:english_capital", "change_case:capital_word_frequency"},
    SHAPE,
    {"startend:end_checker", "detectable_content:postscript", "startend:quotation"},
    {"change_case:english_lowercase", "startend:end_checker", "detectable_format:multiple_sections"},
    {"change_case:english_capital", "startend:end_checker", "keywords:letter_frequency",
     "detectable_format:multiple_sections"},
    # The repeated request holds the other instructions' words: repeating it would meet a
    # keyword or placeholder rule for free, and could break a comma or word-count one.
    {"combination:repeat_prompt", "keywords:forbidden_words", "punctuation:no_comma", "keywords:letter_frequency",
     "length_constraints:number_words", "change_case:capital_word_frequency", "keywords:existence",
     "keywords:frequency", "detectable_content:number_placeholders"},
]  # fmt: skip
DEFAULT_IDS = (
    "length_constraints:number_words",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:nth_paragraph_first_word",
    "keywords:existence",
    "keywords:forbidden_words",
    "keywords:frequency",
    "keywords:letter_frequency",
    "change_case:english_lowercase",
    "change_case:english_capital",
    "change_case:capital_word_frequency",
    "punctuation:no_comma",
    "detectable_format:number_bullet_lists",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:title",
    "detectable_format:json_format",
    "detectable_format:constrained_response",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "startend:quotation",
    "detectable_content:postscript",
    "detectable_content:number_placeholders",
)  # fmt: skip; language:response_language is opt-in
LANGUAGES = {"de": "German", "fr": "French", "es": "Spanish", "it": "Italian"}


def draw_kwargs(constraint_id: str, rng: np.random.Generator) -> dict[str, Any]:
    """Random parameters for one constraint (``prompt_to_repeat`` is filled in by the environment)."""
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    words = [str(w) for w in rng.choice(VOCABULARY, size=2, replace=False)]
    relation = pick(RELATIONS)
    return {
        "length_constraints:number_words": lambda: {"relation": relation, "num_words": pick([20, 40, 60, 80])},
        "length_constraints:number_sentences": lambda: {"relation": relation, "num_sentences": pick([2, 3, 5])},
        "length_constraints:number_paragraphs": lambda: {"num_paragraphs": pick([2, 3])},
        "length_constraints:nth_paragraph_first_word": lambda: {
            "num_paragraphs": (n := pick([2, 3])), "nth_paragraph": int(rng.integers(1, n + 1)), "first_word": words[0]},
        "keywords:existence": lambda: {"keywords": words},
        "keywords:forbidden_words": lambda: {"forbidden_words": words},
        "keywords:frequency": lambda: {"keyword": words[0], "frequency": pick([2, 3]), "relation": relation},
        "keywords:letter_frequency": lambda: {"letter": pick(list("aeiost")), "let_frequency": pick([5, 10]), "let_relation": relation},
        "change_case:capital_word_frequency": lambda: {"capital_frequency": pick([2, 3, 5]), "capital_relation": relation},
        "detectable_format:number_bullet_lists": lambda: {"num_bullets": pick([2, 3, 4])},
        "detectable_format:number_highlighted_sections": lambda: {"num_highlights": pick([1, 2, 3])},
        "detectable_format:multiple_sections": lambda: {"section_spliter": pick(["Section", "SECTION"]), "num_sections": pick([2, 3])},
        "startend:end_checker": lambda: {"end_phrase": pick(END_PHRASES)},
        "detectable_content:postscript": lambda: {"postscript_marker": pick(["P.S.", "P.P.S"])},
        "detectable_content:number_placeholders": lambda: {"num_placeholders": pick([1, 2, 3])},
        "language:response_language": lambda: {"language": pick(sorted(LANGUAGES))},
    }.get(constraint_id, dict)()  # fmt: skip


def instruction_text(constraint_id: str, kwargs: Mapping[str, Any]) -> str:
    """The constraint worded as IFEval words it, with its arguments filled in."""
    from rlvr.verifiers.instructions import CONSTRAINTS
    from rlvr.verifiers.instructions_text import LANGUAGE_CODES

    values = {k: (", ".join(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    if "language" in kwargs:
        values["language_name"] = LANGUAGE_CODES.get(kwargs["language"], kwargs["language"])
    return CONSTRAINTS[constraint_id].instruction.format(**values)


class _InstructionEnvBase:
    # The family's verifier, imported on first use so that importing envs stays light.
    verifier_target = "rlvr.verifiers.instructions:InstructionFollowing"

    def verifier(self, mode: str | None = None, rules: str | None = None) -> Any:
        """The family's verifier, in this environment's mode and rule set unless given."""
        module, _, name = self.verifier_target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls(mode or self.mode, rules or self.rules)

    def default_reward(self) -> Verifier:
        """``constraints``: the family's verifier in this environment's mode and rule set."""
        from rlvr.rewards import WeightedSum

        return WeightedSum({"constraints": self.verifier()})

    def self_check(self, n: int = 3, seed: int = 0) -> int:
        """Check that every constraint's own examples score as they should.

        Each constraint's passing example must score 1 and its failing example 0
        through this environment's reward (a fail-open rule stops the run).

        Args:
            n: unused; every constraint of the environment is checked.
            seed: unused; the examples are fixed.

        Returns:
            How many completions were checked.

        Raises:
            SelfCheckError: an example scored other than expected.
        """
        table = self.verifier().table()
        checked = 0
        for cid in self.constraint_ids:
            c = table[cid]
            problem = Problem(f"self-check-{cid}", "", [{"id": cid, "kwargs": dict(c.example_kwargs)}])
            for text, want in ((c.passing, 1.0), (c.failing, 0.0)):
                ((reward, info),) = self.score_many([problem], [text])
                if reward != want:
                    raise SelfCheckError(
                        f"{type(self).__name__}: {cid} scored {reward:g} on {text!r}, expected {want:g}"
                    )
                checked += 1
        return checked


class InstructionsEnv(_InstructionEnvBase, ProceduralEnv):
    """A writing task plus constraints, generated from a seed.

    Args:
        max_constraints: each problem has 1 to this many constraints (1 to 3 by default).
        constraint_ids: the constraints to draw from (default: all but the language rule).
        mode: ``"strict"``, ``"loose"`` (IFEval's) or ``"fraction"`` scoring (see InstructionFollowing).
        rules: ``"ifeval"`` (the reference's rules) or ``"hardened"`` (stricter where
            the reference can be gamed; the better choice for training).
    """

    def __init__(
        self,
        max_constraints: int = 3,
        constraint_ids: tuple[str, ...] = DEFAULT_IDS,
        mode: str = "strict",
        rules: str = "ifeval",
        **kwargs: Any,
    ) -> None:
        from rlvr.verifiers.instructions import CONSTRAINTS, InstructionFollowing

        InstructionFollowing(mode, rules)  # a bad mode or rule set fails here, not at the first step

        unknown = [c for c in constraint_ids if c not in CONSTRAINTS]
        if unknown or not constraint_ids:
            raise ValueError(f"unknown constraint ids {unknown}; known: {', '.join(sorted(CONSTRAINTS))}")
        if not 1 <= max_constraints <= 6:
            raise ValueError(f"max_constraints must be from 1 to 6, got {max_constraints}")
        self.max_constraints, self.constraint_ids = max_constraints, tuple(constraint_ids)
        self.mode, self.rules = mode, rules
        super().__init__(**kwargs)

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        """Draw a writing task and 1 to ``max_constraints`` non-conflicting constraints from ``rng``."""
        task = TASKS[int(rng.integers(len(TASKS)))]
        count = int(rng.integers(1, self.max_constraints + 1))
        chosen: list[str] = []
        for cid in rng.permutation(list(self.constraint_ids)):
            if len(chosen) == count:
                break
            if not any(cid in group and set(chosen) & group for group in CONFLICTS):
                chosen.append(str(cid))
        constraints = [{"id": cid, "kwargs": draw_kwargs(cid, rng)} for cid in chosen]
        others = [c for c in constraints if c["id"] != "combination:repeat_prompt"]
        request = " ".join([task] + [instruction_text(c["id"], c["kwargs"]) for c in others])
        prompt = request
        for c in constraints:
            if c["id"] == "combination:repeat_prompt":
                # As in IFEval: the request to repeat is the prompt without this sentence.
                c["kwargs"] = {"prompt_to_repeat": request}
                prompt = request + " " + instruction_text(c["id"], c["kwargs"])
        return Problem(problem_id, prompt, constraints, {"task": task})


class IFEvalEnv(_InstructionEnvBase, DatasetEnv):
    """Prompts in IFEval's format, from ``data_files`` or the hub (``google/IFEval``, one ``train`` split).

    Every row's arguments are validated on loading: a bad one raises ``ValueError``
    naming the row and the argument. ``mode`` and ``rules`` as in :class:`InstructionsEnv`.
    """

    prefix = "IFEval"

    def __init__(
        self,
        *,
        data_files: str | Mapping[str, str] | None = None,
        path: str = "google/IFEval",
        split: str = "train",
        limit: int | None = None,
        mode: str = "strict",
        rules: str = "ifeval",
        **kwargs: Any,
    ) -> None:
        from rlvr.envs.rows import load_rows
        from rlvr.verifiers.instructions import validate_kwargs

        table = self.verifier(mode, rules).table()  # a bad mode or rule set fails here
        rows = load_rows(path, None, split, data_files, limit)
        problems, self.skipped = [], 0
        for i, row in enumerate(rows):
            if not {"prompt", "instruction_id_list", "kwargs"} <= row.keys():
                raise ValueError(
                    f"{self.prefix} rows need prompt, instruction_id_list and kwargs; row {i} has {sorted(row)}"
                )
            if not all(cid in table for cid in row["instruction_id_list"]):
                self.skipped += 1
                continue
            constraints = [
                {"id": cid, "kwargs": {k: v for k, v in (kw or {}).items() if v is not None}}
                for cid, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True)
            ]
            for c in constraints:
                try:
                    validate_kwargs(c["id"], c["kwargs"], table)
                except ValueError as exc:
                    raise ValueError(f"{self.prefix} row {i} (key {row.get('key')}): {exc}") from exc
            problems.append(Problem(f"{self.prefix.lower()}-{row.get('key', i)}", row["prompt"], constraints))
        self.mode, self.rules = mode, rules
        self.constraint_ids = tuple(sorted({c["id"] for p in problems for c in p.reference}))
        super().__init__(problems, **kwargs)
