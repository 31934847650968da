"""IFBench's constraints: every example, the reference's quirks, the hardened rules, validation, properties."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import rlvr
from rlvr import Problem, Status
from rlvr.testing import check_verifier
from rlvr.verifiers.ifbench import ALL_CONSTRAINTS, IFBENCH_CONSTRAINTS, MISSING, IFBenchFollowing
from rlvr.verifiers.instructions import CONSTRAINTS, build_check, check_constraint

IFBENCH_IDS = (
    "count:word_count_range", "count:unique_word_count", "ratio:stop_words", "ratio:sentence_type",
    "ratio:sentence_balance", "count:conjunctions", "count:person_names", "ratio:overlap", "count:numbers",
    "words:alphabet", "words:vowel", "words:consonants", "sentence:alliteration_increment", "words:palindrome",
    "count:punctuation", "format:parentheses", "format:quotes", "words:prime_lengths", "format:options",
    "format:newline", "format:emoji", "ratio:sentence_words", "count:words_japanese", "words:start_verb",
    "words:repeats", "sentence:keyword", "count:pronouns", "words:odd_even_syllables", "words:last_first",
    "words:paragraph_last_first", "sentence:increment", "words:no_consecutive", "format:line_indent",
    "format:quote_unquote", "format:list", "format:thesis", "format:sub-bullets", "format:no_bullets_bullets",
    "custom:multiples", "custom:mcq_count_length", "custom:reverse_newline", "custom:word_reverse",
    "custom:character_reverse", "custom:sentence_alphabet", "custom:european_capitals_sort", "custom:csv_city",
    "custom:csv_special_character", "custom:csv_quotes", "custom:date_format_list", "count:keywords_multiple",
    "words:keywords_specific_position", "words:words_position", "repeat:repeat_change", "repeat:repeat_simple",
    "repeat:repeat_span", "format:title_case", "format:output_template", "format:no_whitespace",
)  # fmt: skip


def holds(text, cid, rules="ifeval", **kwargs):
    return check_constraint(text, cid, kwargs, rules, ALL_CONSTRAINTS)[0]


def problem(cid, **kwargs):
    return Problem("p", "q", [{"id": cid, "kwargs": kwargs}])


def test_56_of_ifbenchs_58_ids_are_implemented_and_the_rest_are_named():
    assert len(IFBENCH_IDS) == 58
    assert set(IFBENCH_CONSTRAINTS) | set(MISSING) == set(IFBENCH_IDS)
    assert not set(IFBENCH_CONSTRAINTS) & set(MISSING)
    assert set(ALL_CONSTRAINTS) == set(IFBENCH_CONSTRAINTS) | set(CONSTRAINTS)
    verdict = IFBenchFollowing()("some text", problem("words:start_verb"))
    assert verdict.status == Status.UNSCORABLE and "unknown constraint" in verdict.details["reason"]


@pytest.mark.parametrize("rules", ["ifeval", "hardened"])
@pytest.mark.parametrize("cid", sorted(IFBENCH_CONSTRAINTS))
def test_each_constraint_passes_its_positive_example_and_fails_its_negative_one(cid, rules):
    c = IFBENCH_CONSTRAINTS[cid]
    assert holds(c.passing, cid, rules, **c.example_kwargs) is True
    assert holds(c.failing, cid, rules, **c.example_kwargs) is False


@pytest.mark.parametrize("cid", sorted(IFBENCH_CONSTRAINTS))
def test_each_constraint_keeps_the_verifier_contract(cid):
    c = IFBENCH_CONSTRAINTS[cid]
    check_verifier(
        IFBenchFollowing(),
        Problem("p", "q", [{"id": cid, "kwargs": dict(c.example_kwargs)}]),
        positives=[c.passing],
        negatives=[c.failing],
        degenerate=False,  # "no whitespace" or "at most 2 repeats" hold for short junk
        context_invariant=False,
        whitespace_invariant=False,  # lines, indents and whitespace are what several rules count
        examples=5,
    )


@pytest.mark.parametrize("cid", sorted(IFBENCH_CONSTRAINTS))
@settings(max_examples=20, deadline=None)
@given(text=st.text(max_size=200) | st.sampled_from(["*", "<i></i>", "Question", "\n\n", '"""', "((((", "?!", "\r0"]))
def test_hostile_text_never_raises(cid, text):
    c = IFBENCH_CONSTRAINTS[cid]
    for rules in ("ifeval", "hardened"):
        held, why = check_constraint(text, cid, c.example_kwargs, rules, ALL_CONSTRAINTS)
        assert isinstance(held, bool) and isinstance(why, str)


