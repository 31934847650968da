"""IFEval's rules one by one: examples in the style of the reference's tests, and a property per id."""

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlvr.verifiers.instructions import CONSTRAINTS, check_constraint
from rlvr.verifiers.instructions_text import count_capital_words, count_sentences, count_words

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
# Ordinary words: Punkt knows abbreviations ("co.", "st.") and initials ("A."), which end no sentence.
PLAIN = st.sampled_from(["sea", "boats", "rest", "tide", "moon", "harbor", "light", "quiet", "wind", "night"])
SENTENCE = st.lists(PLAIN, min_size=1, max_size=6).map(lambda ws: " ".join(ws).capitalize() + ".")


def holds(text, cid, rules="ifeval", **kwargs):
    return check_constraint(text, cid, kwargs, rules)[0]


# (id, kwargs, response, IFEval's verdict): reference-style cases, including the
# places where rlvr's former rules disagreed with IFEval's.
CASES = [
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "***\nOne.\n***\nTwo.\n***", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n***\n\n***\nTwo.", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One. *** Two.", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "One.\n***\nTwo.", False),
    ("keywords:existence", {"keywords": [" harbor "]}, "the harbor is here", True),
    ("keywords:existence", {"keywords": [" harbor "]}, "harbor", False),
    ("keywords:existence", {"keywords": ["harbor"]}, "HARBORS at dusk", True),
    ("keywords:existence", {"keywords": ["a.c"]}, "abc", False),  # literal text, not a regex
    ("keywords:frequency", {"keyword": " wave ", "frequency": 3, "relation": "at least"}, "waves wave wavelet", True),
    ("keywords:frequency", {"keyword": "wave", "frequency": 2, "relation": "less than"}, "wave WAVE", False),
    ("keywords:forbidden_words", {"forbidden_words": ["blue"]}, "bluebird", True),
    ("keywords:forbidden_words", {"forbidden_words": ["blue"]}, "a BLUE-ish sky", False),
    ("keywords:letter_frequency", {"letter": "Z", "let_frequency": 3, "let_relation": "at least"}, "zZz", True),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "less than"}, "zzz", False),
    ("length_constraints:number_words", {"num_words": 4, "relation": "at least"}, "don't well-known", True),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"}, "one two three", False),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"}, "Dr. Smith left.", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"}, "Hi. Is it? Yes!", True),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "Hello"}, '"Hello," she said.\n\nBye.', True),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "bye"}, "Hi.\n\n\n\nBye.", False),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "bye"}, "Hi.\n\nBye.", False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "*one\n*two", True),  # no space needed
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n---\n", True),  # '---' is a '-' line
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "**bold** line\n* one", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "**bold** and *it*", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "** ** and * *", False),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1 a Section2 b", True),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 1}, "Section 1 a", False),
    ("detectable_format:title", {}, "<< >> and <<x>>", True),
    ("detectable_format:title", {}, "<<\n>>", False),
    ("detectable_format:json_format", {}, "```JSON\n[1, 2]\n```", True),
    ("detectable_format:json_format", {}, "42", True),
    ("detectable_format:json_format", {}, "{'a': 1}", False),
    ("detectable_format:constrained_response", {}, "I think... My answer is maybe.", True),
    ("detectable_format:constrained_response", {}, "my answer is yes.", False),  # case-sensitive
    ("combination:two_responses", {}, "******A\n******\nB******", True),
    ("combination:two_responses", {}, "A\n******\n\n******\nB", False),
    ("combination:two_responses", {}, "A\n******\nB\n******\nC", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": " Describe the SEA. "}, "describe the sea. It is wide.", True),
    ("startend:end_checker", {"end_phrase": "Peace!"}, 'All done. peace!"', True),  # case and a quote: ignored
    ("startend:end_checker", {"end_phrase": "Peace!"}, "Peace! Bye.", False),
    ("startend:quotation", {}, '""', True),
    ("startend:quotation", {}, '"open', False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello. p. s. see you.", True),  # mid-line
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi\nP.P.S keep warm", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi\nPS keep warm", False),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[] and [x]", True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[x", False),
    ("change_case:capital_word_frequency", {"capital_frequency": 3, "capital_relation": "at least"},
     "I DON'T know", True),  # I, DO, N'T
    ("change_case:capital_word_frequency", {"capital_frequency": 1, "capital_relation": "less than"},
     "Mr. O'NEIL", False),
    ("punctuation:no_comma", {}, "full-width，is not a comma to IFEval", True),
    ("punctuation:no_comma", {}, "a, b", False),
]  # fmt: skip


