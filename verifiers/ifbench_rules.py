r"""IFBench's word, sentence and count rules (AllenAI's out-of-distribution constraints).

Each rule is ``rule(text, **kwargs) -> (holds, why)``, written from the
constraint's description and the semantics of IFBench's reference checker
(github allenai/IFBench, ``ifbench/instructions.py``). Sentences are NLTK's
``sent_tokenize`` (Punkt, see :mod:`rlvr.verifiers.instructions_text`); word
tokens approximate NLTK's ``word_tokenize`` there too. "Punctuation" means
Python's ``string.punctuation``. A ``hardened_*`` rule is the stricter variant
for ``rules="hardened"``, for places where the reference passes a response that
does not do what was asked (no questions at all for a 2:1 ratio, one sentence
for a chain of sentences...).
"""

from __future__ import annotations

import importlib
import re
import string
from collections import Counter

from rlvr.verifiers.instructions_text import count_words, split_sentences, word_tokens

PUNCT = string.punctuation
_NO_PUNCT = str.maketrans("", "", PUNCT)
CONJUNCTIONS = ("and", "but", "for", "nor", "or", "so", "yet")
PERSON_NAMES = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason", "Mia", "Ethan",
    "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe", "Daniel", "Chloe", "Samuel", "Lily",
    "Matthew", "Grace", "Owen", "Abigail", "Gabriel", "Ella", "Jacob", "Scarlett", "Nathan", "Victoria", "Elijah",
    "Layla", "Nicholas", "Audrey", "David", "Hannah", "Christopher", "Penelope", "Thomas", "Nora", "Andrew", "Aria",
    "Joseph", "Claire", "Ryan", "Stella", "Jonathan",
)  # fmt: skip
PRONOUNS = frozenset(
    (
        "i", "me", "we", "us", "you", "he", "him", "she", "her", "it", "they", "them", "my", "mine", "our", "ours",
        "your", "yours", "his", "hers", "its", "their", "theirs", "myself", "ourselves", "yourself", "yourselves",
        "himself", "herself", "itself", "themselves", "this", "that", "these", "those", "who", "whom", "whose", "which",
        "what", "whoever", "whomever", "whatever", "whichever", "anybody", "anyone", "anything", "everybody",
        "everyone", "everything", "nobody", "nothing", "somebody", "someone", "something", "each", "either", "neither",
        "both", "all", "some", "any", "none",
    )
)  # fmt: skip
_PRIMES = frozenset(n for n in range(2, 98) if all(n % d for d in range(2, int(n**0.5) + 1)))
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def word_count_range(text: str, min_words: int, max_words: int) -> tuple[bool, str]:
    r"""Between ``min_words`` and ``max_words`` ``\w+`` words, both included."""
    n = count_words(text)
    return min_words <= n <= max_words, f"{n} words ({min_words}-{max_words} asked)"


def unique_word_count(text: str, N: int) -> tuple[bool, str]:  # noqa: N803 - IFBench's argument name
    """At least ``N`` distinct whitespace-separated words, lowercased, outer punctuation stripped."""
    n = len({w.strip(PUNCT + " ") for w in text.lower().split()})
    return n >= N, f"{n} unique words (at least {N} asked)"


def _endings(text: str) -> Counter:
    return Counter(s[-1] for s in split_sentences(text) if s and s[-1] in ".?!")


def sentence_type(text: str) -> tuple[bool, str]:
    """Twice as many sentences ending in ``.`` as ending in ``?`` (none of either passes, as in the reference)."""
    c = _endings(text)
    return c["."] == 2 * c["?"], f"{c['.']} declarative, {c['?']} interrogative"


def hardened_sentence_type(text: str) -> tuple[bool, str]:
    """As :func:`sentence_type`, with at least one question."""
    c = _endings(text)
    return c["?"] > 0 and c["."] == 2 * c["?"], f"{c['.']} declarative, {c['?']} interrogative"


