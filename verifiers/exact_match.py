"""Exact match after normalisation, against one or several gold answers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from rlvr.types import Problem, Verdict
from rlvr.verifiers.extract import answer_tags, boxed_contents, last_line

__all__ = ["ExactMatch", "normalize"]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def normalize(
    text: str,
    *,
    case_sensitive: bool = False,
    ignore_punctuation: bool = True,
    ignore_articles: bool = False,
) -> str:
    """Normalise ``text`` for comparison.

    NFKC-normalise, then optionally casefold, drop punctuation and English
    articles, and collapse runs of whitespace (always).

    Punctuation is every Unicode ``P*`` character except a hyphen-minus before a
    digit (a sign) and a point or comma between digits, so "42." matches "42" but
    "-3" does not match "3" and "3.5" does not match "35".
    """
    text = unicodedata.normalize("NFKC", text)
    if not case_sensitive:
        text = text.casefold()
    if ignore_punctuation:
        text = "".join(
            ch for i, ch in enumerate(text) if not unicodedata.category(ch).startswith("P") or _numeric_mark(text, i)
        )
    if ignore_articles:
        text = _ARTICLES.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def _numeric_mark(text: str, i: int) -> bool:
    """A sign before a digit, or a decimal point / comma between digits."""
    ch, nxt = text[i], text[i + 1 : i + 2]
    prev = text[i - 1 : i]
    if ch == "-" and nxt.isdigit():
        return True
    return ch in ".," and prev.isdigit() and nxt.isdigit()


class ExactMatch:
    r"""1 when the extracted answer equals a gold answer after :func:`normalize`.

    Args:
        extract: where the answer is read from: ``"full"`` (the whole completion),
            ``"boxed"`` (the last ``\boxed{}``), ``"answer_tag"`` (the last
            ``<answer>...</answer>``) or ``"last_line"``. A completion with no such
            answer is incorrect; there is no fallback to the whole text.
        case_sensitive, ignore_punctuation, ignore_articles: see :func:`normalize`.
        reject_multiple: with ``boxed`` / ``answer_tag``, several answers that
            differ after normalisation score 0 (answer spraying is not rewarded).

    The reference is a string (or number), or a list of acceptable answers.
    """

    name = "exact-match"
    _EXTRACTORS = ("full", "boxed", "answer_tag", "last_line")

    def __init__(
        self,
        extract: str = "full",
        case_sensitive: bool = False,
        ignore_punctuation: bool = True,
        ignore_articles: bool = False,
        reject_multiple: bool = True,
    ) -> None:
        if extract not in self._EXTRACTORS:
            raise ValueError(f"extract must be one of {self._EXTRACTORS}, got {extract!r}")
        self.extract = extract
        self.reject_multiple = bool(reject_multiple)
        self.options = dict(
            case_sensitive=case_sensitive, ignore_punctuation=ignore_punctuation, ignore_articles=ignore_articles
        )

    def _answers(self, completion: str) -> list[str]:
        if self.extract == "full":
            return [completion]
        if self.extract == "boxed":
            return boxed_contents(completion) or []
        if self.extract == "answer_tag":
            return answer_tags(completion)
        line = last_line(completion)
        return [line] if line is not None else []

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Compare the answer extracted from ``completion`` with the gold answers of ``problem``.

        Returns:
            A correct verdict when the (last) extracted answer matches a gold answer after
            normalisation; incorrect when no answer is found, none matches, or several
            different answers are given with ``reject_multiple``; unscorable when the
            reference holds no gold answer.
        """
        golds = _golds(problem.reference)
        if not golds:
            return Verdict.unscorable("the reference holds no gold answer")
        answers = self._answers(completion)
        if not answers:
            return Verdict.incorrect(f"no answer found ({self.extract})")
        distinct = list(dict.fromkeys(normalize(a, **self.options) for a in answers))
        if self.reject_multiple and len(distinct) > 1:
            return Verdict.incorrect(f"{len(distinct)} different answers given", answers=distinct[:8])
        answer = answers[-1]
        got = normalize(answer, **self.options)
        wanted = [normalize(g, **self.options) for g in golds]
        if got in wanted:
            return Verdict.correct(extracted=answer[:200], normalized=got[:200])
        return Verdict.incorrect("no gold answer matches", extracted=answer[:200], normalized=got[:200])


def _golds(reference: object) -> list[str]:
    if isinstance(reference, str | int | float):
        return [str(reference)]
    if isinstance(reference, Iterable):
        return [str(r) for r in reference if isinstance(r, str | int | float)]
    return []