# (id, kwargs, response, the reference's verdict): its own quirks included.
CASES = [
    ("count:conjunctions", {"small_n": 3}, "and And and,", True),  # distinct as written
    ("format:sub-bullets", {}, "no bullets at all", True),
    ("ratio:sentence_type", {}, "Wow! Great!", True),  # zero of each is a 2:1 ratio
    ("format:no_bullets_bullets", {}, "One. Two.\n* a\n* b\n", False),  # a trailing newline fails
    ("format:no_bullets_bullets", {}, "One. Two.\n\n* a\n* b", True),
    ("format:thesis", {}, "<em></em> body", True),  # the '>' of <em> counts as thesis text
    ("repeat:repeat_span", {"prompt_to_repeat": "Describe the sea.", "n_start": 0, "n_end": 7}, "DESCRIBE", True),
    ("format:options", {"options": "a), b), c)"}, "a)", True),
    ("format:options", {"options": "a), b), c)"}, "a", False),  # lettered options must match exactly
    ("format:options", {"options": "I know or I don't know"}, "i don't know!", True),
    ("format:emoji", {}, "Hi! 👋 How are you? 😀", True),  # an emoji opening the next sentence counts
    ("format:emoji", {}, "Calm 🌊! Why?", False),
    ("words:odd_even_syllables", {}, "Water sea river tide", True),  # 2 1 2 1 syllables
    ("words:words_position", {"keyword": "sea"}, "The sea and the sea.", False),  # '.' skipped: 'the' is 2nd last
    ("words:words_position", {"keyword": "sea"}, "The sea and sea shore.", True),
    ("words:keywords_specific_position", {"keyword": "MOON", "n": 1, "m": 2}, "The moon, rose.", True),
    ("count:pronouns", {"N": 2}, "she/her", True),
    ("count:pronouns", {"N": 3}, "It's theirs", False),  # it, theirs ('s is not a pronoun)
    ("format:title_case", {}, "Don't Stop", False),  # NLTK's "n't" token is lowercase
    ("format:title_case", {}, "The iPhone 12", True),
    ("count:numbers", {"N": 1}, "3.5 percent", True),  # punctuation removed first: 35
    ("words:alphabet", {}, "yes, zebras: ants!", True),  # z wraps to a
    ("format:parentheses", {}, "((((()))))", True),
    ("format:parentheses", {}, "(((((]", False),
    ("format:quotes", {}, "\"a 'b \"c\" b' a\"", True),
    ("format:line_indent", {}, "a\n\n\n  b", True),  # every blank line skipped (see the rule's docstring)
    ("custom:date_format_list", {}, "1800-02-30", False),
    ("custom:date_format_list", {}, "1800-00-31", True),  # month 0 is not checked, as in the reference
    ("count:word_count_range", {"min_words": 2, "max_words": 2}, "don't", True),  # \w+ words: don, t
    ("words:vowel", {}, "one line\nanother", False),
    ("words:consonants", {}, "strength, rhythm", True),  # y is a consonant
    ("ratio:overlap", {"reference_text": "abcd", "percentage": 50}, "abcxyz", False),  # 1 of 4 trigrams: 25%
    ("ratio:overlap", {"reference_text": "abcd", "percentage": 25}, "abcxyz", True),
]  # fmt: skip


@pytest.mark.parametrize(("cid", "kwargs", "text", "expected"), CASES)
def test_reference_style_cases(cid, kwargs, text, expected):
    assert holds(text, cid, **kwargs) is expected


# Each: the reference passes it, the hardened rule does not.
HARDENED = [
    ("ratio:sentence_type", {}, "Wow! Great!"),
    ("ratio:sentence_balance", {}, "no ending at all"),
    ("count:conjunctions", {"small_n": 2}, "and And"),
    ("words:last_first", {}, "Just one sentence."),
    ("ratio:sentence_words", {}, "Sea is. Sea is. Sea is."),
    ("format:quote_unquote", {}, "no quotes here"),
    ("format:quote_unquote", {}, "\u201cCarpe diem\u201d \u201cseize the day\u201d"),
    ("format:sub-bullets", {}, "no bullets at all"),
]  # fmt: skip


@pytest.mark.parametrize(("cid", "kwargs", "text"), HARDENED)
def test_hardened_rules_close_what_the_reference_leaves_open(cid, kwargs, text):
    assert holds(text, cid, "ifeval", **kwargs) is True
    assert holds(text, cid, "hardened", **kwargs) is False


