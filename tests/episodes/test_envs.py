"""The built-in multi-turn environments: gymnasium's checker, the episode contract, each game's rules."""

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rlvr
from rlvr.episodes import EpisodeEnv
from rlvr.tools import Tool, format_call

IDS = ["rlvr/ToolMath-v0", "rlvr/Guess-v0"]
settings_ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ECHO = Tool(
    "echo", "Echo the text.", {"type": "object", "properties": {"text": {"type": "string"}}}, lambda text="": text
)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_and_self_check(env_id):
    env = gym.make(env_id, render_mode="ansi")
    check_env(env.unwrapped)
    assert isinstance(env.unwrapped, EpisodeEnv) and env.unwrapped.self_check() > 0


def tool_math(**kwargs):
    return rlvr.make("rlvr/ToolMath-v0", tools=[ECHO], **kwargs).unwrapped  # no sandbox needed


@settings_
@given(seed=st.integers(0, 10_000), turns=st.lists(st.text(max_size=200), min_size=1, max_size=5))
def test_tool_math_episode_contract_on_any_turns(seed, turns):
    """Whatever the turns, the episode ends within max_turns, never raises, and its return is the last reward."""
    env = tool_math(max_turns=3)
    env.reset(seed=seed)
    total, ended = 0.0, False
    for k, text in enumerate(turns, start=1):
        obs, reward, terminated, truncated, info = env.step(text)
        assert info["turn"] == k and obs in env.observation_space
        total += reward
        ended = terminated or truncated
        assert truncated == (not terminated and k == 3)
        if ended:
            break
    assert env.episode_return == total and 0.0 <= total <= 1.0
    if ended:
        with pytest.raises(RuntimeError, match="episode is over"):
            env.step("x")


def test_tool_math_plays_a_tool_call_then_the_answer():
    env = tool_math()
    first, _ = env.reset(seed=3)
    gold = env.problem.reference
    obs, reward, terminated, truncated, info = env.step(format_call("echo", {"text": gold}) + format_call("nope", {}))
    assert [m["role"] for m in obs] == ["tool", "tool"] and obs[0]["content"] == gold
    assert "unknown tool" in obs[1]["content"]
    assert (reward, terminated, truncated, info["tool_calls"], info["tool_errors"]) == (0.0, False, False, 2, 1)
    obs, reward, terminated, truncated, info = env.step(f"So \\boxed{{{gold}}}.")
    assert (obs, reward, terminated, info["status"]) == ((), 1.0, True, "correct")
    assert env.render() is None and len(env.history) == len(first) + 1 + 2 + 1


def test_tool_math_without_an_answer_is_truncated_at_max_turns():
    env = tool_math(max_turns=2)
    env.reset(seed=0)
    call = format_call("echo", {"text": "hi"})
    assert env.step(call)[2:4] == (False, False)
    assert env.step(call)[1:4] == (0.0, False, True)


def test_tool_math_problems_are_products_and_splits_are_disjoint():
    train, test = tool_math(split="train"), tool_math(split="test")
    train.reset(seed=0)
    test.reset(seed=0)
    for _ in range(20):
        train.reset()
        a, b = (int(x) for x in train.problem.meta["expression"].split(" * "))
        assert 100 <= a < 1000 and 10 <= b < 100 and int(train.problem.reference) == a * b
    seen = {train.reset()[0][-1]["content"] for _ in range(200)}
    assert not seen & {test.reset()[0][-1]["content"] for _ in range(50)}


def test_tool_math_shows_a_worked_exchange_before_the_question():
    roles = [m["role"] for m in tool_math().reset(seed=0)[0]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    first = tool_math(demonstration=(3, 4)).reset(seed=0)[0]
    assert "3 * 4" in first[1]["content"] and first[3]["content"] == "12" and first[4]["content"] == "\\boxed{12}"
    assert [m["role"] for m in tool_math(demonstration=None).reset(seed=0)[0]] == ["system", "user"]
    for bad in [(1,), ("1", "2"), (True, 2)]:
        with pytest.raises(ValueError, match="demonstration"):
            tool_math(demonstration=bad)


def guess(**kwargs):
    return rlvr.make("rlvr/Guess-v0", **kwargs).unwrapped


@settings_
@given(seed=st.integers(0, 10_000))
def test_binary_search_always_wins_guess(seed):
    env = guess()
    env.reset(seed=seed)
    low, high = 1, 100
    for turn in range(1, 8):
        mid = (low + high) // 2
        obs, reward, terminated, truncated, _ = env.step(f"guess: {mid}")
        if terminated:
            assert reward == 1.0 and mid == int(env.problem.reference)
            return
        assert not truncated or turn == 7
        low, high = (mid + 1, high) if obs[0]["content"] == "higher" else (low, mid - 1)
    pytest.fail("binary search did not find the number in 7 guesses")


def test_guess_forfeit_penalty_and_truncation():
    env = guess(low=1, high=10, max_turns=2, turn_penalty=0.1)
    env.reset(seed=0)
    secret = int(env.problem.reference)
    assert env.step("no idea")[1:4] == (0.0, True, False)  # no guess: forfeit
    env.reset(seed=0)
    wrong = 1 if secret != 1 else 2
    obs, reward, terminated, truncated, _ = env.step(f"guess: {wrong}")
    assert obs == ({"role": "user", "content": "higher" if wrong < secret else "lower"},)
    assert (reward, terminated, truncated) == (-0.1, False, False)
    assert env.step(f"guess: {wrong}")[1:4] == (-0.1, False, True)
    assert env.episode_return == pytest.approx(-0.2)


def test_guess_held_out_secrets_are_never_trained_on():
    train, test = guess(split="train"), guess(split="test")
    train.reset(seed=0)
    test.reset(seed=0)
    train_secrets = {train.reset() and train.problem.reference for _ in range(400)}
    test_secrets = {test.reset() and test.problem.reference for _ in range(100)}
    assert not train_secrets & test_secrets and len(test_secrets) >= 3
