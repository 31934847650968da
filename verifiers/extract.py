"""Answer extraction shared by the built-in verifiers.

All functions run in time linear in the input length and never raise on any
string: unbalanced braces or tags simply yield no answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["RULES", "answer_tags", "boxed_contents", "extract_answers", "last_line"]

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def boxed_contents(text: str) -> list[str] | None:
    r"""The contents of every ``\boxed{...}`` (or ``\fbox{...}``), nested braces kept.

    Returns ``None`` when a box is opened but its braces never balance, so callers
    can tell "no box" (``[]``) from "a broken box". Escaped braces ``\{``/``\}``
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


# -- answer extraction rules (used by the math verifier) --------------------------------
RULES = ("boxed", "answer_tag", "gsm8k", "answer_is", "bold", "last_math", "bracket", "last_line", "whole")
_GSM8K = re.compile(r"####\s*([^\n]+)")
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", re.DOTALL)
_BRACKET = re.compile(r"\[([^\[\]]+)\]")
_CHAT_LEAK = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end_of_text)\|>.*", re.DOTALL)
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|the\s+answer)\s*(?:is|:|=)\s*:?\s*(.+?)\s*(?:\.\s|\.?$|\n)", re.IGNORECASE | re.MULTILINE
)
MAX_LAST_LINE = 64


def extract_answers(text: str, rules: Sequence[str]) -> tuple[str, list[str]] | None:
    r"""``(rule, answers)`` from the first rule in ``rules`` that finds any; ``None`` if none does.

    boxed: every ``\boxed{}``; answer_tag: every ``<answer>``; gsm8k: ``#### X``;
    answer_is: the last "the answer is X" / "final answer: X"; bold: the last
    ``**X**``; last_math: the last ``$...$`` / ``\[...\]`` span; bracket: the last
    ``[X]``; last_line: a short (<= 64 characters) final line; whole: the entire text
    (for bare answers). ``bold``, ``last_math`` and ``bracket`` read conventions some
    graders use; they are off unless asked for, because they read text that is not
    marked as *the* answer. Chat-template tokens leaked into the text (and what
    follows them) are cut first.
    """
    text = _CHAT_LEAK.sub("", text)
    for rule in rules:
        if rule == "boxed":
            found = boxed_contents(text) or []
        elif rule == "answer_tag":
            found = answer_tags(text)
        elif rule == "gsm8k":
            found = _GSM8K.findall(text)
        elif rule == "answer_is":
            found = _ANSWER_IS.findall(text)[-1:]
            for _ in range(3):  # "Final Answer: The final answer is X" holds its answer twice
                inner = _ANSWER_IS.findall(found[0] + "\n") if found else []
                if not inner or len(inner[-1]) >= len(found[0]):
                    break
                found = inner[-1:]
        elif rule == "bold":
            found = _BOLD.findall(text)[-1:]
        elif rule == "last_math":
            found = ["".join(groups) for groups in _MATH_SPAN.findall(text)][-1:]
        elif rule == "bracket":
            found = _BRACKET.findall(text)[-1:]
        elif rule == "last_line":
            line = last_line(text)
            if line is not None and len(line) > MAX_LAST_LINE:  # a long line may still end on "is X"
                line = line.rsplit(" is ", 1)[-1] if " is " in line else None
            found = [line] if line is not None and len(line) <= MAX_LAST_LINE else []
        elif rule == "whole":
            found = [text] if text.strip() else []
        else:
            raise ValueError(f"unknown extraction rule {rule!r}; rules are {RULES}")
        found = [_unwrap(a) for a in found if a.strip()]
        if rule in ("answer_is", "bold", "last_line"):
            found = [_final_value(a) for a in found]
        found = [a for a in found if a]
        if found:
            return rule, found
    return None


_WORDY = re.compile(r"[^\W\d_]{3,}\s+[^\W\d_]{2,}")  # two words in a row: a sentence, not a formula
_NUMBER_OR_MATH = re.compile(r"\$[^$]+\$|-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _final_value(answer: str) -> str:
    """The value a sentence ends on: ``The largest $n$ is 34`` -> ``34``.

    An answer that is not a sentence is returned as it is.
    """
    if not _WORDY.search(re.sub(r"\$[^$]*\$|\\[a-zA-Z]+", " ", answer)):
        return answer
    for marker in (" is ", " = ", ": "):
        tail = answer.rsplit(marker, 1)[-1] if marker in answer else ""
        if tail and not _WORDY.search(tail) and re.search(r"[\d$\\]", tail):
            return _unwrap(tail)
    values = _NUMBER_OR_MATH.findall(answer)
    return _unwrap(values[-1]) if values else ""


def _unwrap(answer: str) -> str:
    r"""Strip what surrounds an answer but is not part of it.

    That is whitespace, a trailing period, enclosing ``$...$`` / ``\(...\)`` / ``\[...\]``,
    and ``[...]`` around an answer with no top-level comma (with one, ``[-2, 7]`` is an
    interval).
    """
    for _ in range(3):
        answer = answer.strip().rstrip(".").strip()
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if answer.startswith(left) and answer.endswith(right) and len(answer) > len(left) + len(right):
                answer = answer[len(left) : -len(right)].strip()
        if answer.startswith("[") and answer.endswith("]") and "," not in answer:
            answer = answer[1:-1]
    return answer


_GOLD_CHOICE = re.compile(r"^\(?([A-E])\)?(?:[\s.:]|$)|\(([A-E])\)")
# A choice letter stands alone: not inside a word, a LaTeX command or a formula (\mathrm{E}*2).
_STANDALONE_LETTER = re.compile(r"(?<![A-Za-z\\{_^])([A-E])(?![A-Za-z}*^_=+/])")
_ANSWER_WORD = re.compile(r"answer|réponse|respuesta|antwort|答案", re.IGNORECASE)


def _choice_letter(reference: str) -> str | None:
    """The letter of a multiple-choice reference: ``C``, ``(C)``, ``C Cecile``, ``... (C) Cecile``."""
    text = reference.strip()
    if len(text) == 1:
        return text if text in "ABCDE" else None
    match = _GOLD_CHOICE.search(text)
    if match is None or (match.group(1) and len(text.split("\n")[0].split()) > 3):
        return None
    return match.group(1) or match.group(2)


_FORMATTING = re.compile(r"\\(?:mathrm|text|textbf|mathbf|textit)\{([^{}]*)\}")


def _chosen_letter(completion: str) -> str | None:
    completion = _FORMATTING.sub(r"\1", completion)  # \textbf{A} is the letter A; \mathrm{E}*2 stays a formula
    after = _ANSWER_WORD.search(completion)
    scope = completion[after.end() :] if after else completion
    match = _STANDALONE_LETTER.search(scope) or _STANDALONE_LETTER.search(completion)
    return match.group(1) if match else None


def _parts(reference: str) -> int:
    """Top-level comma- or semicolon-separated parts of a reference (``{1,2,3}`` -> 3)."""
    text = _unwrap(reference)
    for left, right in (("\\{", "\\}"), ("{", "}")):
        if text.startswith(left) and text.endswith(right):
            text = text[len(left) : -len(right)]
    depth, parts = 0, 1
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        parts += depth == 0 and ch in ",;"
    return parts
