"""The instruction-following verifier: examples, contract, argument validation, modes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr import Problem, Status
from rlvr.testing import check_verifier
from rlvr.verifiers.instructions import (
    CONSTRAINTS,
    MODES,
    InstructionFollowing,
    build_check,
    check_constraint,
    loose_variants,
)
from rlvr.verifiers.instructions_rules import HARDENED_DIFFERENCES

IFEVAL_IDS = {
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "change_case:capital_word_frequency",
    "change_case:english_capital", "change_case:english_lowercase", "punctuation:no_comma", "startend:quotation",
}  # fmt: skip


def problem(*constraints):
    return Problem("p", "q", [{"id": cid, "kwargs": kwargs} for cid, kwargs in constraints])


def test_all_25_ifeval_ids_are_implemented():
    assert set(CONSTRAINTS) == IFEVAL_IDS


@pytest.mark.parametrize("rules", ["ifeval", "hardened"])
@pytest.mark.parametrize("cid", sorted(CONSTRAINTS))
def test_each_constraint_passes_its_passing_example_and_fails_its_failing_one(cid, rules):
    c = CONSTRAINTS[cid]
    assert check_constraint(c.passing, cid, c.example_kwargs, rules)[0] is True
    assert check_constraint(c.failing, cid, c.example_kwargs, rules)[0] is False


@pytest.mark.parametrize("cid", sorted(CONSTRAINTS))
def test_each_constraint_keeps_the_verifier_contract(cid):
    c = CONSTRAINTS[cid]
    # Text before a response can change it (a word count, the case, the first paragraph).
    check_verifier(
        InstructionFollowing(),
        problem((cid, dict(c.example_kwargs))),
        positives=[c.passing],
        negatives=[c.failing],
        degenerate=False,  # an empty-looking text does satisfy "less than 5 words" or "no commas"
        context_invariant=False,
        whitespace_invariant=cid != "length_constraints:nth_paragraph_first_word",  # blank lines are its divider
        examples=10,
    )


@pytest.mark.parametrize("cid", sorted(CONSTRAINTS))
@settings(max_examples=25, deadline=None)
@given(text=st.text(max_size=300) | st.sampled_from(["", " ", "\x00", "```", "<<>>", "***", "* \n* ", "P.S.", "\n\n"]))
def test_hostile_text_never_raises_and_blank_text_holds_nothing(cid, text):
    for rules in ("ifeval", "hardened"):
        held, why = check_constraint(text, cid, CONSTRAINTS[cid].example_kwargs, rules)
        assert isinstance(held, bool) and isinstance(why, str)
        if not text.strip():
            assert held is False and why == "empty response"


def test_huge_completion_is_bounded():
    huge = "word " * 300_000
    verdict = InstructionFollowing()(huge, problem(("punctuation:no_comma", {})))
    assert verdict.score == 0.0 and "longer than" in verdict.details["reason"]
    assert InstructionFollowing(max_chars=10**7)(huge, problem(("punctuation:no_comma", {}))).score == 1.0


@pytest.mark.parametrize(
    ("cid", "kwargs", "argument"),
    [
        ("keywords:letter_frequency", {"letter": "a", "let_frequency": -1, "let_relation": "at least"}, "let_frequency"),
        ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"}, "letter"),
        ("keywords:letter_frequency", {"letter": "é", "let_frequency": 1, "let_relation": "at least"}, "letter"),
        ("keywords:letter_frequency", {"letter": "a", "let_frequency": 1, "let_relation": "around"}, "let_relation"),
        ("length_constraints:number_words", {"num_words": -5, "relation": "at least"}, "num_words"),
        ("length_constraints:number_words", {"num_words": 5.5, "relation": "at least"}, "num_words"),
        ("length_constraints:number_words", {"num_words": True, "relation": "at least"}, "num_words"),
        ("length_constraints:number_words", {"num_words": 5, "relation": "more than"}, "relation"),
        ("length_constraints:number_words", {"num_words": 5}, "relation"),
        ("length_constraints:number_sentences", {"num_sentences": -1, "relation": "less than"}, "num_sentences"),
        ("length_constraints:number_paragraphs", {"num_paragraphs": -2}, "num_paragraphs"),
        ("length_constraints:nth_paragraph_first_word",
         {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}, "nth_paragraph"),
        ("length_constraints:nth_paragraph_first_word",
         {"num_paragraphs": 2, "nth_paragraph": 0, "first_word": "a"}, "nth_paragraph"),
        ("language:response_language", {"language": "xx"}, "language"),
        ("language:response_language", {"language": "German"}, "language"),
        ("keywords:existence", {"keywords": "harbor"}, "keywords"),
        ("keywords:existence", {"keywords": []}, "keywords"),
        ("keywords:existence", {"keywords": ["harbor", " "]}, "keywords[1]"),
        ("keywords:frequency", {"keyword": "", "frequency": 1, "relation": "at least"}, "keyword"),
        ("change_case:capital_word_frequency", {"capital_frequency": -3, "capital_relation": "at least"},
         "capital_frequency"),
        ("change_case:capital_word_frequency", {"capital_frequency": 3, "capital_relation": "most"}, "capital_relation"),
        ("detectable_format:number_bullet_lists", {"num_bullets": -1}, "num_bullets"),
        ("detectable_format:number_highlighted_sections", {"num_highlights": -1}, "num_highlights"),
        ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": -1}, "num_sections"),
        ("detectable_content:number_placeholders", {"num_placeholders": -1}, "num_placeholders"),
        ("combination:repeat_prompt", {}, "prompt_to_repeat"),
        ("startend:end_checker", {"end_phrase": "  "}, "end_phrase"),
        ("punctuation:no_comma", {"strict": True}, "strict"),
    ],
)  # fmt: skip
def test_bad_arguments_are_a_value_error_naming_the_argument_at_construction(cid, kwargs, argument):
    with pytest.raises(ValueError, match=rf"\b{argument.replace('[', '.').replace(']', '.')}"):
        build_check(cid, kwargs)
    verdict = InstructionFollowing()("some text", problem((cid, kwargs)))
    assert verdict.status == Status.UNSCORABLE and argument.split("[")[0] in verdict.details["reason"]


def test_unknown_ids_rule_sets_and_modes():
    with pytest.raises(KeyError, match="unknown constraint"):
        build_check("no:such")
    with pytest.raises(ValueError, match="rules"):
        build_check("punctuation:no_comma", rules="lenient")
    with pytest.raises(ValueError, match="mode"):
        InstructionFollowing("lenient")
    with pytest.raises(ValueError, match="rules"):
        InstructionFollowing(rules="lenient")
    assert MODES == ("strict", "loose", "fraction")


def test_bad_references_are_unscorable():
    v = InstructionFollowing()
    assert v("x", Problem("p", "q", [])).status == Status.UNSCORABLE
    assert v("x", Problem("p", "q", "no_comma")).status == Status.UNSCORABLE
    assert v("x", Problem("p", "q", ["punctuation:no_comma"])).status == Status.UNSCORABLE
    assert v("x", problem(("no:such", {}))).status == Status.UNSCORABLE
    assert v("x", problem(("keywords:existence", {"wrong": 1}))).status == Status.UNSCORABLE


def test_strict_fraction_and_details():
    p = problem(("punctuation:no_comma", {}), ("detectable_format:title", {}))
    text = "no commas and no title"
    strict, fraction = InstructionFollowing("strict")(text, p), InstructionFollowing("fraction")(text, p)
    assert strict.score == 0.0 and fraction.score == 0.5 and fraction.status == Status.INCORRECT
    assert [c["held"] for c in strict.details["constraints"]] == [True, False]
    assert InstructionFollowing()("<<T>> no commas", p).status == Status.CORRECT


def test_loose_mode_is_ifevals_variants_not_partial_credit():
    bullets = problem(("detectable_format:number_bullet_lists", {"num_bullets": 2}))
    chatty = "Sure, here is a list:\n* sand\n* salt\n* sun\nHope this helps!"
    assert InstructionFollowing("strict")(chatty, bullets).score == 0.0
    assert InstructionFollowing("loose")(chatty, bullets).score == 0.0  # three bullets on every variant
    two = "Sure, here is a list:\n* sand\n* salt"
    assert InstructionFollowing("loose")(two, bullets).score == 1.0
    # The first line is dropped in a loose variant: a chatty preamble before a JSON body passes loosely only.
    p = problem(("detectable_format:json_format", {}))
    text = 'Here is the JSON:\n{"a": 1}'
    assert InstructionFollowing("strict")(text, p).score == 0.0
    loose = InstructionFollowing("loose")(text, p)
    assert loose.score == 1.0 and loose.details["constraints"][0]["why"].startswith("loose:")
    # Loose never gives partial credit: one constraint failing on every variant fails the prompt.
    both = problem(("detectable_format:json_format", {}), ("detectable_format:title", {}))
    assert InstructionFollowing("loose")(text, both).score == 0.0


def test_loose_variants_are_ifevals_eight():
    variants = loose_variants("first *a*\nmiddle\nlast")
    assert variants == [
        "first *a*\nmiddle\nlast", "first a\nmiddle\nlast", "middle\nlast", "first *a*\nmiddle", "middle",
        "middle\nlast", "first a\nmiddle", "middle",
    ]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab *,\n.<>[]P.S"), max_size=60))
def test_whatever_holds_strictly_holds_loosely(text):
    for cid in ("punctuation:no_comma", "detectable_format:title", "detectable_content:number_placeholders"):
        p = problem((cid, dict(CONSTRAINTS[cid].example_kwargs)))
        if InstructionFollowing("strict")(text, p).score == 1.0:
            assert InstructionFollowing("loose")(text, p).score == 1.0


def test_every_hardened_difference_is_documented_and_some_rule_implements_it():
    hardened = [c for c in CONSTRAINTS.values() if c.hardened is not None]
    assert len(hardened) >= len(HARDENED_DIFFERENCES) - 1  # "language" covers three rules, "keywords" two
    assert all(c.hardened.__doc__ for c in hardened)
