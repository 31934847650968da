import functools
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rlvr
from rlvr import DatasetEnv, Problem, VerifierError
from rlvr.rewards import Composite

settings_ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DATA = Path(__file__).resolve().parents[0] / "data"
# Dataset environments read small local files in their hub format; the rest need nothing.
ENV_KWARGS = {
    "rlvr/GSM8K-v0": {"data_files": str(DATA / "gsm8k_sample.jsonl")},
    "rlvr/MATH-v0": {"data_files": str(DATA / "math_sample.jsonl")},
    "rlvr/MBPP-v0": {"data_files": str(DATA / "mbpp_sample.jsonl")},
    "rlvr/IFEval-v0": {"data_files": str(DATA / "ifeval_sample.jsonl")},
}


def make(env_id, **kwargs):
    return rlvr.make(env_id, **ENV_KWARGS.get(env_id, {}), **kwargs)


@functools.cache
def make_shared(env_id):
    """One instance per id, for tests that only reset and step.

    A code env's sandbox workers then start once, not once per hypothesis example.
    """
    return make(env_id)


@pytest.mark.parametrize("env_id", sorted(rlvr.env_entries()))
def test_check_env_passes_for_every_registered_env(env_id):
    env = gym.make(env_id, render_mode="ansi", **ENV_KWARGS.get(env_id, {}))
    check_env(env.unwrapped)
    assert isinstance(env.unwrapped, rlvr.BanditEnv)


@pytest.mark.parametrize("env_id", sorted(rlvr.env_entries()))
@settings_
@given(seed=st.integers(0, 2**32 - 1))
def test_seeded_reset_is_reproducible(env_id, seed):
    a, b = make(env_id), make(env_id)
    assert a.reset(seed=seed) == b.reset(seed=seed)
    assert [a.reset()[0] for _ in range(3)] == [b.reset()[0] for _ in range(3)]


COMPLETIONS = st.one_of(
    st.text(max_size=300),
    st.integers(-300, 300).map(lambda n: f"so the answer is \\boxed{{{n}}}"),
    st.sampled_from(["\\boxed{} \\boxed{}", "", "\\boxed{12} \\boxed{13}"]),
)


@pytest.mark.parametrize("env_id", sorted(rlvr.env_entries()))
@settings_
@given(seed=st.integers(0, 10_000), completion=COMPLETIONS)
def test_reward_is_the_composed_verifier_score_and_recomposes(env_id, seed, completion):
    env = make_shared(env_id)
    env.reset(seed=seed)
    inner = env.unwrapped
    _, reward, terminated, truncated, info = env.step(completion)
    assert (terminated, truncated) == (True, False)
    verdict = rlvr.verify(inner.reward_fn, completion, inner.problem)
    assert reward == verdict.score and info["status"] == verdict.status.value
    assert isinstance(inner.reward_fn, Composite)
    assert reward == pytest.approx(inner.reward_fn.combine(info["components"]))
    assert 0.0 <= reward <= 1.0


def test_solved_problem_earns_full_reward():
    env = rlvr.make("rlvr/Arithmetic-v0", digits=3, terms=3, operations="+-*")
    for seed in range(20):
        env.reset(seed=seed)
        answer = env.unwrapped.problem.reference
        assert env.step(f"Working... so \\boxed{{{answer}}}")[1] == 1.0


def test_reset_options_choose_the_problem():
    env = rlvr.make("rlvr/Arithmetic-v0")
    obs, info = env.reset(seed=1)
    again, info2 = env.reset(options={"problem_id": info["problem_id"]})
    assert again == obs and info2["problem_id"] == info["problem_id"]
    mine = Problem(id="mine", prompt="What is 1 + 1?", reference="2")
    assert env.reset(options={"problem": mine})[0] == "What is 1 + 1?"
    assert env.step("\\boxed{2}")[1] == 1.0
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"problme": mine})
    with pytest.raises(TypeError, match="rlvr.Problem"):
        env.reset(options={"problem": "What is 1+1?"})
    with pytest.raises(KeyError, match="integer seeds"):
        env.reset(options={"problem_id": "abc"})