def sentence_balance(text: str) -> tuple[bool, str]:
    """As many sentences end in ``.`` as in ``?`` and in ``!`` (all zero passes, as in the reference)."""
    c = _endings(text)
    return c["."] == c["?"] == c["!"], f"{c['.']} '.', {c['?']} '?', {c['!']} '!'"


def hardened_sentence_balance(text: str) -> tuple[bool, str]:
    """As :func:`sentence_balance`, with at least one of each."""
    c = _endings(text)
    return c["."] == c["?"] == c["!"] > 0, f"{c['.']} '.', {c['?']} '?', {c['!']} '!'"


def conjunctions(text: str, small_n: int) -> tuple[bool, str]:
    """At least ``small_n`` distinct coordinating conjunctions.

    As in the reference, distinct means distinct as written: ``and``, ``And`` and
    ``and,`` count as three.
    """
    found = {w for w in text.split() if w.strip(PUNCT + " ").lower() in CONJUNCTIONS}
    return len(found) >= small_n, f"{len(found)} distinct conjunctions (at least {small_n} asked)"


def hardened_conjunctions(text: str, small_n: int) -> tuple[bool, str]:
    """At least ``small_n`` different conjunctions, whatever their case or punctuation."""
    found = {w.strip(PUNCT + " ").lower() for w in text.split()} & set(CONJUNCTIONS)
    return len(found) >= small_n, f"conjunctions {sorted(found)} (at least {small_n} asked)"


def person_names(text: str, N: int) -> tuple[bool, str]:  # noqa: N803
    """At least ``N`` different names from IFBench's list, as whole words, case-sensitive."""
    found = [n for n in PERSON_NAMES if re.search(rf"\b{n}\b", text)]
    return len(found) >= N, f"{len(found)} names from the list (at least {N} asked)"


def _trigrams(text: str) -> set[str]:
    return {text[i : i + 3] for i in range(len(text) - 2)}


def overlap(text: str, reference_text: str, percentage: float) -> tuple[bool, str]:
    """Character trigrams of the response found in ``reference_text``: ``percentage`` ± 2 per cent of them."""
    grams = _trigrams(text)
    if not grams:
        return False, "no trigrams"
    share = 100 * len(grams & _trigrams(reference_text)) / len(grams)
    return percentage - 2 <= share <= percentage + 2, f"{share:.1f}% trigram overlap ({percentage}±2 asked)"


def numbers(text: str, N: int) -> tuple[bool, str]:  # noqa: N803
    """Exactly ``N`` digit runs once punctuation is removed (so ``3.5`` is one number, ``35``)."""
    n = len(re.findall(r"\d+", text.translate(_NO_PUNCT)))
    return n == N, f"{n} numbers ({N} asked)"


def alphabet(text: str) -> tuple[bool, str]:
    """Each word starts with the letter after the previous word's, ``z`` wrapping to ``a``."""
    words = text.translate(_NO_PUNCT).split()
    if not words or words[0][0].lower() not in string.ascii_lowercase:
        return False, "the first word does not start with a letter"
    letter = words[0][0].lower()
    for i, word in enumerate(words[1:], 2):
        letter = chr((ord(letter) - 97 + 1) % 26 + 97)
        if word[0].lower() != letter:
            return False, f"word {i} {word!r} does not start with {letter!r}"
    return True, "every word follows the alphabet"


def vowel(text: str) -> tuple[bool, str]:
    """One paragraph (no line break inside) whose words use at most three different vowels."""
    lines = text.strip().split("\n")
    if len(lines) != 1:
        return False, f"{len(lines)} lines, one paragraph asked"
    used = sorted(set(lines[0].lower()) & set("aeiou"))
    return len(used) <= 3, f"vowels {used}"


def consonants(text: str) -> tuple[bool, str]:
    """Every whitespace-separated word has two consonants in a row (``y`` counts as one)."""
    for word in text.lower().split():
        if not re.search(r"[bcdfghjklmnpqrstvwxyz]{2}", word):
            return False, f"{word!r} has no consonant cluster"
    return True, "every word has a consonant cluster"