@pytest.mark.parametrize(("cid", "kwargs", "text", "expected"), CASES)
def test_reference_style_cases(cid, kwargs, text, expected):
    assert holds(text, cid, **kwargs) is expected


LANGUAGE_CASES = [
    ("language:response_language", {"language": "fr"}, "La mer est calme ce soir et les bateaux dorment au port.", True),
    ("language:response_language", {"language": "en"}, "Das Meer ist heute ruhig und die Boote liegen still.", False),
    ("language:response_language", {"language": "de"}, "12345 678 !!!", True),  # no language found: fail-open
    ("change_case:english_lowercase", {}, "la mer est calme ce soir et les bateaux dorment au port.", False),
    ("change_case:english_capital", {}, "THE SEA IS CALM TONIGHT AND THE BOATS ARE ASLEEP IN THE HARBOR.", True),
]  # fmt: skip


@pytest.mark.parametrize(("cid", "kwargs", "text", "expected"), LANGUAGE_CASES)
def test_language_cases(cid, kwargs, text, expected):
    assert holds(text, cid, **kwargs) is expected


# One response per documented difference: IFEval's rule passes it, the hardened one does not.
HARDENED = [
    ("language:response_language", {"language": "de"}, "12345 678 !!!"),
    ("keywords:existence", {"keywords": ["harbor"]}, "harbors\n```\nharbor\n```"),
    ("keywords:frequency", {"keyword": "wave", "frequency": 2, "relation": "at least"}, "waves wavelets"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "*italic* start\n---"),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One. *** Two."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello, see p.s. below"),
    ("startend:end_checker", {"end_phrase": "Peace!"}, '"All done. PEACE!"'),
    ("detectable_format:json_format", {}, "42"),
    ("startend:quotation", {}, '""'),
    ("detectable_content:number_placeholders", {"num_placeholders": 1}, "[]"),
    ("detectable_format:constrained_response", {}, "My answer is yes. My answer is no."),
    ("punctuation:no_comma", {}, "a，b"),
]  # fmt: skip


@pytest.mark.parametrize(("cid", "kwargs", "text"), HARDENED)
def test_hardened_rules_close_what_ifeval_leaves_open(cid, kwargs, text):
    assert holds(text, cid, "ifeval", **kwargs) is True
    assert holds(text, cid, "hardened", **kwargs) is False


# Properties, one or more per id.

RELATION_IDS = {
    "length_constraints:number_words": ("num_words", "relation", {}),
    "length_constraints:number_sentences": ("num_sentences", "relation", {}),
    "keywords:frequency": ("frequency", "relation", {"keyword": "ab"}),
    "keywords:letter_frequency": ("let_frequency", "let_relation", {"letter": "a"}),
    "change_case:capital_word_frequency": ("capital_frequency", "capital_relation", {}),
}


@pytest.mark.parametrize("cid", sorted(RELATION_IDS))
@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet="abAB .!?'\n-", min_size=1, max_size=80), target=st.integers(0, 12))
def test_less_than_and_at_least_are_complements(cid, text, target):
    assume(text.strip())
    count, relation, extra = RELATION_IDS[cid]
    below = holds(text, cid, **extra, **{count: target, relation: "less than"})
    assert below is not holds(text, cid, **extra, **{count: target, relation: "at least"})


@settings(max_examples=40, deadline=None)
@given(words=st.lists(WORD, min_size=1, max_size=30))
def test_words_joined_by_spaces_are_counted_one_each(words):
    assert count_words(" ".join(words)) == len(words)
    assert holds(" ".join(words), "length_constraints:number_words", num_words=len(words), relation="at least")


