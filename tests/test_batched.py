import numpy as np
import pytest

import rlvr
from rlvr import BatchedEnv, VerifierError


def test_batched_rewards_equal_env_step():
    env = rlvr.make("rlvr/Arithmetic-v0", operations="+-")
    batched = BatchedEnv(env)
    problems = batched.reset(3, seed=7)
    assert [p.id for p in problems] == [
        p.id for p in BatchedEnv(rlvr.make("rlvr/Arithmetic-v0", operations="+-")).reset(3, seed=7)
    ]
    completions = [[f"\\boxed{{{p.reference}}}", "\\boxed{} \\boxed{}", "no box", "\\boxed{-1}"] for p in problems]
    result = batched.step(problems, completions)
    assert result.rewards.shape == (3, 4) and result.scored.all()
    for b, problem in enumerate(problems):
        for g, completion in enumerate(completions[b]):
            env.reset(options={"problem": problem})
            _, reward, *_, info = env.step(completion)
            assert result.rewards[b, g] == reward
            assert result.infos[b][g] == info
    np.testing.assert_allclose(result.rewards[:, 0], 1.0)
    np.testing.assert_allclose(result.rewards[:, 1], 0.0)


def flaky(completion, problem):
    if "crash" in completion:
        raise RuntimeError("verifier bug")
    return 1.0


def test_errors_raise_or_are_recorded_and_masked():
    batched = BatchedEnv(rlvr.make("rlvr/Arithmetic-v0", reward=flaky))
    problems = batched.reset(2, seed=0)
    completions = [["ok", "crash"], ["ok", "ok"]]
    with pytest.raises(VerifierError, match=problems[0].id):
        batched.step(problems, completions)
    result = batched.step(problems, completions, on_error="record")
    assert result.scored.tolist() == [[True, False], [True, True]]
    assert result.rewards.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert result.errors[0][:2] == (0, 1) and "verifier bug" in result.errors[0][2]
    assert result.infos[0][1]["status"] == "error"


def test_unscorable_reference_is_masked_not_zeroed():
    env = rlvr.make("rlvr/Arithmetic-v0", reward="math")
    batched = BatchedEnv(env)
    bad = rlvr.Problem(id="bad", prompt="?", reference=None)
    result = batched.step([bad], [["\\boxed{1}"]])
    assert result.scored.tolist() == [[False]] and result.infos[0][0]["status"] == "unscorable"


def test_ragged_groups_and_bad_input():
    batched = BatchedEnv(rlvr.make("rlvr/Arithmetic-v0"))
    problems = batched.reset(2, seed=0)
    result = batched.step(problems, [["a"], ["b", "c"]])
    assert result.rewards.dtype == object and len(result.rewards[1]) == 2
    with pytest.raises(ValueError, match="2 problems but 1"):
        batched.step(problems, [["a"]])
    with pytest.raises(TypeError, match=r"completions\[0\]\[0\] must be str"):
        batched.step(problems, [[None], ["x"]])
    with pytest.raises(ValueError, match="n must be"):
        batched.reset(0)
    with pytest.raises(TypeError, match="BanditEnv"):
        import gymnasium as gym

        BatchedEnv(gym.make("CartPole-v1"))


def test_distinct_problems_of_a_chat_prompt_environment():
    env = rlvr.BatchedEnv(rlvr.make("rlvr/ToolMath-v0", split="test"))
    problems = env.distinct_problems(5, seed=3)
    assert isinstance(problems[0].prompt, tuple)  # messages, which are dicts and not hashable
    assert len({str(p.prompt) for p in problems}) == 5
    assert [p.id for p in problems] == [p.id for p in env.distinct_problems(5, seed=3)]


def test_distinct_problems_of_a_game_with_one_prompt_differ_by_reference():
    env = rlvr.BatchedEnv(rlvr.make("rlvr/Guess-v0", low=1, high=20, split="all"))
    problems = env.distinct_problems(10, seed=0)
    assert len(problems) == 10 and len({p.reference for p in problems}) == 10
    assert len({str(p.prompt) for p in problems}) == 1