def test_step_misuse_says_what_was_expected():
    env = rlvr.make("rlvr/Arithmetic-v0").unwrapped  # no OrderEnforcing wrapper: our own checks
    with pytest.raises(RuntimeError, match="before reset"):
        env.step("x")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="completion text"):
        env.step(42)
    env.step("\\boxed{1}")
    with pytest.raises(RuntimeError, match="single-step episode is over"):
        env.step("\\boxed{1}")
    small = rlvr.make("rlvr/Arithmetic-v0", max_completion_chars=10)
    small.reset(seed=0)
    with pytest.raises(ValueError, match="at most 10"):
        small.step("x" * 11)


def test_verifier_crash_in_step_names_the_problem():
    def broken(completion, problem):
        raise RuntimeError("verifier bug")

    env = rlvr.make("rlvr/Arithmetic-v0", reward=broken)
    _, info = env.reset(seed=0)
    with pytest.raises(VerifierError, match=f"problem '{info['problem_id']}'.*verifier bug"):
        env.step("\\boxed{1}")


def test_reward_by_registered_name_and_single_verifier_breakdown():
    env = rlvr.make("rlvr/Arithmetic-v0", reward="math")
    env.reset(seed=0)
    _, reward, *_, info = env.step(f"\\boxed{{{env.unwrapped.problem.reference}}}")
    assert reward == 1.0 and info["components"] == {"math": 1.0}


def test_splits_are_disjoint():
    train = rlvr.make("rlvr/Arithmetic-v0", split="train").unwrapped
    test = rlvr.make("rlvr/Arithmetic-v0", split="test").unwrapped
    train.reset(seed=0)
    test.reset(seed=0)
    train_prompts = {train.reset()[0] for _ in range(300)}
    test_prompts = {test.reset()[0] for _ in range(100)}
    assert not train_prompts & test_prompts
    assert len(test_prompts) > 50
    with pytest.raises(ValueError, match="split"):
        rlvr.make("rlvr/Arithmetic-v0", split="dev")


def test_dataset_env_chat_prompts_and_render():
    problems = [
        Problem(
            id=f"q{i}",
            prompt=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Say {i}"}],
            reference=str(i),
        )
        for i in range(3)
    ]
    env = DatasetEnv(problems, reward="exact-match", prompt_format="chat", render_mode="ansi")
    check_env(env)
    obs, info = env.reset(options={"problem_id": "q2"})
    assert obs == ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say 2"})
    assert obs in env.observation_space
    _, reward, *_ = env.step("2")
    assert reward == 1.0
    assert "Say 2" in env.render() and "reward 1" in env.render()
    with pytest.raises(ValueError, match="at least one problem"):
        DatasetEnv([], reward="exact-match")
    with pytest.raises(ValueError, match="duplicate problem id"):
        DatasetEnv(problems + problems[:1], reward="exact-match")
    text_env = DatasetEnv(problems, reward="exact-match")
    with pytest.raises(ValueError, match="chat prompt"):
        text_env.reset()
    with pytest.raises(KeyError, match="no problem with id"):
        env.reset(options={"problem_id": "nope"})


def test_prompt_too_long_for_observation_space():
    env = DatasetEnv([Problem(id="long", prompt="x" * 100, reference="1")], reward="exact-match", max_prompt_chars=10)
    with pytest.raises(ValueError, match="max_prompt_chars"):
        env.reset()


def test_spaces_describe_text_honestly():
    env = rlvr.make("rlvr/Arithmetic-v0").unwrapped
    assert "完全に任意の Unicode 😀 \x00" in env.action_space
    assert "" in env.action_space and 42 not in env.action_space
    assert env.observation_space.contains("What is 1 + 1?")
    assert "" not in env.observation_space  # a prompt is never empty
    env.action_space.seed(0)
    assert all(len(env.action_space.sample()) <= 64 for _ in range(20))


@pytest.mark.parametrize("env_id", sorted(rlvr.env_entries()))
def test_every_builtin_reward_passes_its_self_check(env_id):
    assert make(env_id).unwrapped.self_check(n=8) > 0


@pytest.mark.parametrize("reward, word", [(lambda c, p: 1.0, "known-bad"), (lambda c, p: 0.0, "known-good")])
def test_self_check_stops_fail_open_and_fail_closed_rewards(reward, word):
    env = rlvr.make("rlvr/Arithmetic-v0", reward=reward).unwrapped
    with pytest.raises(rlvr.SelfCheckError, match=word):
        env.self_check()