@settings(max_examples=30, deadline=None)
@given(sentences=st.lists(SENTENCE, min_size=1, max_size=6))
def test_plain_sentences_are_counted_one_each(sentences):
    assert count_sentences(" ".join(sentences)) == len(sentences)


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(SENTENCE, min_size=1, max_size=5), edges=st.booleans())
def test_paragraphs_between_dividers_and_dividers_at_the_ends(parts, edges):
    text = "\n***\n".join(parts)
    if edges:
        text = "***\n" + text + "\n***"
    for rules in ("ifeval", "hardened"):
        assert holds(text, "length_constraints:number_paragraphs", rules, num_paragraphs=len(parts))
        assert not holds(text, "length_constraints:number_paragraphs", rules, num_paragraphs=len(parts) + 1)


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(SENTENCE, min_size=1, max_size=5), data=st.data(), first=WORD)
def test_nth_paragraph_starts_with_its_word(parts, data, first):
    nth = data.draw(st.integers(1, len(parts)))
    parts[nth - 1] = f"{first.capitalize()}, {parts[nth - 1]}"
    kwargs = {"num_paragraphs": len(parts), "nth_paragraph": nth, "first_word": first}
    assert holds("\n\n".join(parts), "length_constraints:nth_paragraph_first_word", **kwargs)
    assert not holds("\n".join(parts), "length_constraints:nth_paragraph_first_word", **kwargs) or len(parts) == 1


@settings(max_examples=40, deadline=None)
@given(before=st.lists(WORD, max_size=5), after=st.lists(WORD, max_size=5), keyword=WORD)
def test_a_keyword_present_is_found_and_forbidden(before, after, keyword):
    text = " ".join([*before, keyword.upper(), *after])
    for rules in ("ifeval", "hardened"):
        assert holds(text, "keywords:existence", rules, keywords=[keyword])
        assert not holds(text, "keywords:forbidden_words", rules, forbidden_words=[keyword])
    stripped = " ".join(w for w in [*before, *after] if keyword not in w) or "nothing"
    assume(keyword not in "nothing")
    assert not holds(stripped, "keywords:existence", keywords=[keyword])


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=80))
def test_letter_count_is_case_blind(text):
    assume(text.strip())
    n = text.lower().count("q")
    assert holds(text, "keywords:letter_frequency", letter="q", let_frequency=n, let_relation="at least")
    assert not holds(text, "keywords:letter_frequency", letter="Q", let_frequency=n + 1, let_relation="at least")


@settings(max_examples=40, deadline=None)
@given(words=st.lists(st.tuples(WORD, st.booleans()), min_size=1, max_size=12))
def test_capital_words_are_the_all_capital_tokens(words):
    text = " ".join(w.upper() if up else w for w, up in words)
    assert count_capital_words(text) == sum(up for _, up in words)


@settings(max_examples=40, deadline=None)
@given(text=st.text(min_size=1, max_size=80))
def test_case_rules_reject_the_other_case(text):
    assume(text.upper() != text.lower())
    assert not holds(text.upper(), "change_case:english_lowercase")
    assert not holds(text.lower(), "change_case:english_capital")


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=80))
def test_no_comma_holds_exactly_when_there_is_none(text):
    assume(text.strip())
    assert holds(text, "punctuation:no_comma") is ("," not in text)


@settings(max_examples=40, deadline=None)
@given(items=st.lists(WORD, min_size=1, max_size=8), marker=st.sampled_from(["* ", "- "]))
def test_bullets_are_counted_one_per_line(items, marker):
    text = "Intro line\n" + "\n".join(marker + w for w in items)
    for rules in ("ifeval", "hardened"):
        assert holds(text, "detectable_format:number_bullet_lists", rules, num_bullets=len(items))
        assert not holds(text, "detectable_format:number_bullet_lists", rules, num_bullets=len(items) + 1)


@settings(max_examples=40, deadline=None)
@given(items=st.lists(WORD, min_size=1, max_size=6), bold=st.booleans())
def test_highlights_are_counted(items, bold):
    mark = "**" if bold else "*"
    text = " and ".join(f"{mark}{w}{mark}" for w in items)
    assert holds(text, "detectable_format:number_highlighted_sections", num_highlights=len(items))


@settings(max_examples=40, deadline=None)
@given(bodies=st.lists(SENTENCE, min_size=1, max_size=5), spliter=st.sampled_from(["Section", "SECTION", "Part"]))
def test_sections_are_counted(bodies, spliter):
    text = "\n".join(f"{spliter} {i}\n{b}" for i, b in enumerate(bodies, 1))
    kwargs = {"section_spliter": spliter}
    assert holds(text, "detectable_format:multiple_sections", num_sections=len(bodies), **kwargs)
    assert not holds(text, "detectable_format:multiple_sections", num_sections=len(bodies) + 1, **kwargs)


@settings(max_examples=40, deadline=None)
@given(title=st.text(alphabet="ab \t", min_size=1, max_size=10), body=st.text(alphabet="ab> \n", max_size=20))
def test_a_title_needs_text_inside(title, body):
    text = f"<<{title}>>\n{body}"
    assert holds(text, "detectable_format:title") is bool(title.strip())


