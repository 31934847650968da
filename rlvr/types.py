"""Core value types shared by environments, verifiers and agents.

Nothing here imports torch or any verifier backend: environments and verifiers
depend on this module, never the other way round.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

__all__ = ["Message", "Problem", "Status", "Verdict", "Verifier", "VerifierError"]

Message = Mapping[str, str]  # one chat message: {"role": ..., "content": ...}


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Problem:
    """One instance an environment can pose.

    Attributes:
        id: stable identifier, unique within its environment and split; errors and
            logs name it, and ``reset(options={"problem_id": id})`` poses it again.
        prompt: plain text, or chat messages (a tuple of ``{"role", "content"}``
            mappings) when the environment poses conversations.
        reference: what the verifier checks against (gold answer, tests, ...). It is
            never shown to the policy.
        meta: free-form facts about the problem (difficulty, source, ...).
    """

    id: str
    prompt: str | tuple[Message, ...]
    reference: Any
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Problem.id must be a non-empty string, got {self.id!r}")
        if isinstance(self.prompt, list):
            object.__setattr__(self, "prompt", tuple(self.prompt))
        if isinstance(self.prompt, tuple):
            for message in self.prompt:
                if not (isinstance(message, Mapping) and {"role", "content"} <= message.keys()):
                    raise ValueError(
                        f"Problem {self.id!r}: chat prompts are sequences of "
                        f"{{'role': ..., 'content': ...}} mappings, got {message!r}"
                    )
        elif not isinstance(self.prompt, str):
            raise TypeError(
                f"Problem {self.id!r}: prompt must be a str or chat messages, got {type(self.prompt).__name__}"
            )
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))


class Status(enum.StrEnum):
    """Why a verdict has its score; the trainer treats the four differently.

    Only ``CORRECT`` and ``INCORRECT`` are *scored*: the completion earned its score.
    ``UNSCORABLE`` (the reference itself cannot be checked) and ``ERROR`` (the
    verification machinery failed: timeout of a worker, crash) say nothing about
    the completion, so such samples are excluded from training signal, never
    rewarded and never punished.
    """

    CORRECT = "correct"  # full credit
    INCORRECT = "incorrect"  # less than full credit (partial credit lives in the score)
    UNSCORABLE = "unscorable"
    ERROR = "error"

    @property
    def scored(self) -> bool:
        """Whether the completion earned its score: CORRECT or INCORRECT."""
        return self in (Status.CORRECT, Status.INCORRECT)


@dataclass(frozen=True)
class Verdict:
    """The result of verifying one completion against one problem.

    ``score`` lies in [0, 1] for rule-based verifiers; a learned reward model may be
    unbounded and says so in its docs. ``details`` explains the score (what was
    extracted, which rule failed, timing); composites put their per-component
    verdicts under ``details["components"]``.
    """

    score: float
    status: Status = Status.INCORRECT
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        score = float(self.score)
        if math.isnan(score):
            raise ValueError("Verdict.score is NaN; report a failure with Status.ERROR instead")
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "details", _frozen_mapping(self.details))

    @classmethod
    def from_score(cls, score: float, **details: Any) -> Verdict:
        """A scored verdict: CORRECT at full credit (score >= 1), INCORRECT below."""
        score = float(score)
        return cls(score, Status.CORRECT if score >= 1.0 else Status.INCORRECT, details)

    @classmethod
    def correct(cls, **details: Any) -> Verdict:
        """Full credit: score 1, CORRECT, with ``details``."""
        return cls(1.0, Status.CORRECT, details)

    @classmethod
    def incorrect(cls, reason: str, **details: Any) -> Verdict:
        """No credit: score 0, INCORRECT, with ``reason`` in ``details["reason"]``."""
        return cls(0.0, Status.INCORRECT, {"reason": reason, **details})

    @classmethod
    def unscorable(cls, reason: str, **details: Any) -> Verdict:
        """The reference cannot be checked: score 0, UNSCORABLE, with ``reason`` in ``details["reason"]``."""
        return cls(0.0, Status.UNSCORABLE, {"reason": reason, **details})

    @classmethod
    def error(cls, reason: str, **details: Any) -> Verdict:
        """The verification machinery failed: score 0, ERROR, with ``reason`` in ``details["reason"]``."""
        return cls(0.0, Status.ERROR, {"reason": reason, **details})


@runtime_checkable
class Verifier(Protocol):
    """A reward function: ``verifier(completion, problem) -> Verdict``.

    It must be deterministic, must not raise on any string (hostile input earns an
    INCORRECT verdict), and must not know anything about training. A verifier may
    also offer ``batch(completions, problems) -> list[Verdict]`` (a process pool,
    a GPU batch); :func:`rlvr.verify_batch` uses it when present and loops otherwise.
    """

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Score ``completion`` as an answer to ``problem``."""
        ...


class VerifierError(RuntimeError):
    """A verifier raised instead of returning a verdict; names the problem and verifier."""

    def __init__(self, verifier: str, problem_id: str, cause: BaseException) -> None:
        self.verifier = verifier
        self.problem_id = problem_id
        super().__init__(f"verifier {verifier!r} raised on problem {problem_id!r}: {type(cause).__name__}: {cause}")
