import pytest

from rlvr import Problem, Status
from rlvr.testing import check_verifier
from rlvr.verifiers.exact_match import ExactMatch, normalize


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("Paris", "paris", True),
        ("  Paris.  ", "paris", True),
        ("New   York", "new york", True),
        ("ｆｕｌｌwidth", "fullwidth", True),  # NFKC
        ("-3", "3", False),
        ("3.5", "35", False),
        ("1,000", "1000", False),
        ("42.", "42", True),
        ("The Beatles", "beatles", False),
    ],
)
def test_normalize(a, b, same):
    assert (normalize(a) == normalize(b)) is same


def test_normalize_options():
    assert normalize("The Beatles", ignore_articles=True) == "beatles"
    assert normalize("Paris", case_sensitive=True) != normalize("paris", case_sensitive=True)
    assert normalize("a.b", ignore_punctuation=False) == "a.b"


def test_extraction_modes():
    p = Problem(id="p", prompt="q", reference=["Paris", "paris, france"])
    assert ExactMatch()("Paris!", p).score == 1.0
    assert ExactMatch()("It is Paris", p).score == 0.0
    assert ExactMatch(extract="boxed")(r"It is \boxed{Paris}", p).score == 1.0
    assert ExactMatch(extract="answer_tag")("<answer>Paris, France</answer>", p).score == 1.0
    assert ExactMatch(extract="last_line")("Thinking...\nParis", p).score == 1.0
    verdict = ExactMatch(extract="boxed")("Paris", p)
    assert verdict.score == 0.0 and "no answer found" in verdict.details["reason"]
    with pytest.raises(ValueError, match="extract must be"):
        ExactMatch(extract="anywhere")


def test_unusable_reference_is_unscorable():
    verdict = ExactMatch()("x", Problem(id="p", prompt="q", reference=None))
    assert verdict.status is Status.UNSCORABLE and verdict.score == 0.0


def test_exact_match_contract():
    p = Problem(id="p", prompt="q", reference="42")
    check_verifier(
        ExactMatch(extract="boxed"),
        p,
        positives=[r"so \boxed{42}"],
        negatives=[r"\boxed{43}", "42"],
        sprayed_answer="42",
    )
    check_verifier(ExactMatch(), p, positives=["42"], negatives=["43"], context_invariant=False)