def _alliteration(sentence: str) -> int:
    words = [c for c in (w.lstrip(PUNCT + " ") for w in sentence.lower().split()) if c]
    total, run = 0, False
    for a, b in zip(words, words[1:], strict=False):
        if a[0] == b[0]:
            total += 1 if run else 2
            run = True
        else:
            run = False
    return total


def alliteration_increment(text: str) -> tuple[bool, str]:
    """Each sentence has more alliterating words (neighbours sharing a first letter) than the one before."""
    counts = [_alliteration(s) for s in split_sentences(text)]
    ok = all(b > a for a, b in zip([-1, *counts], counts, strict=False))
    return ok, f"alliterating words per sentence: {counts}"


def palindrome(text: str) -> tuple[bool, str]:
    """At least 10 palindromic words of 5 or more characters (repeats count)."""
    found = [w for w in text.translate(_NO_PUNCT).lower().split() if len(w) >= 5 and w == w[::-1]]
    return len(found) >= 10, f"{len(found)} palindromes of 5+ letters (10 asked)"


def prime_lengths(text: str) -> tuple[bool, str]:
    """Every word (punctuation removed) has a prime number of characters."""
    bad = [w for w in text.translate(_NO_PUNCT).split() if len(w) not in _PRIMES]
    return not bad, f"non-prime lengths: {bad[:5]}" if bad else "every word has a prime length"


def words_japanese(text: str, N: int) -> tuple[bool, str]:  # noqa: N803
    """Every ``N``-th whitespace-separated word (not a bare number) contains Japanese script."""
    for i, word in enumerate(text.split(), 1):
        word = word.strip(PUNCT + " ")
        if i % N == 0 and word and not word.isdigit() and not _JAPANESE.search(word):
            return False, f"word {i} {word!r} is not Japanese"
    return True, f"every {N}th word is Japanese"


def repeats(text: str, small_n: int) -> tuple[bool, str]:
    """No word (lowercased, punctuation removed) occurs more than ``small_n`` times."""
    counts = Counter(text.lower().translate(_NO_PUNCT).split())
    word, n = counts.most_common(1)[0] if counts else ("", 0)
    return n <= small_n, f"{word!r} occurs {n} times (at most {small_n} asked)"


def sentence_keyword(text: str, word: str, N: int) -> tuple[bool, str]:  # noqa: N803
    """Sentence ``N`` contains ``word`` as a whole word, case-insensitively."""
    sentences = split_sentences(text)
    if len(sentences) < N:
        return False, f"{len(sentences)} sentences, fewer than {N}"
    ok = re.search(rf"\b{re.escape(word)}\b", sentences[N - 1], flags=re.IGNORECASE) is not None
    return ok, f"sentence {N} {'has' if ok else 'lacks'} {word!r}"


def pronouns(text: str, N: int) -> tuple[bool, str]:  # noqa: N803
    """At least ``N`` pronoun tokens (``she/her`` counts as two)."""
    n = sum(1 for t in word_tokens(text.replace("/", " ").lower()) if t in PRONOUNS)
    return n >= N, f"{n} pronouns (at least {N} asked)"


def last_first(text: str) -> tuple[bool, str]:
    """The last word of each sentence is the first word of the next (case-insensitive)."""
    sentences = split_sentences(text)
    for a, b in zip(sentences, sentences[1:], strict=False):
        last, first = a.rstrip(PUNCT + " ").split(), b.lstrip(PUNCT + " ").split()
        if not last or not first or last[-1].lower() != first[0].lower():
            return False, f"{a[-30:]!r} -> {b[:30]!r} do not chain"
    return True, f"{len(sentences)} sentences chain"


def hardened_last_first(text: str) -> tuple[bool, str]:
    """As :func:`last_first`, with at least two sentences (one sentence chains trivially)."""
    if len(split_sentences(text)) < 2:
        return False, "fewer than two sentences"
    return last_first(text)


