import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr import Problem, Status
from rlvr.testing import check_verifier
from rlvr.verifiers.instructions import CONSTRAINTS, InstructionFollowing, check_constraint


def problem(*constraints):
    return Problem("p", "q", [{"id": cid, "kwargs": kwargs} for cid, kwargs in constraints])


@pytest.mark.parametrize("cid", sorted(CONSTRAINTS))
def test_each_constraint_passes_its_passing_example_and_fails_its_failing_one(cid):
    c = CONSTRAINTS[cid]
    assert check_constraint(c.passing, cid, c.example_kwargs)[0] is True
    assert check_constraint(c.failing, cid, c.example_kwargs)[0] is False


@pytest.mark.parametrize("cid", sorted(CONSTRAINTS))
def test_each_constraint_keeps_the_verifier_contract(cid):
    c = CONSTRAINTS[cid]
    p = problem((cid, dict(c.example_kwargs)))
    # Whitespace around the text changes nothing; text before it can (a word count, the case), so no context rule.
    whitespace = cid not in ("detectable_format:json_format",)
    check_verifier(
        InstructionFollowing(),
        p,
        positives=[c.passing],
        negatives=[c.failing],
        degenerate=False,  # an empty text does satisfy "no commas" or "at most 5 words"
        context_invariant=False,
        whitespace_invariant=whitespace,
        examples=10,
    )


@pytest.mark.parametrize("cid", sorted(CONSTRAINTS))
@settings(max_examples=30, deadline=None)
@given(text=st.text(max_size=400) | st.sampled_from(["", " ", "\x00", "```", "<<>>", "***", "* \n* ", "P.S."]))
def test_hostile_text_never_raises_and_returns_a_bool(cid, text):
    held, why = check_constraint(text, cid, CONSTRAINTS[cid].example_kwargs)
    assert isinstance(held, bool) and isinstance(why, str)


def test_huge_completion_is_bounded():
    huge = "word " * 300_000
    verdict = InstructionFollowing()(huge, problem(("punctuation:no_comma", {})))
    assert verdict.score == 0.0 and "longer than" in verdict.details["reason"]
    assert InstructionFollowing(max_chars=10**7)(huge, problem(("punctuation:no_comma", {}))).score == 1.0


def test_keywords_inside_a_code_block_do_not_count():
    kw = {"keywords": ["harbor"]}
    assert not check_constraint("Nice.\n```python\nharbor = 1\n```", "keywords:existence", kw)[0]
    assert check_constraint("The harbor.\n```\nx\n```", "keywords:existence", kw)[0]
    assert check_constraint("Fine.\n```\nblue = 1\n```", "keywords:forbidden_words", {"forbidden_words": ["blue"]})[0]
    assert check_constraint("wave ```wave wave```", "keywords:frequency", {"keyword": "wave", "frequency": 2})[
        1
    ].startswith("'wave' appears 1")


def test_relations_and_whole_words():
    assert check_constraint(
        "one two three", "length_constraints:number_words", {"num_words": 3, "relation": "exactly"}
    )[0]
    assert not check_constraint(
        "one two three", "length_constraints:number_words", {"num_words": 3, "relation": "less than"}
    )[0]
    assert (
        check_constraint("bluebird", "keywords:forbidden_words", {"forbidden_words": ["blue"]})[0] is True
    )  # whole words
    with pytest.raises(ValueError, match="relation"):
        check_constraint("x", "length_constraints:number_words", {"num_words": 3, "relation": "around"})


def test_unicode_and_json_schema():
    assert check_constraint("ÉCOLE ÉTÉ", "change_case:english_capital")[0]
    assert check_constraint("Ça va, très bien", "punctuation:no_comma")[0] is False
    assert check_constraint('{"a": 1, "b": 2}', "detectable_format:json_format", {"schema_keys": ["a", "b"]})[0]
    assert not check_constraint('{"a": 1}', "detectable_format:json_format", {"schema_keys": ["a", "b"]})[0]
    assert not check_constraint(json.dumps([1, 2]), "detectable_format:json_format", {"schema_keys": ["a"]})[0]


def test_strict_and_loose_modes_and_details():
    p = problem(("punctuation:no_comma", {}), ("change_case:english_lowercase", {}))
    text = "hello, world"
    strict, loose = InstructionFollowing("strict")(text, p), InstructionFollowing("loose")(text, p)
    assert strict.score == 0.0 and loose.score == 0.5 and loose.status == Status.INCORRECT
    assert [c["held"] for c in strict.details["constraints"]] == [False, True]
    assert InstructionFollowing()("hello world", p).status == Status.CORRECT


def test_bad_references_are_unscorable():
    v = InstructionFollowing()
    assert v("x", Problem("p", "q", [])).status == Status.UNSCORABLE
    assert v("x", Problem("p", "q", "no_comma")).status == Status.UNSCORABLE
    assert v("x", problem(("no:such", {}))).status == Status.UNSCORABLE
    assert v("x", problem(("keywords:existence", {"wrong": 1}))).status == Status.UNSCORABLE
    with pytest.raises(ValueError, match="mode"):
        InstructionFollowing("lenient")
