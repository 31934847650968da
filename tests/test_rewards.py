import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlvr import Clip, Gate, Problem, Status, Verdict, WeightedSum
from rlvr.rewards import combine_status, describe


def const(score, status=None):
    def fn(completion, problem):
        return Verdict(score, status or ("correct" if score >= 1 else "incorrect"))

    return fn


def test_weighted_sum_hand_computed(problem):
    r = WeightedSum({"a": const(1.0), "b": const(0.5), "c": const(0.0)}, weights={"a": 0.5, "b": 0.4})
    v = r("x", problem)
    assert v.score == pytest.approx(0.5 * 1.0 + 0.4 * 0.5 + 1.0 * 0.0)  # c defaults to weight 1
    assert {k: c["score"] for k, c in v.details["components"].items()} == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert v.status is Status.INCORRECT


def test_gate_counts_reward_only_when_condition_holds(problem):
    open_ = Gate(const(1.0), const(0.7), names=("fmt", "ans"))
    shut = Gate(const(0.0), const(0.7), otherwise=-0.5)
    assert open_("x", problem).score == pytest.approx(0.7)
    assert shut("x", problem).score == -0.5
    assert set(open_("x", problem).details["components"]) == {"fmt", "ans"}
    with pytest.raises(ValueError, match="distinct"):
        Gate(const(1), const(1), names=("a", "a"))


def test_clip_and_nested_leaf_names(problem):
    inner = WeightedSum({"a": const(1.0), "g": Gate(const(1.0), const(1.0))}, weights={"a": 2.0})
    r = Clip(inner, 0.0, 1.5)
    v = r("x", problem)
    assert v.score == 1.5  # 2*1 + 1 clipped
    assert set(r.leaves()) == {"a", "g/condition", "g/reward"}
    leaf = Clip(const(3.0), high=1.0, name="raw")
    assert set(leaf.leaves()) == {"raw"} and leaf("x", problem).score == 1.0
    with pytest.raises(ValueError, match="low <= high"):
        Clip(const(1), 2, 1)


def test_status_of_composite():
    S = Status
    assert combine_status([S.CORRECT, S.CORRECT]) is S.CORRECT
    assert combine_status([S.CORRECT, S.INCORRECT]) is S.INCORRECT
    assert combine_status([S.INCORRECT, S.UNSCORABLE]) is S.UNSCORABLE
    assert combine_status([S.UNSCORABLE, S.ERROR, S.CORRECT]) is S.ERROR


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="unknown components"):
        WeightedSum({"a": const(1)}, weights={"b": 1.0})
    with pytest.raises(ValueError, match="at least one"):
        WeightedSum({})
    with pytest.raises(ValueError, match="must not contain '/'"):
        WeightedSum({"a/b": const(1)})


@given(
    scores=st.lists(st.floats(0, 1), min_size=3, max_size=3),
    weights=st.lists(st.floats(-2, 2), min_size=3, max_size=3),
    threshold=st.floats(0, 1),
)
def test_reward_recomposes_from_its_breakdown(scores, weights, threshold):
    p = Problem(id="p", prompt="q", reference="r")
    r = Clip(
        WeightedSum(
            {"x": const(scores[0]), "gated": Gate(const(scores[1]), const(scores[2]), threshold=threshold)},
            weights={"x": weights[0], "gated": weights[1]},
        ),
        low=-1.0,
        high=1.0,
    )
    v = r("c", p)
    leaves = {k: c["score"] for k, c in v.details["components"].items()}
    assert v.score == r.combine(leaves)
    gated = scores[2] if scores[1] >= threshold else 0.0
    assert v.score == pytest.approx(min(max(weights[0] * scores[0] + weights[1] * gated, -1.0), 1.0))


def test_batch_matches_single_calls():
    r = WeightedSum({"eq": lambda c, p: c == p.reference, "len": lambda c, p: min(len(c), 4) / 4})
    problems = [Problem(id=str(i), prompt="q", reference=str(i)) for i in range(4)]
    completions = ["0", "xx", "2", "nope"]
    assert r.batch(completions, problems) == [r(c, p) for c, p in zip(completions, problems, strict=True)]


def test_describe():
    from rlvr.verifiers.format import boxed_answer_reward
    from rlvr.verifiers.math_equivalence import MathVerifier

    assert (
        describe(boxed_answer_reward(MathVerifier()))
        == "0.9*(math if boxed-once >= 1 else 0)[answer] + 0.1*boxed-once[format]"
    )
