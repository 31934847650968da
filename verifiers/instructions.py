r"""Verifiable instruction following: constraint rules and the verifier that combines them.

Each constraint is a small rule ``check(text, **kwargs) -> (holds, detail)``,
named with IFEval's ids (``keywords:existence``...) so IFEval-style prompt sets
load unchanged. :data:`CONSTRAINTS` lists them with their parameters and one
passing and one failing example each (the table in ``docs/instructions.md``
and the tests use the same examples).

Counting rules, stated once:

* words are runs of letters, digits, apostrophes and hyphens (``\w[\w'-]*``);
* sentences end at ``.``, ``!`` or ``?`` followed by whitespace or the end;
* paragraphs are separated by a line holding only ``***`` (IFEval's rule);
* keyword rules (existence, forbidden, frequency) read the prose only: text
  inside fenced code blocks does not count, so a keyword stuffed into a code
  block does not satisfy, and a forbidden word quoted in code does not break, them;
* keyword matching is case-insensitive and on whole words.

Relations: ``"at least"``, ``"at most"``, ``"exactly"`` and IFEval's ``"less than"``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.types import Problem, Verdict

__all__ = ["CONSTRAINTS", "Constraint", "InstructionFollowing", "check_constraint"]

_WORD = re.compile(r"\w[\w'-]*", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_FENCE = re.compile(r"```.*?(```|$)", re.DOTALL)
RELATIONS = ("at least", "at most", "exactly", "less than")


def _compare(count: int, relation: str, target: int) -> bool:
    if relation == "at least":
        return count >= target
    if relation == "at most":
        return count <= target
    if relation == "exactly":
        return count == target
    if relation == "less than":
        return count < target
    raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")


def _prose(text: str) -> str:
    return _FENCE.sub(" ", text)


def _count_words(text: str) -> int:
    return len(_WORD.findall(text))


def _word_count(text: str, num_words: int, relation: str = "at least") -> tuple[bool, str]:
    n = _count_words(text)
    return _compare(n, relation, num_words), f"{n} words ({relation} {num_words} asked)"


def _sentence_count(text: str, num_sentences: int, relation: str = "at least") -> tuple[bool, str]:
    stripped = text.strip()
    n = len(_SENTENCE_END.findall(stripped)) + (1 if stripped and not _SENTENCE_END.search(stripped[-1:]) else 0)
    return _compare(n, relation, num_sentences), f"{n} sentences ({relation} {num_sentences} asked)"


def _paragraph_count(text: str, num_paragraphs: int) -> tuple[bool, str]:
    parts = re.split(r"^\s*\*\*\*\s*$", text, flags=re.MULTILINE)
    nonempty = [p for p in parts if p.strip()]
    ok = len(parts) == num_paragraphs and len(nonempty) == num_paragraphs
    return ok, f"{len(nonempty)} paragraphs separated by *** ({num_paragraphs} asked)"


def _keyword_hits(text: str, keyword: str) -> int:
    return len(re.findall(r"(?<!\w)" + re.escape(keyword) + r"(?!\w)", _prose(text), flags=re.IGNORECASE))


def _existence(text: str, keywords: Sequence[str]) -> tuple[bool, str]:
    missing = [k for k in keywords if _keyword_hits(text, k) == 0]
    return not missing, f"missing {missing}" if missing else "all keywords present"


def _forbidden(text: str, forbidden_words: Sequence[str]) -> tuple[bool, str]:
    used = [w for w in forbidden_words if _keyword_hits(text, w) > 0]
    return not used, f"uses {used}" if used else "no forbidden word"


def _frequency(text: str, keyword: str, frequency: int, relation: str = "at least") -> tuple[bool, str]:
    n = _keyword_hits(text, keyword)
    return _compare(n, relation, frequency), f"{keyword!r} appears {n} times ({relation} {frequency} asked)"


def _letter_frequency(text: str, letter: str, let_frequency: int, let_relation: str = "at least") -> tuple[bool, str]:
    if len(letter) != 1:
        raise ValueError(f"letter must be a single character, got {letter!r}")
    n = text.lower().count(letter.lower())
    return _compare(n, let_relation, let_frequency), f"{letter!r} appears {n} times ({let_relation} {let_frequency})"


def _lowercase(text: str) -> tuple[bool, str]:
    ok = bool(text.strip()) and text == text.lower()
    return ok, "all lowercase" if ok else "has capital letters (or is empty)"


def _uppercase(text: str) -> tuple[bool, str]:
    ok = bool(text.strip()) and text == text.upper()
    return ok, "all capitals" if ok else "has lowercase letters (or is empty)"


def _no_comma(text: str) -> tuple[bool, str]:
    n = text.count(",") + text.count("，")
    return n == 0, f"{n} commas"


def _bullets(text: str, num_bullets: int) -> tuple[bool, str]:
    n = len(re.findall(r"^\s*[*-]\s(?!\*)", text, flags=re.MULTILINE))
    return n == num_bullets, f"{n} bullet points ({num_bullets} asked)"


def _highlights(text: str, num_highlights: int) -> tuple[bool, str]:
    spans = re.findall(r"\*[^\n*]+\*", text) + re.findall(r"\*\*[^\n*]+\*\*", text)
    n = len([s for s in spans if s.strip("* ")])
    return n >= num_highlights, f"{n} highlighted sections (at least {num_highlights} asked)"


def _title(text: str) -> tuple[bool, str]:
    titles = [t for t in re.findall(r"<<([^\n]+?)>>", text) if t.strip()]
    return bool(titles), f"title {titles[0]!r}" if titles else "no <<title>>"


def _end_phrase(text: str, end_phrase: str) -> tuple[bool, str]:
    ok = text.strip().endswith(end_phrase.strip())
    return ok, "ends with the phrase" if ok else f"does not end with {end_phrase!r}"


def _postscript(text: str, postscript_marker: str = "P.S.") -> tuple[bool, str]:
    pattern = r"^\s*" + re.escape(postscript_marker).replace(r"\.", r"\.?\s*") + r".*\S"
    ok = re.search(pattern, text, flags=re.MULTILINE | re.IGNORECASE) is not None
    return ok, f"has a {postscript_marker} line" if ok else f"no line starting with {postscript_marker!r}"


def _json(text: str, schema_keys: Sequence[str] | None = None) -> tuple[bool, str]:
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*\n?(.*?)\n?```", body, flags=re.DOTALL | re.IGNORECASE)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        return False, f"not valid JSON ({str(exc)[:80]})"
    if schema_keys:
        if not isinstance(value, dict):
            return False, "JSON is not an object"
        missing = [k for k in schema_keys if k not in value]
        if missing:
            return False, f"JSON object lacks keys {missing}"
    return True, "valid JSON"


def _quotation(text: str) -> tuple[bool, str]:
    body = text.strip()
    ok = len(body) > 1 and body[0] == '"' and body[-1] == '"'
    return ok, "wrapped in double quotes" if ok else "not wrapped in double quotes"


def _placeholders(text: str, num_placeholders: int) -> tuple[bool, str]:
    n = len(re.findall(r"\[[^\[\]\n]+\]", text))
    return n >= num_placeholders, f"{n} [placeholders] (at least {num_placeholders} asked)"


def _language(text: str, language: str) -> tuple[bool, str]:
    try:
        from langdetect import DetectorFactory, LangDetectException, detect
    except ImportError as exc:
        raise ImportError("language:response_language needs langdetect: pip install 'rlvr[instructions]'") from exc
    DetectorFactory.seed = 0  # langdetect is random unless seeded
    try:
        found = detect(text)
    except LangDetectException:
        return False, "no language detected"
    return found == language, f"detected {found!r} ({language!r} asked)"


@dataclass(frozen=True)
class Constraint:
    """A rule, what it asks in words, its parameters, and a passing and a failing example."""

    check: Callable[..., tuple[bool, str]]
    instruction: str
    params: str
    example_kwargs: Mapping[str, Any]
    passing: str
    failing: str


CONSTRAINTS: dict[str, Constraint] = {
    "length_constraints:number_words": Constraint(
        _word_count, "Answer with {relation} {num_words} words.", "num_words, relation",
        {"num_words": 5, "relation": "at most"}, "Tides turn; gulls cry.", "The tide turns slowly and the gulls cry.",
    ),
    "length_constraints:number_sentences": Constraint(
        _sentence_count, "Your response should contain {relation} {num_sentences} sentences.",
        "num_sentences, relation", {"num_sentences": 2, "relation": "exactly"},
        "The sea is calm. Boats rest.", "The sea is calm.",
    ),
    "length_constraints:number_paragraphs": Constraint(
        _paragraph_count, "There should be {num_paragraphs} paragraphs, separated by the markdown divider ***.",
        "num_paragraphs", {"num_paragraphs": 2}, "First part.\n***\nSecond part.", "First part.\n\nSecond part.",
    ),
    "keywords:existence": Constraint(
        _existence, "Include the keywords {keywords} in the response.", "keywords (list)",
        {"keywords": ["harbor", "lantern"]}, "A lantern glows by the harbor.",
        "A lantern glows.\n```\nharbor\n```",
    ),
    "keywords:forbidden_words": Constraint(
        _forbidden, "Do not include the words {forbidden_words} in the response.", "forbidden_words (list)",
        {"forbidden_words": ["blue"]}, "The sky is grey. `print('blueprint')`", "The sky is Blue.",
    ),
    "keywords:frequency": Constraint(
        _frequency, "The word {keyword} should appear {relation} {frequency} times.", "keyword, frequency, relation",
        {"keyword": "wave", "frequency": 2, "relation": "at least"}, "Wave after wave.", "One wave, then waves.",
    ),
    "keywords:letter_frequency": Constraint(
        _letter_frequency, "The letter {letter} should appear {let_relation} {let_frequency} times.",
        "letter, let_frequency, let_relation", {"letter": "z", "let_frequency": 2, "let_relation": "at least"},
        "Zany zebras.", "A quiet zebra.",
    ),
    "change_case:english_lowercase": Constraint(
        _lowercase, "Your entire response should be in English, and in all lowercase letters.", "-", {},
        "all quiet on the shore.", "All quiet on the shore.",
    ),
    "change_case:english_capital": Constraint(
        _uppercase, "Your entire response should be in English, and in all capital letters.", "-", {},
        "ALL QUIET ON THE SHORE.", "ALL QUIET ON THE Shore.",
    ),
    "punctuation:no_comma": Constraint(
        _no_comma, "Do not use any commas in your response.", "-", {}, "Calm seas and clear skies.",
        "Calm seas, clear skies.",
    ),
    "detectable_format:number_bullet_lists": Constraint(
        _bullets, "Your answer must contain exactly {num_bullets} bullet points in markdown, such as:\n* point",
        "num_bullets", {"num_bullets": 2}, "* sand\n* salt", "* sand\n* salt\n* sun",
    ),
    "detectable_format:number_highlighted_sections": Constraint(
        _highlights, "Highlight at least {num_highlights} sections with markdown, i.e. *highlighted section*.",
        "num_highlights", {"num_highlights": 2}, "The *tide* and the *moon*.", "The *tide* and the moon.",
    ),
    "detectable_format:title": Constraint(
        _title, "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
        "-", {}, "<<Sea Song>>\nWaves.", "Sea Song\nWaves.",
    ),
    "startend:end_checker": Constraint(
        _end_phrase, "Finish your response with this exact phrase: {end_phrase}", "end_phrase",
        {"end_phrase": "Is there anything else I can help with?"},
        "Done. Is there anything else I can help with?", "Is there anything else I can help with? Done.",
    ),
    "detectable_content:postscript": Constraint(
        _postscript, "At the end of your response, please explicitly add a postscript starting with {postscript_marker}",
        "postscript_marker", {"postscript_marker": "P.S."}, "Hello.\nP.S. See you soon.", "Hello. See you soon.",
    ),
    "detectable_format:json_format": Constraint(
        _json, "Entire output should be wrapped in JSON format.", "schema_keys (optional list)", {},
        '```json\n{"sea": "calm"}\n```', "sea: calm",
    ),
    "startend:quotation": Constraint(
        _quotation, "Wrap your entire response with double quotation marks.", "-", {}, '"The sea is calm."',
        'The "sea" is calm.',
    ),
    "detectable_content:number_placeholders": Constraint(
        _placeholders, "The response must contain at least {num_placeholders} placeholders in square brackets, "
        "such as [address].", "num_placeholders", {"num_placeholders": 2}, "Meet at [place] on [date].",
        "Meet at the pier on [date].",
    ),
    "language:response_language": Constraint(
        _language, "Your ENTIRE response should be in {language_name} language, no other language is allowed.",
        "language (ISO 639-1 code)", {"language": "de"},
        "Das Meer ist heute ruhig und die Boote liegen still im Hafen.",
        "The sea is calm today and the boats rest quietly in the harbor.",
    ),
}  # fmt: skip


def check_constraint(text: str, constraint_id: str, kwargs: Mapping[str, Any] | None = None) -> tuple[bool, str]:
    """Whether ``text`` satisfies one constraint, and a line that says why."""
    if constraint_id not in CONSTRAINTS:
        raise KeyError(f"unknown constraint {constraint_id!r}; known: {', '.join(sorted(CONSTRAINTS))}")
    args = {k: v for k, v in (kwargs or {}).items() if v is not None and k != "language_name"}
    return CONSTRAINTS[constraint_id].check(text, **args)


class InstructionFollowing:
    """Score a completion against the problem's constraints.

    ``problem.reference`` is a list of ``{"id": constraint id, "kwargs": {...}}``.

    Args:
        mode: ``"strict"`` (1 only if every constraint holds) or ``"loose"`` (the
            fraction that holds).
        max_chars: longer completions score 0 without checking (the regexes are
            linear, this only bounds the cost).

    ``details["constraints"]`` lists each constraint, whether it held and why. An
    unknown constraint id or bad parameters make the verdict UNSCORABLE.
    """

    name = "instructions"

    def __init__(self, mode: str = "strict", max_chars: int = 200_000) -> None:
        if mode not in ("strict", "loose"):
            raise ValueError(f"mode must be 'strict' or 'loose', got {mode!r}")
        self.mode, self.max_chars = mode, int(max_chars)

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Check ``completion`` against every constraint in ``problem.reference``.

        Returns:
            A correct verdict when every constraint holds; otherwise an incorrect one
            scored by ``mode``; unscorable for a malformed reference or constraint.
            ``details["constraints"]`` lists each constraint's result.
        """
        constraints = problem.reference
        if not isinstance(constraints, Sequence) or isinstance(constraints, str) or not constraints:
            return Verdict.unscorable("the reference is not a non-empty list of constraints")
        if len(completion) > self.max_chars:
            return Verdict.incorrect(f"completion longer than {self.max_chars} characters")
        results = []
        for item in constraints:
            try:
                held, why = check_constraint(completion, item["id"], item.get("kwargs"))
            except (KeyError, TypeError, ValueError) as exc:
                return Verdict.unscorable(f"bad constraint {item!r:.120}: {exc}")
            results.append({"id": item["id"], "held": held, "why": why})
        held = sum(r["held"] for r in results)
        score = held / len(results) if self.mode == "loose" else float(held == len(results))
        if held == len(results):
            return Verdict.correct(constraints=results)
        return Verdict(
            score, "incorrect", {"reason": f"{len(results) - held} of {len(results)} not met", "constraints": results}
        )
