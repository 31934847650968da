"""Verifiable instruction following: IFEval's 25 constraints and the verifier that combines them.

Each constraint is named with IFEval's id (``keywords:existence``...) and takes
IFEval's arguments, so IFEval-format prompt sets load unchanged. :data:`CONSTRAINTS`
lists them with their parameters and one passing and one failing example each
(the table in ``docs/instructions.md`` and the tests use the same examples).

Two rule sets:

* ``rules="ifeval"`` (default): the reference checker's rules (google-research
  ``instruction_following_eval``; lm-eval's ``ifeval`` task), rule by rule, in
  :mod:`rlvr.verifiers.instructions_rules`. Its known deviations are listed there.
* ``rules="hardened"``: stricter where the reference lets a wrong response pass
  (fail-open language detection, ``**`` taken for a bullet, a bare number taken for
  JSON...); :data:`~rlvr.verifiers.instructions_rules.HARDENED_DIFFERENCES` lists
  every difference. Better for training, where the policy looks for such holes.

Arguments are validated when a check is built (:func:`build_check`): a negative
count, an unknown relation or language, a missing or unknown argument is a
``ValueError`` that names the argument, never a check that silently holds. The
reference instead replaces some bad arguments by random ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rlvr.types import Problem, Verdict
from rlvr.verifiers import instructions_rules as R
from rlvr.verifiers.instructions_table import CONSTRAINT_TABLE
from rlvr.verifiers.instructions_text import LANGUAGE_CODES, RELATIONS

__all__ = [
    "CONSTRAINTS",
    "MODES",
    "RULE_SETS",
    "Constraint",
    "InstructionFollowing",
    "build_check",
    "check_constraint",
    "loose_variants",
    "validate_kwargs",
]

MODES = ("strict", "loose", "fraction")
RULE_SETS = ("ifeval", "hardened")
Check = Callable[[str], tuple[bool, str]]


@dataclass(frozen=True)
class Constraint:
    """A rule, its stricter variant if any, its wording, its parameters, and two examples.

    ``params`` maps each argument to its kind (``count``, ``positive``, ``percentage``,
    ``relation``, ``text``, ``words``, ``letter``, ``language``, ``keys``); kinds
    ending in ``?`` are optional. ``validate`` checks the arguments together
    (``min_words <= max_words``...) after each is checked alone.
    """

    check: Callable[..., tuple[bool, str]]
    instruction: str
    params: Mapping[str, str]
    example_kwargs: Mapping[str, Any]
    passing: str
    failing: str
    hardened: Callable[..., tuple[bool, str]] | None = field(default=None)
    validate: Callable[[dict[str, Any]], None] | None = field(default=None)


def _count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _words(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list of strings, got {value!r}")
    return [_text(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _keys(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    return [_text(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _relation(name: str, value: Any) -> str:
    if value not in RELATIONS:
        raise ValueError(f"{name} must be one of {RELATIONS}, got {value!r}")
    return value


def _letter(name: str, value: Any) -> str:
    letter = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(letter, str) or len(letter) != 1 or not "a" <= letter <= "z":
        raise ValueError(f"{name} must be one ASCII letter, got {value!r}")
    return letter


def _language(name: str, value: Any) -> str:
    if value not in LANGUAGE_CODES:
        raise ValueError(f"{name} must be one of IFEval's language codes {sorted(LANGUAGE_CODES)}, got {value!r}")
    return value


def _percentage(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValueError(f"{name} must be a number from 0 to 100, got {value!r}")
    return value


_KINDS: dict[str, Callable[[str, Any], Any]] = {
    "percentage": _percentage,
    "count": _count,
    "positive": partial(_count, minimum=1),
    "text": _text,
    "words": _words,
    "keys": _keys,
    "relation": _relation,
    "letter": _letter,
    "language": _language,
}


def validate_kwargs(
    constraint_id: str, kwargs: Mapping[str, Any] | None, table: Mapping[str, Constraint] | None = None
) -> dict[str, Any]:
    """The arguments of one constraint, checked; ``None`` values count as absent.

    Args:
        constraint_id: the constraint's id in ``table``.
        kwargs: its arguments.
        table: the constraints to look the id up in (default: IFEval's, :data:`CONSTRAINTS`).

    Raises:
        KeyError: the constraint id is unknown.
        ValueError: an argument is missing, unknown or out of range (the message names it).
    """
    table = CONSTRAINTS if table is None else table
    if constraint_id not in table:
        raise KeyError(f"unknown constraint {constraint_id!r}; known: {', '.join(sorted(table))}")
    spec = table[constraint_id].params
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ValueError(f"{constraint_id}: unknown arguments {unknown}; it takes {sorted(spec) or 'none'}")
    out = {}
    for name, kind in spec.items():
        if name not in given:
            if not kind.endswith("?"):
                raise ValueError(f"{constraint_id}: argument {name} is required")
            continue
        out[name] = _KINDS[kind.rstrip("?")](name, given[name])
    if "nth_paragraph" in out and out["nth_paragraph"] > out["num_paragraphs"]:
        raise ValueError(
            f"nth_paragraph must be <= num_paragraphs, got {out['nth_paragraph']} > {out['num_paragraphs']}"
        )
    if table[constraint_id].validate is not None:
        table[constraint_id].validate(out)
    return out


def build_check(
    constraint_id: str,
    kwargs: Mapping[str, Any] | None = None,
    rules: str = "ifeval",
    table: Mapping[str, Constraint] | None = None,
) -> Check:
    """A function ``text -> (holds, why)`` for one constraint with validated arguments.

    An empty or blank text holds no constraint, as in the reference driver.

    Raises:
        KeyError: the constraint id is unknown.
        ValueError: bad arguments, or an unknown rule set.
    """
    if rules not in RULE_SETS:
        raise ValueError(f"rules must be one of {RULE_SETS}, got {rules!r}")
    table = CONSTRAINTS if table is None else table
    args = validate_kwargs(constraint_id, kwargs, table)
    constraint = table[constraint_id]
    rule = constraint.hardened if rules == "hardened" and constraint.hardened else constraint.check
    bound = partial(rule, **args)

    def check(text: str) -> tuple[bool, str]:
        if not text.strip():
            return False, "empty response"
        return bound(text)

    return check


def check_constraint(
    text: str,
    constraint_id: str,
    kwargs: Mapping[str, Any] | None = None,
    rules: str = "ifeval",
    table: Mapping[str, Constraint] | None = None,
) -> tuple[bool, str]:
    """Whether ``text`` as it stands satisfies one constraint, and a line that says why."""
    return build_check(constraint_id, kwargs, rules, table)(text)


def loose_variants(text: str) -> list[str]:
    """IFEval's loose variants: the text; without its first, last, or both lines; each also with ``*`` removed."""
    lines = text.split("\n")
    cut = [text, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [cut[0], cut[0].replace("*", "")] + cut[1:] + [c.replace("*", "") for c in cut[1:]]


def _loose(check: Check, variants: Sequence[str]) -> tuple[bool, str]:
    first = None
    for variant in variants:
        held, why = check(variant)
        if held:
            return True, why if variant is variants[0] else f"loose: {why}"
        first = first or why
    return False, first or "empty response"


class InstructionFollowing:
    """Score a completion against the problem's constraints.

    ``problem.reference`` is a list of ``{"id": constraint id, "kwargs": {...}}``.

    Args:
        mode: ``"strict"``: 1 only if every constraint holds on the completion as it
            is (IFEval's strict accuracy). ``"loose"``: 1 only if every constraint
            holds on at least one of IFEval's loose variants (:func:`loose_variants`:
            first/last line removed, ``*`` removed), IFEval's loose accuracy.
            ``"fraction"``: the fraction of constraints that hold strictly (partial
            credit; not an IFEval measure).
        rules: ``"ifeval"`` (the reference's rules) or ``"hardened"`` (stricter where
            the reference can be gamed; see the module docstring).
        max_chars: longer completions score 0 without checking (this bounds the cost).

    ``details["constraints"]`` lists each constraint, whether it held and why. An
    unknown constraint id or bad arguments make the verdict UNSCORABLE.
    """

    name = "instructions"

    def table(self) -> Mapping[str, Constraint]:
        """The constraints this verifier knows: IFEval's 25."""
        return CONSTRAINTS

    def __init__(self, mode: str = "strict", rules: str = "ifeval", max_chars: int = 200_000) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if rules not in RULE_SETS:
            raise ValueError(f"rules must be one of {RULE_SETS}, got {rules!r}")
        self.mode, self.rules, self.max_chars = mode, rules, int(max_chars)

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Check ``completion`` against every constraint in ``problem.reference``.

        Returns:
            A correct verdict when every constraint holds (in ``mode``'s sense);
            otherwise an incorrect one, scored 0 or, in ``"fraction"`` mode, by the
            fraction that holds; unscorable for a malformed reference or constraint.
        """
        constraints = problem.reference
        if not isinstance(constraints, Sequence) or isinstance(constraints, str) or not constraints:
            return Verdict.unscorable("the reference is not a non-empty list of constraints")
        if len(completion) > self.max_chars:
            return Verdict.incorrect(f"completion longer than {self.max_chars} characters")
        checks = []
        for item in constraints:
            try:
                checks.append((item["id"], build_check(item["id"], item.get("kwargs"), self.rules, self.table())))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                return Verdict.unscorable(f"bad constraint {item!r:.120}: {exc}")
        variants = loose_variants(completion) if self.mode == "loose" else [completion]
        results = []
        for cid, check in checks:
            held, why = _loose(check, variants)
            results.append({"id": cid, "held": held, "why": why})
        held = sum(r["held"] for r in results)
        if held == len(results):
            return Verdict.correct(constraints=results)
        score = held / len(results) if self.mode == "fraction" else 0.0
        reason = f"{len(results) - held} of {len(results)} not met"
        return Verdict(score, "incorrect", {"reason": reason, "constraints": results})


def _constraints() -> dict[str, Constraint]:
    table = {}
    for cid, (rule, hardened, instruction, params, kwargs, passing, failing) in CONSTRAINT_TABLE.items():
        table[cid] = Constraint(
            getattr(R, rule), instruction, params, kwargs, passing, failing, getattr(R, hardened) if hardened else None
        )
    return table


CONSTRAINTS: dict[str, Constraint] = _constraints()
