import math

import pytest

from rlvr import Problem, Status, Verdict


def test_problem_validates_and_freezes_meta():
    p = Problem(id="a", prompt=[{"role": "user", "content": "hi"}], reference=1, meta={"k": [1]})
    assert isinstance(p.prompt, tuple)
    with pytest.raises(TypeError):
        p.meta["k"] = 2  # read-only view
    with pytest.raises(ValueError, match="non-empty string"):
        Problem(id="", prompt="x", reference=1)
    with pytest.raises(ValueError, match="role"):
        Problem(id="a", prompt=[{"text": "hi"}], reference=1)
    with pytest.raises(TypeError, match="prompt must be"):
        Problem(id="a", prompt=3, reference=1)


def test_verdict_constructors_and_status():
    assert Verdict.from_score(1).status is Status.CORRECT
    assert Verdict.from_score(0.5).status is Status.INCORRECT
    assert Verdict.from_score(True).score == 1.0
    assert Verdict.unscorable("bad ref").status.scored is False
    assert Verdict.error("worker died").status.scored is False
    assert Verdict.incorrect("nope").details["reason"] == "nope"
    with pytest.raises(ValueError, match="NaN"):
        Verdict(math.nan)
    assert Verdict(1.0, "correct").status is Status.CORRECT
