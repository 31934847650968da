"""Reading a program out of a completion, in linear time and bounded memory.

Everything here runs in the trainer's process on text a policy wrote, so it
scans each line once (no regular expression that can backtrack over the whole
text) and never parses the program: ``ast`` on adversarial input can raise
``MemoryError`` or ``RecursionError``, and a completion must never be able to
stop the batch it is in.
"""

from __future__ import annotations

import re

__all__ = ["EXTRACT_RULES", "PYTHON_TAGS", "defines", "extract_program", "fenced_blocks"]

EXTRACT_RULES = ("auto", "last_block", "whole")
PYTHON_TAGS = frozenset({"", "python", "py", "python3"})
_TAG = re.compile(r"[\w+-]*")  # anchored at the fence's info string: one pass, no backtracking


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every closed fenced code block as ``(tag, body)``, in order; linear in ``len(text)``.

    A fence is a line starting with three backticks; the tag is the word after
    it (lower-cased). The body keeps its lines' newlines. A block left open at
    the end of the text is not a block.
    """
    blocks: list[tuple[str, str]] = []
    tag: str | None = None
    body: list[str] = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("```"):
            if tag is not None:
                body.append(line)
        elif tag is None:
            tag = _TAG.match(line[3:].lstrip(" \t")).group().lower()
            body = []
        else:
            blocks.append((tag, "".join(body)))
            tag = None
    return blocks


def extract_program(completion: str, rule: str = "auto") -> str | None:
    """The program in ``completion``.

    ``"last_block"``: the last fenced code block tagged python/py/python3 or
    untagged (None if there is none); ``"whole"``: the whole text; ``"auto"``:
    the last block if there is one, else the whole text.

    Raises:
        ValueError: an unknown rule.
    """
    if rule not in EXTRACT_RULES:
        raise ValueError(f"rule must be one of {EXTRACT_RULES}, got {rule!r}")
    if rule == "whole":
        return completion
    blocks = [body for tag, body in fenced_blocks(completion) if tag in PYTHON_TAGS]
    if blocks:
        return blocks[-1]
    return completion if rule == "auto" else None


def defines(program: str, name: str) -> bool:
    """Whether a line of ``program`` starts a top-level ``def name(`` (or ``async def``); no parsing."""
    pattern = re.compile(r"(?:async[ \t]+)?def[ \t]+" + re.escape(name) + r"[ \t]*\(")
    return any(pattern.match(line) for line in program.splitlines())
