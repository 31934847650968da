import numpy as np
import pytest

import rlvr
from rlvr.envs.countdown import CountdownEnv
from rlvr.verifiers.countdown import CountdownVerifier, evaluate


@pytest.mark.parametrize("count, max_number", [(2, 10), (4, 25), (6, 50)])
def test_every_problem_is_solvable_by_its_own_solution(count, max_number):
    env = CountdownEnv(count=count, max_number=max_number)
    rng = np.random.default_rng(1)
    verifier = CountdownVerifier()
    for _ in range(100):
        problem = env.draw_problem(rng)
        ref = problem.reference
        assert len(ref["numbers"]) == count and all(1 <= n <= max_number for n in ref["numbers"])
        value, used = evaluate(ref["solution"])
        assert value == ref["target"] and sorted(used) == sorted(ref["numbers"])
        assert verifier(f"\\boxed{{{ref['solution']}}}", problem).score == 1.0
        assert str(ref["numbers"]) in problem.prompt and str(ref["target"]) in problem.prompt


def test_targets_respect_max_target_when_possible():
    env = CountdownEnv(count=4, max_number=20, max_target=100)
    rng = np.random.default_rng(2)
    targets = [env.draw_problem(rng).reference["target"] for _ in range(200)]
    assert sum(t <= 100 for t in targets) >= 195 and min(targets) >= 1


def test_bad_knobs_are_rejected():
    for kwargs in [{"count": 1}, {"count": 7}, {"max_number": 1}, {"max_target": 0}, {"prompt": "{numbers} only"}]:
        with pytest.raises(ValueError):
            rlvr.make("rlvr/Countdown-v0", **kwargs)


def test_default_reward_end_to_end():
    env = rlvr.make("rlvr/Countdown-v0")
    env.reset(seed=11)
    solution = env.unwrapped.problem.reference["solution"]
    assert env.step(f"I combine them: \\boxed{{{solution}}}")[1] == 1.0
    env.reset(seed=11)
    assert env.step(r"\boxed{1 + 1}")[1] == pytest.approx(0.1)  # format credit only