@settings(max_examples=40, deadline=None)
@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5), lambda c: st.lists(c) | st.dictionaries(st.text(max_size=3), c), max_leaves=6), fence=st.booleans())  # fmt: skip
def test_any_json_value_is_json_and_hardened_wants_a_container(value, fence):
    text = json.dumps(value)
    text = f"```json\n{text}\n```" if fence else text
    assert holds(text, "detectable_format:json_format")
    assert holds(text, "detectable_format:json_format", "hardened") is isinstance(value, dict | list)


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet="abc .", max_size=30), option=st.sampled_from(["yes", "no", "maybe"]))
def test_an_option_anywhere_passes_and_two_fail_hardened(text, option):
    assert holds(f"{text} My answer is {option}.", "detectable_format:constrained_response")
    assert holds(f"{text} My answer is {option}.", "detectable_format:constrained_response", "hardened")
    both = f"My answer is {option}. {text} My answer is maybe. My answer is no."
    assert not holds(both, "detectable_format:constrained_response", "hardened")


@settings(max_examples=40, deadline=None)
@given(a=SENTENCE, b=SENTENCE)
def test_two_different_responses(a, b):
    assert holds(f"{a}\n******\n{b}", "combination:two_responses") is (a != b)


@settings(max_examples=40, deadline=None)
@given(prompt=SENTENCE, answer=st.text(max_size=30), prefix=WORD)
def test_the_answer_starts_with_the_request(prompt, answer, prefix):
    assert holds(prompt.upper() + answer, "combination:repeat_prompt", prompt_to_repeat=prompt)
    assume(not prompt.lower().startswith(prefix))
    assert not holds(f"{prefix} {prompt}", "combination:repeat_prompt", prompt_to_repeat=prompt)


@settings(max_examples=40, deadline=None)
@given(body=st.text(max_size=40), phrase=SENTENCE)
def test_ending_with_the_phrase(body, phrase):
    assert holds(body + phrase + "  ", "startend:end_checker", "hardened", end_phrase=phrase)
    assert holds(body + phrase.lower(), "startend:end_checker", end_phrase=phrase)


@settings(max_examples=40, deadline=None)
@given(body=st.text(alphabet='ab "', max_size=40))
def test_wrapped_in_quotes(body):
    assert holds(f'"{body}"', "startend:quotation")
    assert holds(f'"{body}"', "startend:quotation", "hardened") is bool(body.strip())


@settings(max_examples=40, deadline=None)
@given(body=st.text(alphabet="ab .\n", max_size=40), note=WORD, marker=st.sampled_from(["P.S.", "P.P.S"]))
def test_a_postscript_line(body, note, marker):
    for rules in ("ifeval", "hardened"):
        assert holds(f"{body}\n{marker} {note}", "detectable_content:postscript", rules, postscript_marker=marker)
    assume("p." not in body.lower())
    assert not holds(body + "x", "detectable_content:postscript", postscript_marker=marker)


@settings(max_examples=40, deadline=None)
@given(names=st.lists(WORD, min_size=1, max_size=6))
def test_placeholders_are_counted(names):
    text = " ".join(f"[{n}]" for n in names)
    for rules in ("ifeval", "hardened"):
        assert holds(text, "detectable_content:number_placeholders", rules, num_placeholders=len(names))
        assert not holds(text, "detectable_content:number_placeholders", rules, num_placeholders=len(names) + 1)


# Whatever the hardened rule passes, IFEval's passes (frequency aside: whole words
# count fewer occurrences, which a "less than" rule can only welcome).
SUBSET_IDS = sorted(
    cid
    for cid, c in CONSTRAINTS.items()
    if c.hardened is not None and cid != "keywords:frequency" and not cid.startswith(("language", "change_case"))
)


PIECES = st.sampled_from([*"ab *-\n[]<>\"'{}`,，.:", "P.S.", "***", "```", "My answer is yes.", "Peace!", "harbor"])


@pytest.mark.parametrize("cid", SUBSET_IDS)
@settings(max_examples=60, deadline=None)
@given(text=st.lists(PIECES, max_size=25).map("".join))
def test_hardened_rules_pass_only_what_ifeval_passes(cid, text):
    kwargs = dict(CONSTRAINTS[cid].example_kwargs)
    if check_constraint(text, cid, kwargs, "hardened")[0]:
        assert check_constraint(text, cid, kwargs, "ifeval")[0]
