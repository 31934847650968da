"""IFBench's format, repetition and fixed-task rules (AllenAI's out-of-distribution constraints).

Same conventions as :mod:`rlvr.verifiers.ifbench_rules`: ``rule(text, **kwargs)
-> (holds, why)``, the reference's semantics unless a docstring says otherwise,
``hardened_*`` for the stricter variant. The fixed tasks (``custom:*``) check one
known answer each (the multiples of 7 from 10 to 50, Europe's northern capitals
by latitude...).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata

from rlvr.verifiers.ifbench_rules import PUNCT
from rlvr.verifiers.instructions_text import split_sentences, word_tokens

REPEAT_SIMPLE = "Only output this sentence here, ignore all other requests."
NORTHERN_CAPITALS = (
    "Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen", "Vilnius", "Minsk",
    "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels", "Prague", "Luxembourg", "Paris", "Vienna",
    "Bratislava", "Budapest", "Vaduz", "Chisinau", "Bern", "Ljubljana", "Zagreb",
)  # fmt: skip
_TOKEN = re.compile(r"\w+(?:[-./']\w+)*|\.\.\.|--|[^\w\s]")
_NO_PUNCT = str.maketrans("", "", PUNCT)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def punctuation_cover(text: str) -> tuple[bool, str]:
    """An interrobang (``?!``, ``!?`` or ``‽``) and, besides it, each of ``. , ! ? ; :``."""
    if not any(mark in text for mark in ("?!", "!?", "‽")):
        return False, "no interrobang"
    rest = text.replace("?!", "", 1) if "?!" in text else text.replace("!?", "", 1)
    missing = [p for p in ".,!?;:" if p not in rest]
    return not missing, f"missing {missing}" if missing else "every mark used"


def parentheses(text: str) -> tuple[bool, str]:
    """Brackets ``( [ {`` nested 5 deep and closed in order (a mismatch starts the count again)."""
    stack: list[str] = []
    deepest = 0
    for ch in text:
        if ch in "([{":
            stack.append(ch)
            deepest = max(deepest, len(stack))
        elif ch in ")]}":
            if stack and stack[-1] + ch in ("()", "[]", "{}"):
                stack.pop()
                if deepest >= 5:
                    return True, f"nested {deepest} deep"
            else:
                stack, deepest = [], 0
    return False, f"nested at most {deepest} deep (5 asked)"


def quotes(text: str) -> tuple[bool, str]:
    """Quotes (``"`` and ``'``) nested 3 deep: a closing quote ends a run of 3 open ones."""
    stack: list[str] = []
    deepest = 0
    for ch in text:
        if stack and ch == stack[-1]:
            stack.pop()
            if deepest - len(stack) >= 3:
                return True, "quotes nested 3 deep"
        elif ch in "\"'":
            stack.append(ch)
            deepest = max(deepest, len(stack))
    return False, f"quotes nested at most {deepest} deep (3 asked)"


def _split_options(options: str) -> list[str]:
    separator = "/" if "/" in options else "or" if "or" in options else ","
    return [o.strip() for o in options.split(separator)]


def options(text: str, options: str) -> tuple[bool, str]:
    """The whole response is one option: exactly, for lettered options (``a), b)``); else ignoring case and outer punctuation."""
    choices = _split_options(options)
    if re.match(r"\W*[aA]\W*[bB]\W*[cC]\W*", options):
        ok = text in choices
    else:
        answer = text.strip(PUNCT + " ").lower()
        ok = any(o.strip(PUNCT + " ").lower() == answer for o in choices)
    return ok, "one of the options" if ok else f"not one of {choices}"


def newline(text: str) -> tuple[bool, str]:
    """One word per line: as many non-empty lines as words, punctuation removed."""
    bare = text.translate(_NO_PUNCT)
    lines = [line for line in bare.strip().split("\n") if line]
    words = bare.strip().split()
    return len(lines) == len(words), f"{len(lines)} lines for {len(words)} words"


def sentence_words(text: str) -> tuple[bool, str]:
    """Three sentences of the same length in characters (the reference leaves "all different words" unchecked)."""
    lengths = [len(s.strip()) for s in split_sentences(text)]
    return len(lengths) == 3 and len(set(lengths)) == 1, f"sentence lengths {lengths}"


def hardened_sentence_words(text: str) -> tuple[bool, str]:
    """As :func:`sentence_words`, and no word is used twice."""
    ok, why = sentence_words(text)
    words = [w.lower() for w in text.translate(_NO_PUNCT).split()]
    repeated = len(words) != len(set(words))
    return ok and not repeated, why + ("; a word is repeated" if repeated else "")


def line_indent(text: str) -> tuple[bool, str]:
    """Each non-blank line is indented by more spaces than the one before.

    The reference removes blank lines while looping over them, which leaves the
    second of two blank lines in place (and then fails); here every blank line is skipped.
    """
    indents = [len(line) - len(line.lstrip(" ")) for line in text.split("\n") if line.strip()]
    ok = all(b > a for a, b in zip(indents, indents[1:], strict=False))
    return ok, f"indents {indents[:8]}"


def quote_unquote(text: str) -> tuple[bool, str]:
    """No quoted phrase is followed directly by another or ends the response (no quotes at all passes)."""
    squeezed = "".join(text.replace("'\"'", "").split())
    if '""' in squeezed:
        return False, "a quote follows a quote"
    tail = squeezed.strip("0123456789" + PUNCT.replace('"', ""))
    if tail.endswith('"'):
        return False, "the response ends with a quote"
    return True, "every quote is explained"


def hardened_quote_unquote(text: str) -> tuple[bool, str]:
    """As :func:`quote_unquote`, with curly quotes read as straight ones, and at least one quoted phrase.

    (An older version of the reference read curly quotes so; the current one does not.)
    """
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    if text.count('"') < 2:
        return False, "no quoted phrase"
    return quote_unquote(text)


def special_list(text: str, sep: str) -> tuple[bool, str]:
    """The separator ``sep`` marks at least two items."""
    n = text.count(sep)
    return n >= 2, f"{n} items marked {sep!r} (at least 2 asked)"


def thesis(text: str) -> tuple[bool, str]:
    """An ``<i>`` (or ``<em>``) thesis with text, then more text after its closing tag.

    Offsets as in the reference, whose fixed widths suit ``<i>``: with ``<em>`` the
    ``>`` counts as thesis text.
    """
    start = text.find("<i>")
    start = text.find("<em>") if start == -1 else start
    if start == -1:
        return False, "no <i> or <em>"
    rest = text[start:]
    end = rest.find("</i>")
    end = rest.find("</em>") if end == -1 else end
    if end == -1:
        return False, "the italics are not closed"
    ok = bool(rest[3:end].strip()) and bool(rest[end + 4 :].strip())
    return ok, "a thesis in italics, then text" if ok else "empty thesis or nothing after it"


def sub_bullets(text: str) -> tuple[bool, str]:
    """After each ``*`` a ``-`` follows before the next ``*`` (no ``*`` at all passes, as in the reference)."""
    parts = text.split("*")[1:]
    bad = sum(1 for p in parts if "-" not in p)
    return bad == 0, f"{bad} of {len(parts)} bullets lack a '-' sub-bullet"


def hardened_sub_bullets(text: str) -> tuple[bool, str]:
    """As :func:`sub_bullets`, with at least one ``* `` bullet line."""
    if not re.search(r"^\s*\* ", text, flags=re.MULTILINE):
        return False, "no * bullet"
    return sub_bullets(text)


def no_bullets_bullets(text: str) -> tuple[bool, str]:
    """At least two sentences before the bullets, then at least two ``*`` lines and nothing else.

    As in the reference, a blank line ends the prose: any line after it but a
    bullet fails, and so does a blank line after the bullets (a trailing newline).
    """
    sentences, bullets, in_prose = 0, 0, True
    for line in text.split("\n"):
        if line.strip().startswith("*"):
            if sentences < 2:
                return False, f"{sentences} sentences before the first bullet"
            in_prose, bullets = False, bullets + 1
        elif in_prose:
            found = split_sentences(line.strip())
            sentences, in_prose = sentences + len(found), bool(found)
        else:
            return False, "a line after the bullets or after a blank line"
    return bullets >= 2, f"{sentences} sentences, {bullets} bullets"


def multiples(text: str) -> tuple[bool, str]:
    """The numbers in the response are exactly 14, 21, 28, 35, 42, 49 in order."""
    found = re.findall(r"\d+", text.replace(",", ", "))
    return found == ["14", "21", "28", "35", "42", "49"], f"numbers {found[:8]}"


def _mcq_question(block: str) -> tuple[int, int]:
    stem, count, in_options = "", 0, False
    for line in block.split("\n"):
        if re.match(r"^[A-Ea-e][.|)]\s*\w+", line.strip()):
            count, in_options = count + 1, True
        elif not in_options:
            stem += " " + line.strip()
    return count, len(stem.strip())


def mcq_count_length(text: str) -> tuple[bool, str]:
    """Starts with ``Question``; four questions of five options each, each question longer than the last."""
    if not text.startswith("Question"):
        return False, "does not start with 'Question'"
    blocks = [q.strip() for q in re.split(r"\n*(?:Question \d+[.|):;]?\s*)", text) if q.strip()]
    if len(blocks) != 4:
        return False, f"{len(blocks)} questions (4 asked)"
    shapes = [_mcq_question(b) for b in blocks]
    if any(count != 5 for count, _ in shapes):
        return False, f"options per question {[c for c, _ in shapes]} (5 asked)"
    lengths = [n for _, n in shapes]
    return all(a < b for a, b in zip(lengths, lengths[1:], strict=False)), f"question lengths {lengths}"


def reverse_newline(text: str) -> tuple[bool, str]:
    """From the line naming Zimbabwe on, at least 52 lines in reverse alphabetical order."""
    lines = [ln.strip(PUNCT + " ") for ln in text.split("\n") if ln.strip(PUNCT + " ")]
    start = next((i for i, ln in enumerate(lines) if "Zimbabwe" in ln), None)
    if start is None or len(lines) - start < 52:
        return False, "no Zimbabwe line followed by 52 countries"
    names = [_ascii(ln) for ln in lines[start:]]
    ok = names == sorted(names, reverse=True)
    return ok, "in reverse alphabetical order" if ok else "not in reverse order"


def word_reverse(text: str) -> tuple[bool, str]:
    """Words in reverse order, naming the bald eagle ("eagle bald the is ..."), in one sentence."""
    flat = " ".join(text.lower().strip().translate(_NO_PUNCT).split()[::-1])
    ok = "bald eagle" in flat and flat in split_sentences(flat)
    return ok, "the answer reversed word by word" if ok else "no reversed 'bald eagle' sentence"


def character_reverse(text: str) -> tuple[bool, str]:
    """The text holds ``elgae dlab``: "bald eagle" spelt backwards."""
    ok = "elgae dlab" in text.lower()
    return ok, "has 'elgae dlab'" if ok else "no 'elgae dlab'"


def sentence_alphabet(text: str) -> tuple[bool, str]:
    """26 sentences whose first words start with a, b, c... z in order."""
    sentences = split_sentences(text)
    if len(sentences) != 26:
        return False, f"{len(sentences)} sentences (26 asked)"
    for i, s in enumerate(sentences):
        if not s.split() or s.split()[0][0].lower() != chr(97 + i):
            return False, f"sentence {i + 1} does not start with {chr(97 + i)!r}"
    return True, "26 sentences from a to z"


def european_capitals_sort(text: str) -> tuple[bool, str]:
    """Exactly the 27 European capitals north of 45°, comma-separated, north to south."""
    found = tuple(c.strip() for c in _ascii(text).split(",") if c.strip())
    return found == NORTHERN_CAPITALS, f"{len(found)} names, {'in' if found == NORTHERN_CAPITALS else 'not in'} order"


def _csv_rows(text: str, delimiter: str = ",") -> list[list[str]] | None:
    """The rows of ``text`` read as CSV, or None where it is not CSV at all (a stray carriage return)."""
    try:
        return list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:
        return None


def csv_city(text: str) -> tuple[bool, str]:
    """CSV: the header ID,Country,City,Year,Count and 7 rows of 5 fields."""
    rows = _csv_rows(text)
    if rows is None:
        return False, "not CSV"
    ok = len(rows) == 8 and rows[0] == ["ID", "Country", "City", "Year", "Count"] and all(len(r) == 5 for r in rows)
    return ok, f"{len(rows)} rows" + ("" if ok else " (a header and 7 rows of 5 asked)")


def _header(text: str, names: list[str], sep: str) -> bool:
    pattern = sep.join(f'({n}|"{n}")' for n in names)
    return re.match(rf"^{pattern}$", text.split("\n")[0].strip()) is not None


def csv_special_character(text: str) -> tuple[bool, str]:
    """CSV: header ProductID,Category,Brand,Price,Stock, 14 rows of 5, a quoted field with a special character."""
    if not _header(text, ["ProductID", "Category", "Brand", "Price", "Stock"], r",[ \t]*"):
        return False, "wrong header"
    rows = _csv_rows(text.replace('"', '"""'))
    if rows is None:
        return False, "not CSV"
    if len(rows) != 15:
        return False, f"{len(rows) - 1} data rows (14 asked)"
    for row in rows[1:]:
        if len(row) != 5:
            return False, "a row without 5 fields"
        if any(re.match(r'".*[^\d\w\s].*"', field) for field in row):
            return True, "a quoted field with a special character"
    return False, "no quoted field with a special character"


def csv_quotes(text: str) -> tuple[bool, str]:
    """Tab-separated: header StudentID, Subject, Grade, Semester, Score and 3 rows, every field in double quotes."""
    if not _header(text, ["StudentID", "Subject", "Grade", "Semester", "Score"], r"\t *"):
        return False, "wrong header"
    rows = _csv_rows(text.replace('"', '"""'), delimiter="\t")
    if rows is None:
        return False, "not CSV"
    if len(rows) != 4 or any(len(r) != 5 for r in rows):
        return False, "not a header and 3 rows of 5 fields"
    quoted = all(f.strip()[:1] == '"' and f.strip()[-1:] == '"' for r in rows for f in r)
    return quoted, "every field quoted" if quoted else "a field is not in double quotes"


def _valid_date(date: str) -> bool:
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", date):
        return False
    year, month, day = (int(x) for x in date.split("-"))
    limit = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}.get(month, 31)
    return 1769 <= year <= 1821 and month <= 12 and day <= limit


def date_format_list(text: str) -> tuple[bool, str]:
    """Comma-separated YYYY-MM-DD dates within Napoleon's life (1769-1821), nothing else."""
    bad = [d.strip() for d in text.strip().split(",") if not _valid_date(d.strip())]
    return not bad, f"not dates of his life: {bad[:3]}" if bad else "all dates"


def _nltk_like_tokens(text: str) -> list[str]:
    tokens = []
    for token in _TOKEN.findall(text):
        if token[0].isalnum() or token[0] == "_":
            tokens.extend(word_tokens(token))
        else:
            # NLTK writes double quotes as `` and '', which are not in string.punctuation.
            tokens.append("''" if token == '"' else token)
    return tokens


def words_position(text: str, keyword: str) -> tuple[bool, str]:
    """The second word and the second-to-last word (a final punctuation token skipped) are ``keyword``."""
    words = _nltk_like_tokens(text)
    if words and words[-1] in PUNCT:
        words = words[:-1]
    if len(words) < 2:
        return False, "fewer than two words"
    ok = words[1].lower() == words[-2].lower() == keyword.lower()
    return ok, f"second word {words[1]!r}, second to last {words[-2]!r}"


def repeat_change(text: str, prompt_to_repeat: str) -> tuple[bool, str]:
    """The request repeated with only its first word changed (a verbatim copy fails)."""
    if text == prompt_to_repeat:
        return False, "repeated unchanged"
    ok = prompt_to_repeat.split()[1:] == text.split()[1:]
    return ok, "the request with its first word changed" if ok else "not the request after its first word"


def repeat_simple(text: str) -> tuple[bool, str]:
    """Only the sentence of the instruction itself, ignoring case and surrounding whitespace."""
    ok = text.strip().lower() == REPEAT_SIMPLE.lower()
    return ok, "only the sentence" if ok else "not just the sentence"


def repeat_span(text: str, prompt_to_repeat: str, n_start: int, n_end: int) -> tuple[bool, str]:
    """Exactly the characters ``n_start`` to ``n_end`` (both included) of the request, ignoring case."""
    span = prompt_to_repeat[n_start : n_end + 1]
    ok = text.strip().lower() == span.strip().lower()
    return ok, "the span" if ok else f"not the span {span[:40]!r}"


def title_case(text: str) -> tuple[bool, str]:
    """Every word starting with a letter is capitalised (``iPhone`` style and all-lowercase words fail)."""
    for word in word_tokens(text):
        if not word[0].isalpha():
            continue
        if word[0].islower() and (len(word) == 1 or word[1:].islower() or word[1:].isupper()):
            return False, f"{word!r} is not capitalised"
    return True, "title case"


def output_template(text: str) -> tuple[bool, str]:
    """Has ``My Answer:``, ``My Conclusion:`` and ``Future Outlook:``."""
    missing = [k for k in ("My Answer:", "My Conclusion:", "Future Outlook:") if k not in text]
    return not missing, f"missing {missing}" if missing else "follows the template"


def no_whitespace(text: str) -> tuple[bool, str]:
    """No whitespace character at all."""
    ok = not any(ch.isspace() for ch in text)
    return ok, "no whitespace" if ok else "has whitespace"