def paragraph_last_first(text: str) -> tuple[bool, str]:
    """Each non-empty line ends with the word it starts with (lowercased, outer punctuation stripped)."""
    for line in text.split("\n"):
        words = line.strip().lower().strip(PUNCT + " ").split()
        if words and words[0] != words[-1]:
            return False, f"{line.strip()[:40]!r} starts and ends differently"
    return True, "every paragraph ends with its first word"


def _word_counts(sentences: list[str]) -> list[int]:
    return [len(s.translate(_NO_PUNCT).split()) for s in sentences]


def increment(text: str, small_n: int) -> tuple[bool, str]:
    """Each sentence has exactly ``small_n`` more words (punctuation removed) than the one before."""
    counts = _word_counts(split_sentences(text))
    ok = all(b == a + small_n for a, b in zip(counts, counts[1:], strict=False))
    return ok, f"words per sentence: {counts}"


def no_consecutive(text: str) -> tuple[bool, str]:
    """No two neighbouring words (punctuation removed) share their first letter."""
    words = text.lower().translate(_NO_PUNCT).split()
    for a, b in zip(words, words[1:], strict=False):
        if a[0] == b[0]:
            return False, f"{a!r} and {b!r} start alike"
    return True, "no neighbours start alike"


def keywords_multiple(
    text: str, keyword1: str, keyword2: str, keyword3: str, keyword4: str, keyword5: str
) -> tuple[bool, str]:
    """The five keywords occur exactly 1, 2, 3, 5 and 7 times (substrings, case-insensitive)."""
    lower = text.lower()
    found = [lower.count(k.lower()) for k in (keyword1, keyword2, keyword3, keyword4, keyword5)]
    return found == [1, 2, 3, 5, 7], f"counts {found} (1, 2, 3, 5, 7 asked)"


def keywords_specific_position(text: str, keyword: str, n: int, m: int) -> tuple[bool, str]:
    """Word ``m`` of sentence ``n`` (punctuation tokens skipped) is ``keyword``."""
    sentences = split_sentences(text)
    if len(sentences) < n:
        return False, f"{len(sentences)} sentences, fewer than {n}"
    words = [t for t in word_tokens(sentences[n - 1]) if any(ch.isalnum() for ch in t)]
    if len(words) < m:
        return False, f"sentence {n} has {len(words)} words, fewer than {m}"
    ok = words[m - 1].lower() == keyword.strip().lower()
    return ok, f"word {m} of sentence {n} is {words[m - 1]!r}"


def _optional(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"this IFBench rule needs {package}: pip install 'rlvr[instructions]'") from exc


def emoji_sentences(text: str) -> tuple[bool, str]:
    """Every sentence ends with an emoji (in its last two characters once punctuation is removed).

    As in the reference, an emoji opening the next sentence also counts (Punkt
    often puts a sentence's closing emoji at the start of the next one).
    Needs the ``emoji`` package (its table of emoji).
    """
    is_emoji = _optional("emoji", "emoji").is_emoji
    sentences = [s.translate(_NO_PUNCT).strip() for s in split_sentences(text)]
    for i, sentence in enumerate(sentences):
        if not sentence:
            return False, f"sentence {i + 1} is only punctuation"
        if is_emoji(sentence[-1]) or is_emoji(sentence[-2:-1] or sentence[-1]):
            continue
        following = sentences[i + 1] if i + 1 < len(sentences) else ""
        if i + 1 == len(sentences) or not following or not is_emoji(following[0]):
            return False, f"sentence {i + 1} does not end with an emoji"
    return True, "every sentence ends with an emoji"


def odd_even_syllables(text: str) -> tuple[bool, str]:
    """Words (punctuation removed) alternate between odd and even syllable counts, by ``syllapy``."""
    count = _optional("syllapy", "syllapy").count
    parities = [count(w) % 2 for w in text.translate(_NO_PUNCT).lower().split()]
    for i, (a, b) in enumerate(zip(parities, parities[1:], strict=False), 1):
        if a == b:
            return False, f"words {i} and {i + 1} have the same syllable parity"
    return True, "syllable counts alternate odd and even"
