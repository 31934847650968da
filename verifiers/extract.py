"""Answer extraction shared by the built-in verifiers.

All functions run in time linear in the input length and never raise on any
string: unbalanced braces or tags simply yield no answer.
"""

from __future__ import annotations

import re

__all__ = ["answer_tags", "boxed_contents", "last_line"]

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def boxed_contents(text: str) -> list[str] | None:
    """The contents of every ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces kept.

    Returns ``None`` when a box is opened but its braces never balance, so callers
    can tell "no box" (``[]``) from "a broken box". Escaped braces ``\\{``/``\\}``
    inside a box do not count towards the balance.
    """
    out: list[str] = []
    pos = 0
    while (match := _BOXED.search(text, pos)) is not None:
        depth, i, start = 1, match.end(), match.end()
        while i < len(text) and depth:
            ch = text[i]
            if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
                i += 2
                continue
            depth += ch == "{"
            depth -= ch == "}"
            i += 1
        if depth:
            return None
        out.append(text[start : i - 1])
        pos = i
    return out


def answer_tags(text: str) -> list[str]:
    """The contents of every ``<answer>...</answer>`` pair, in order."""
    return _ANSWER_TAG.findall(text)


def last_line(text: str) -> str | None:
    """The last non-blank line, stripped; ``None`` for blank text."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return None