@pytest.mark.parametrize(
    ("cid", "kwargs", "argument"),
    [
        ("count:word_count_range", {"min_words": 9, "max_words": 3}, "min_words"),
        ("count:word_count_range", {"min_words": -1, "max_words": 3}, "min_words"),
        ("count:unique_word_count", {"N": -2}, "N"),
        ("count:words_japanese", {"N": 0}, "N"),
        ("ratio:overlap", {"reference_text": "abc", "percentage": 150}, "percentage"),
        ("ratio:overlap", {"percentage": 50}, "reference_text"),
        ("repeat:repeat_span", {"prompt_to_repeat": "short", "n_start": 2, "n_end": 9}, "n_end"),
        ("repeat:repeat_span", {"prompt_to_repeat": "short", "n_start": 3, "n_end": 1}, "n_start"),
        ("sentence:keyword", {"word": "sea", "N": 0}, "N"),
        ("count:keywords_multiple", {"keyword1": "a"}, "keyword2"),
        ("format:list", {"sep": ""}, "sep"),
        ("custom:multiples", {"N": 3}, "N"),
    ],
)
def test_bad_arguments_are_a_value_error_naming_the_argument(cid, kwargs, argument):
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        build_check(cid, kwargs, table=ALL_CONSTRAINTS)
    assert IFBenchFollowing()("text", problem(cid, **kwargs)).status == Status.UNSCORABLE


def test_ifeval_ids_are_scored_by_the_ifbench_verifier_too():
    p = Problem("p", "q", [{"id": "punctuation:no_comma", "kwargs": {}}, {"id": "format:no_whitespace", "kwargs": {}}])
    assert IFBenchFollowing()("calm-sea", p).score == 1.0
    assert IFBenchFollowing("fraction")("calm, sea", p).score == 0.0
    assert IFBenchFollowing("fraction")("calm,sea", p).score == 0.5
    assert isinstance(rlvr.make_verifier("ifbench"), IFBenchFollowing)


@settings(max_examples=40, deadline=None)
@given(words=st.lists(st.sampled_from(["sea", "moon", "tide", "wind"]), min_size=1, max_size=30))
def test_word_count_range_counts_words(words):
    text = " ".join(words)
    assert holds(text, "count:word_count_range", min_words=len(words), max_words=len(words))
    assert not holds(text, "count:word_count_range", min_words=len(words) + 1, max_words=len(words) + 5)


@settings(max_examples=40, deadline=None)
@given(numbers=st.lists(st.integers(0, 10**6), max_size=8), filler=st.sampled_from([" and ", " then ", "; "]))
def test_numbers_are_counted(numbers, filler):
    text = "Count: " + filler.join(str(n) for n in numbers)
    assert holds(text, "count:numbers", N=len(numbers))


@settings(max_examples=40, deadline=None)
@given(text=st.text(min_size=1, max_size=50))
def test_no_whitespace_means_none(text):
    assume(text.strip())
    assert holds(text, "format:no_whitespace") is (not any(ch.isspace() for ch in text))


@settings(max_examples=40, deadline=None)
@given(depth=st.integers(1, 9), kinds=st.lists(st.sampled_from(["()", "[]", "{}"]), min_size=9, max_size=9))
def test_parentheses_depth(depth, kinds):
    text = "".join(k[0] for k in kinds[:depth]) + "x" + "".join(k[1] for k in reversed(kinds[:depth]))
    assert holds(text, "format:parentheses") is (depth >= 5)


@settings(max_examples=40, deadline=None)
@given(start=st.integers(0, 25), n=st.integers(1, 40))
def test_alphabet_chains_hold(start, n):
    words = [chr(97 + (start + i) % 26) + "ord" for i in range(n)]
    assert holds(" ".join(words), "words:alphabet")
    assume(n > 1)
    words[-1] = chr(97 + (start + n) % 26) + "ord"
    assert not holds(" ".join(words), "words:alphabet")


@settings(max_examples=40, deadline=None)
@given(word=st.text(alphabet="abcdefg", min_size=3, max_size=6), count=st.integers(0, 12))
def test_palindromes_are_counted(word, count):
    pal = word + word[-2::-1]  # odd length, at least 5
    text = " ".join([pal] * count + ["filler"])
    assert holds(text, "words:palindrome") is (count >= 10)


@settings(max_examples=40, deadline=None)
@given(sentences=st.lists(st.sampled_from(["Sea calm.", "Why?", "Wow!"]), min_size=1, max_size=9))
def test_sentence_balance_counts_endings(sentences):
    counts = [sum(s.endswith(e) for s in sentences) for e in ".?!"]
    assert holds(" ".join(sentences), "ratio:sentence_balance") is (len(set(counts)) == 1)
    assert holds(" ".join(sentences), "ratio:sentence_type") is (counts[0] == 2 * counts[1])


def test_text_that_is_not_csv_fails_the_csv_constraints_without_raising():
    from rlvr.verifiers.ifbench_format import csv_city, csv_quotes, csv_special_character

    for check in (csv_city, csv_special_character, csv_quotes):
        assert check("ID,Country,City,Year,Count\r0\n")[0] is False
