"""Dynamic sampling: counting groups with signal, joining draws, and when to stop drawing."""

import numpy as np
import pytest
import torch
from toymodels import ToyRun

import rlvr
from rlvr.batched import BatchResult
from rlvr.dynamic_sampling import concat_results, concat_rollouts, draw_until_signal, signal_groups
from rlvr.rollout import SamplingParams


def result(rewards, scored=None) -> BatchResult:
    rewards = np.asarray(rewards, dtype=np.float64)
    scored = np.ones_like(rewards, dtype=bool) if scored is None else np.asarray(scored)
    return BatchResult(rewards, scored, [[{} for _ in row] for row in rewards], [])


def test_a_group_has_signal_only_when_two_scored_rewards_differ():
    assert signal_groups(result([[1, 1, 1], [0, 1, 0], [0, 0, 0]])) == 1
    # the differing reward is unscored: no signal; one scored reward alone: none either
    assert signal_groups(result([[1, 0, 1], [0, 1, 1]], [[True, False, True], [False, True, False]])) == 0
    assert signal_groups(result([[0.5, 0.25], [0.1, 0.1]])) == 1


def test_draws_stop_at_the_target_or_the_limit():
    def fake(batches):
        calls = []

        def draw(i):
            calls.append(i)
            return [rlvr.Problem(id=f"{i}", prompt="p", reference="r")], None, batches[i]

        return draw, calls

    flat, useful = result([[0, 0]]), result([[0, 1]])
    draw, calls = fake([flat, flat, useful, useful])
    with pytest.MonkeyPatch.context() as mp:  # rollouts are not joined here: only the decision is under test
        mp.setattr("rlvr.dynamic_sampling.concat_rollouts", lambda parts: parts)
        (problems, _, joined), n = draw_until_signal(draw, target=1, max_draws=8)
        assert n == 3 and calls == [0, 1, 2] and [p.id for p in problems] == ["0", "1", "2"]
        assert joined.rewards.tolist() == [[0, 0], [0, 0], [0, 1]]
        draw, calls = fake([flat] * 5)
        assert draw_until_signal(draw, target=1, max_draws=2)[1] == 2 and calls == [0, 1]  # the limit wins
        draw, calls = fake([useful])
        assert draw_until_signal(draw, target=4, max_draws=1)[1] == 1  # 1: no dynamic sampling
        # with several ranks the count is global: another rank's signal stops this one too
        draw, calls = fake([flat] * 5)
        assert draw_until_signal(draw, target=1, max_draws=5, total=lambda n: n + 1)[1] == 1


def test_joined_results_shift_error_indices():
    a = BatchResult(np.zeros((2, 2)), np.ones((2, 2), bool), [[{}, {}], [{}, {}]], [(1, 0, "boom")])
    b = BatchResult(np.ones((1, 2)), np.zeros((1, 2), bool), [[{"x": 1}, {}]], [(0, 1, "bang")])
    joined = concat_results([a, b])
    assert joined.rewards.shape == (3, 2) and joined.scored[2].tolist() == [False, False]
    assert joined.errors == [(1, 0, "boom"), (2, 1, "bang")] and joined.infos[2][0] == {"x": 1}


def test_joined_rollouts_score_each_row_as_it_was_sampled():
    run = ToyRun(seed=0)
    short = run.engine.generate(["ab", "cd"], SamplingParams(n=2, max_new_tokens=3, seed=1))
    long = run.engine.generate(["abcdefg"], SamplingParams(n=2, max_new_tokens=5, seed=2))
    joined = concat_rollouts([short, long])
    assert joined.group.tolist() == [0, 0, 1, 1, 2, 2] and joined.groups()[2] == long.texts
    assert joined.texts == short.texts + long.texts and joined.prompt_len == long.prompt_len
    logp = run.policy.logprobs(joined.input_ids, joined.attention_mask, joined.prompt_len)  # [6, T]
    for part, rows in ((short, slice(0, 4)), (long, slice(4, 6))):
        alone = run.policy.logprobs(part.input_ids, part.attention_mask, part.prompt_len)
        width = alone.shape[1]
        torch.testing.assert_close(logp[rows, :width] * part.completion_mask, alone * part.completion_mask)
        assert (joined.completion_mask[rows, width:] == 0).all()
        torch.testing.assert_close(joined.sampler_logprobs[rows, :width], part.sampler_logprobs)
