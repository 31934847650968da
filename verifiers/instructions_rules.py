r"""The rules behind IFEval's 25 instruction ids, as its reference checker defines them.

Each rule is ``rule(text, **kwargs) -> (holds, why)`` over validated arguments
(:mod:`rlvr.verifiers.instructions` validates them). Where rlvr's hardened rule set
is stricter, the stricter rule is a separate ``hardened_*`` function; the
differences are listed in :data:`HARDENED_DIFFERENCES`.

Deviations from the reference that hold in both rule sets: keywords, the
postscript marker and the section splitter are matched as literal text (the
reference uses them as regular expressions, so a ``.`` in one matches any
character); arguments the reference would replace by random values (a negative
count, a letter that is not a letter) are errors instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from rlvr.verifiers.instructions_text import (
    compare,
    count_capital_words,
    count_sentences,
    count_words,
    detect_language,
)

CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

HARDENED_DIFFERENCES = {
    "language": "langdetect finding no language fails the rule (IFEval passes it: fail-open)",
    "keywords": "whole words only, and text in fenced code blocks does not count",
    "bullets": "a bullet is '* ' or '- ' followed by text (IFEval counts '*italic*' lines and '---' rules)",
    "paragraphs": "the *** divider must stand on its own line (IFEval splits at *** anywhere)",
    "postscript": "the marker must start a line and be followed by text (IFEval finds it anywhere)",
    "end_checker": "the ending is case-sensitive and a closing quote is not skipped",
    "json": "the value must be an object or an array (IFEval accepts a bare number or string)",
    "quotation": "something must stand between the quotes",
    "placeholders": "a placeholder is a non-empty [name] on one line (IFEval counts '[]')",
    "constrained_response": "exactly one of the options may appear (IFEval passes a text naming all three)",
    "no_comma": "the full-width comma (，) counts too",
}

_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)


def _count_rule(name: str, n: int, relation: str, target: int) -> tuple[bool, str]:
    return compare(n, relation, target), f"{n} {name} ({relation} {target} asked)"


def number_words(text: str, num_words: int, relation: str) -> tuple[bool, str]:
    r"""Words (``\w+`` runs) in ``relation`` to ``num_words``."""
    return _count_rule("words", count_words(text), relation, num_words)


def number_sentences(text: str, num_sentences: int, relation: str) -> tuple[bool, str]:
    """Punkt sentences in ``relation`` to ``num_sentences``."""
    return _count_rule("sentences", count_sentences(text), relation, num_sentences)


def _split_paragraphs(text: str, divider: re.Pattern[str]) -> tuple[int, bool]:
    parts = divider.split(text)
    count, inner_empty = len(parts), False
    for i, part in enumerate(parts):
        if not part.strip():
            if i in (0, len(parts) - 1):
                count -= 1
            else:
                inner_empty = True
    return count, inner_empty


def _paragraphs(text: str, num_paragraphs: int, divider: re.Pattern[str]) -> tuple[bool, str]:
    count, inner_empty = _split_paragraphs(text, divider)
    if inner_empty:
        return False, "an empty paragraph between two *** dividers"
    return count == num_paragraphs, f"{count} paragraphs separated by *** ({num_paragraphs} asked)"


def number_paragraphs(text: str, num_paragraphs: int) -> tuple[bool, str]:
    """Exactly ``num_paragraphs`` non-empty parts between ``***`` dividers (anywhere in the text)."""
    return _paragraphs(text, num_paragraphs, re.compile(r"\s?\*\*\*\s?"))


def hardened_number_paragraphs(text: str, num_paragraphs: int) -> tuple[bool, str]:
    """As :func:`number_paragraphs`, with each ``***`` divider on a line of its own."""
    return _paragraphs(text, num_paragraphs, re.compile(r"^[ \t]*\*\*\*[ \t]*$", re.MULTILINE))


def _first_word(paragraph: str) -> str:
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    return re.split(r"[.,?!'\"]", word, maxsplit=1)[0].lower()


def nth_paragraph_first_word(text: str, num_paragraphs: int, nth_paragraph: int, first_word: str) -> tuple[bool, str]:
    r"""``num_paragraphs`` paragraphs split by blank lines (``\n\n``); paragraph ``nth_paragraph`` starts with ``first_word``.

    As in the reference, the count skips empty parts but the ``nth`` index does not,
    and the first word is read up to the first ``. , ? ! ' "``, lowercased.
    """
    parts = text.split("\n\n")
    count = sum(1 for p in parts if p.strip())
    if nth_paragraph > count or not parts[nth_paragraph - 1].strip():
        return False, f"no paragraph {nth_paragraph} ({count} paragraphs)"
    word = _first_word(parts[nth_paragraph - 1].strip())
    ok = count == num_paragraphs and word == first_word.lower()
    return ok, f"{count} paragraphs ({num_paragraphs} asked); paragraph {nth_paragraph} starts with {word!r}"


def _literal_hits(text: str, keyword: str, whole_words: bool) -> int:
    pattern = re.escape(keyword)
    if whole_words:
        pattern = r"(?<!\w)" + pattern + r"(?!\w)"
    return len(re.findall(pattern, text, flags=re.IGNORECASE))


def existence(text: str, keywords: Sequence[str]) -> tuple[bool, str]:
    """Every keyword occurs, case-insensitively, anywhere (``harbor`` in ``harbors`` counts)."""
    missing = [k for k in keywords if _literal_hits(text, k, whole_words=False) == 0]
    return not missing, f"missing {missing}" if missing else "all keywords present"


def hardened_existence(text: str, keywords: Sequence[str]) -> tuple[bool, str]:
    """Every keyword occurs as a whole word in the prose (outside fenced code blocks)."""
    prose = _FENCE.sub(" ", text)
    missing = [k for k in keywords if _literal_hits(prose, k.strip(), whole_words=True) == 0]
    return not missing, f"missing {missing} (whole words, outside code)" if missing else "all keywords present"


def forbidden_words(text: str, forbidden_words: Sequence[str]) -> tuple[bool, str]:
    r"""No forbidden word occurs between word boundaries (``\b``), case-insensitively."""
    used = [w for w in forbidden_words if re.search(r"\b" + re.escape(w) + r"\b", text, flags=re.IGNORECASE)]
    return not used, f"uses {used}" if used else "no forbidden word"


def frequency(text: str, keyword: str, frequency: int, relation: str) -> tuple[bool, str]:
    """Occurrences of ``keyword`` (stripped; anywhere, case-insensitively) in ``relation`` to ``frequency``."""
    return _count_rule(f"times {keyword.strip()!r}", _literal_hits(text, keyword.strip(), False), relation, frequency)


def hardened_frequency(text: str, keyword: str, frequency: int, relation: str) -> tuple[bool, str]:
    """As :func:`frequency`, counting whole words in the prose only (outside fenced code blocks)."""
    n = _literal_hits(_FENCE.sub(" ", text), keyword.strip(), whole_words=True)
    return _count_rule(f"times {keyword.strip()!r} as a word", n, relation, frequency)


def letter_frequency(text: str, letter: str, let_frequency: int, let_relation: str) -> tuple[bool, str]:
    """Occurrences of ``letter`` (either case) in ``let_relation`` to ``let_frequency``."""
    return _count_rule(f"times {letter!r}", text.lower().count(letter.lower()), let_relation, let_frequency)


def response_language(text: str, language: str, fail_open: bool = True) -> tuple[bool, str]:
    """Whether langdetect finds ``language``; finding none passes, as in the reference."""
    found = detect_language(text)
    if found is None:
        return fail_open, "no language detected"
    return found == language, f"detected {found!r} ({language!r} asked)"


def hardened_response_language(text: str, language: str) -> tuple[bool, str]:
    """As :func:`response_language`, but finding no language fails."""
    return response_language(text, language, fail_open=False)


def _english_case(text: str, is_case: bool, case: str, fail_open: bool) -> tuple[bool, str]:
    if not is_case:
        return False, f"not all {case}"
    found = detect_language(text)
    if found is None:
        return fail_open, f"all {case}; no language detected"
    return found == "en", f"all {case}; detected {found!r} ('en' asked)"


def english_lowercase(text: str) -> tuple[bool, str]:
    """``str.islower()`` and langdetect finds English (finding none passes, as in the reference)."""
    return _english_case(text, text.islower(), "lowercase", fail_open=True)


def hardened_english_lowercase(text: str) -> tuple[bool, str]:
    """As :func:`english_lowercase`, but finding no language fails."""
    return _english_case(text, text.islower(), "lowercase", fail_open=False)


def english_capital(text: str) -> tuple[bool, str]:
    """``str.isupper()`` and langdetect finds English (finding none passes, as in the reference)."""
    return _english_case(text, text.isupper(), "capitals", fail_open=True)


def hardened_english_capital(text: str) -> tuple[bool, str]:
    """As :func:`english_capital`, but finding no language fails."""
    return _english_case(text, text.isupper(), "capitals", fail_open=False)


def capital_word_frequency(text: str, capital_frequency: int, capital_relation: str) -> tuple[bool, str]:
    """All-capital words in ``capital_relation`` to ``capital_frequency``."""
    return _count_rule("all-capital words", count_capital_words(text), capital_relation, capital_frequency)


def no_comma(text: str) -> tuple[bool, str]:
    """No ASCII comma."""
    n = text.count(",")
    return n == 0, f"{n} commas"


def hardened_no_comma(text: str) -> tuple[bool, str]:
    """No comma, ASCII or full-width."""
    n = text.count(",") + text.count("，")
    return n == 0, f"{n} commas"


def number_bullet_lists(text: str, num_bullets: int) -> tuple[bool, str]:
    """Exactly ``num_bullets`` lines starting with ``*`` (not ``**``) or ``-``, as the reference counts them."""
    n = len(re.findall(r"^\s*\*[^\*].*$", text, flags=re.MULTILINE))
    n += len(re.findall(r"^\s*-.*$", text, flags=re.MULTILINE))
    return n == num_bullets, f"{n} bullet points ({num_bullets} asked)"


def hardened_number_bullet_lists(text: str, num_bullets: int) -> tuple[bool, str]:
    """Exactly ``num_bullets`` lines of the form ``* text`` or ``- text``."""
    n = len(re.findall(r"^[ \t]*[*-][ \t]+\S", text, flags=re.MULTILINE))
    return n == num_bullets, f"{n} bullet points ('* text' or '- text'; {num_bullets} asked)"


def number_highlighted_sections(text: str, num_highlights: int) -> tuple[bool, str]:
    """At least ``num_highlights`` non-empty ``*...*`` or ``**...**`` spans on one line."""
    single = [s for s in re.findall(r"\*[^\n\*]*\*", text) if s.strip("*").strip()]
    double = [s for s in re.findall(r"\*\*[^\n\*]*\*\*", text) if s[2:-2].strip()]
    n = len(single) + len(double)
    return n >= num_highlights, f"{n} highlighted sections (at least {num_highlights} asked)"


def multiple_sections(text: str, section_spliter: str, num_sections: int) -> tuple[bool, str]:
    """At least ``num_sections`` section markers ``<spliter> <number>`` (case-sensitive, anywhere)."""
    n = len(re.split(r"\s?" + re.escape(section_spliter.strip()) + r"\s?\d+\s?", text)) - 1
    return n >= num_sections, f"{n} '{section_spliter.strip()} N' sections (at least {num_sections} asked)"


def title(text: str) -> tuple[bool, str]:
    """A ``<<title>>`` with some text inside, on one line."""
    titles = [t for t in re.findall(r"<<[^\n]+>>", text) if t.lstrip("<").rstrip(">").strip()]
    return bool(titles), f"title {titles[0]!r}" if titles else "no <<title>>"


def end_checker(text: str, end_phrase: str) -> tuple[bool, str]:
    """Ends (after stripping whitespace and double quotes) with ``end_phrase``, case-insensitively."""
    ok = text.strip().strip('"').lower().endswith(end_phrase.strip().lower())
    return ok, "ends with the phrase" if ok else f"does not end with {end_phrase.strip()!r}"


def hardened_end_checker(text: str, end_phrase: str) -> tuple[bool, str]:
    """Ends (after stripping whitespace) with exactly ``end_phrase``."""
    ok = text.strip().endswith(end_phrase.strip())
    return ok, "ends with the exact phrase" if ok else f"does not end with exactly {end_phrase.strip()!r}"


def _postscript_pattern(marker: str) -> str:
    if marker == "P.P.S":
        return r"p\.\s?p\.\s?s"
    if marker == "P.S.":
        return r"p\.\s?s\."
    return re.escape(marker.lower())


def postscript(text: str, postscript_marker: str) -> tuple[bool, str]:
    """The marker (``P.S.`` also as ``p. s.``) occurs anywhere, case-insensitively."""
    ok = re.search(_postscript_pattern(postscript_marker.strip()), text.lower()) is not None
    return ok, f"has {postscript_marker.strip()}" if ok else f"no {postscript_marker.strip()!r}"


def hardened_postscript(text: str, postscript_marker: str) -> tuple[bool, str]:
    """A line starts with the marker, with text after it on that line."""
    pattern = r"^[ \t]*" + _postscript_pattern(postscript_marker.strip()) + r"[^\n]*?\w"
    ok = re.search(pattern, text.lower(), flags=re.MULTILINE) is not None
    return ok, f"has a {postscript_marker.strip()} line" if ok else f"no line starting {postscript_marker.strip()!r}"


def _json_body(text: str) -> str:
    body = text.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        if body.startswith(prefix):
            body = body[len(prefix) :]
            break
    return body.removesuffix("```").strip()


def json_format(text: str, schema_keys: Sequence[str] = ()) -> tuple[bool, str]:
    """The text, less a fence of backticks, is any JSON value (an object with ``schema_keys`` if given).

    ``schema_keys`` is rlvr's addition; IFEval's rule takes no argument.
    """
    try:
        value = json.loads(_json_body(text))
    except ValueError as exc:
        return False, f"not valid JSON ({str(exc)[:80]})"
    missing = [k for k in schema_keys if not isinstance(value, dict) or k not in value]
    return not missing, f"JSON object lacks keys {missing}" if missing else "valid JSON"


def hardened_json_format(text: str, schema_keys: Sequence[str] = ()) -> tuple[bool, str]:
    """As :func:`json_format`, and the value is an object or array (an object with ``schema_keys`` if given)."""
    try:
        value = json.loads(_json_body(text))
    except ValueError as exc:
        return False, f"not valid JSON ({str(exc)[:80]})"
    if not isinstance(value, dict | list):
        return False, "JSON is not an object or an array"
    missing = [k for k in schema_keys if not isinstance(value, dict) or k not in value]
    return not missing, f"JSON object lacks keys {missing}" if missing else "valid JSON"


def quotation(text: str) -> tuple[bool, str]:
    """Wrapped (after stripping whitespace) in double quotes."""
    body = text.strip()
    ok = len(body) > 1 and body[0] == '"' and body[-1] == '"'
    return ok, "wrapped in double quotes" if ok else "not wrapped in double quotes"


def hardened_quotation(text: str) -> tuple[bool, str]:
    """As :func:`quotation`, with text between the quotes."""
    body = text.strip()
    ok = len(body) > 2 and body[0] == '"' and body[-1] == '"' and bool(body[1:-1].strip())
    return ok, "wrapped in double quotes" if ok else "not wrapped in double quotes around some text"


def number_placeholders(text: str, num_placeholders: int) -> tuple[bool, str]:
    """At least ``num_placeholders`` ``[...]`` spans (``[]`` counts, as in the reference)."""
    n = len(re.findall(r"\[.*?\]", text))
    return n >= num_placeholders, f"{n} [placeholders] (at least {num_placeholders} asked)"


def hardened_number_placeholders(text: str, num_placeholders: int) -> tuple[bool, str]:
    """At least ``num_placeholders`` non-empty ``[name]`` spans on one line."""
    n = len([p for p in re.findall(r"\[([^\[\]\n]*)\]", text) if p.strip()])
    return n >= num_placeholders, f"{n} non-empty [placeholders] (at least {num_placeholders} asked)"


def constrained_response(text: str) -> tuple[bool, str]:
    """One of IFEval's three answer options occurs in the text."""
    found = [o for o in CONSTRAINED_RESPONSE_OPTIONS if o in text.strip()]
    return bool(found), f"has {found[0]!r}" if found else "none of the options"


def hardened_constrained_response(text: str) -> tuple[bool, str]:
    """Exactly one of the options occurs, exactly once (hedging with two fails)."""
    found = [o for o in CONSTRAINED_RESPONSE_OPTIONS for _ in range(text.count(o))]
    return len(found) == 1, f"options found: {found}"


def two_responses(text: str) -> tuple[bool, str]:
    """Two different non-empty responses separated by ``******`` (empty ends allowed)."""
    parts = text.split("******")
    responses = []
    for i, part in enumerate(parts):
        if part.strip():
            responses.append(part.strip())
        elif i not in (0, len(parts) - 1):
            return False, "an empty response between two ****** dividers"
    ok = len(responses) == 2 and responses[0] != responses[1]
    return ok, f"{len(responses)} responses" + (" (identical)" if len(responses) == 2 and not ok else "")


def repeat_prompt(text: str, prompt_to_repeat: str) -> tuple[bool, str]:
    """Starts with the request, case-insensitively (whitespace at both ends ignored)."""
    ok = text.strip().lower().startswith(prompt_to_repeat.strip().lower())
    return ok, "starts with the request" if ok else "does not start with the request word for word"
