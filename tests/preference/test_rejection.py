"""Rejection sampling and best-of-N: the selection rules of ref 002 on its own example."""

import json

import numpy as np
import pytest
from toymodels import char_tokenizer, tiny_llama, toy_env

from rlvr.preference.rejection import Scored, best_of_n, sample_and_score, select, write_sft
from rlvr.rollout import TransformersEngine
from rlvr.types import Problem

# ref 002, "Rejection Sampling": 5 prompts x 4 completions
R = np.array(
    [
        [0.7, 0.3, 0.5, 0.2],
        [0.4, 0.8, 0.6, 0.5],
        [0.9, 0.3, 0.4, 0.7],
        [0.2, 0.5, 0.8, 0.6],
        [0.5, 0.4, 0.3, 0.6],
    ]
)


def example() -> Scored:
    problems = [Problem(id=f"q{m}", prompt=f"prompt {m}", reference=None) for m in range(5)]
    texts = [[f"reply {m}.{j}" for j in range(4)] for m in range(5)]
    return Scored(problems, texts, R.copy(), R >= 0.8)


def test_top_per_prompt_is_the_slides_answer():
    assert select(example()) == [(0, 0), (1, 1), (2, 0), (3, 2), (4, 3)]  # S(R) = [1, 2, 1, 3, 4], 1-based


def test_top_k_overall_can_skip_prompts_and_take_two_from_one():
    picks = select(example(), "top_k", k=5)
    assert picks == [(2, 0), (1, 1), (3, 2), (0, 0), (2, 3)]  # 0.9, 0.8, 0.8 (stable), 0.7, 0.7
    assert 4 not in {m for m, _ in picks} and [m for m, _ in picks].count(2) == 2
    with pytest.raises(ValueError, match="k > 0"):
        select(example(), "top_k")


def test_min_reward_and_unscored_samples_are_never_kept():
    scored = example()
    scored.rewards[2, 0] = -np.inf  # unscored
    assert (2, 0) not in select(scored)
    assert select(scored, min_reward=0.75) == [(1, 1), (3, 2)]


def test_write_sft_rows(tmp_path):
    scored = example()
    path = write_sft(scored, select(scored), tmp_path / "sft.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {"prompt": "prompt 0", "completion": "reply 0.0", "problem_id": "q0", "reward": 0.7}
    chat = write_sft(scored, [(1, 1)], tmp_path / "chat.jsonl", chat=True)
    assert json.loads(chat.read_text())["messages"][-1] == {"role": "assistant", "content": "reply 1.1"}


def test_best_of_n_never_does_worse_than_one_sample():
    tok = char_tokenizer()
    engine = TransformersEngine(tiny_llama(len(tok)), tok, chat_template=False)
    env = toy_env()
    problems = env.distinct_problems(6, seed=0)
    report = best_of_n(engine, env, problems, n=8, max_new_tokens=4)
    scored = sample_and_score(engine, env, problems, n=8, max_new_tokens=4)
    assert report.best_reward == pytest.approx(scored.rewards.max(axis=1).mean())
    assert report.best_reward >= report.mean_reward and len(report.best) == 6
    assert report.best_accuracy <= report.any_correct
