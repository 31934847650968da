"""Preference pairs: the three row formats, loading through datasets, splits, pairs made from an environment."""

import json

import numpy as np
import pytest
from toymodels import char_tokenizer, tiny_llama, toy_env

import rlvr
from rlvr.preference.pairs import (
    PreferencePair,
    counterfactual_pairs,
    load_pairs,
    pair_from_row,
    pairs_from_env,
    rewrite_boxed_integer,
    save_pairs,
    shift_boxed_integer,
    split_pairs,
)
from rlvr.preference.rejection import Scored
from rlvr.rollout import TransformersEngine


def test_text_rows():
    pair = pair_from_row({"prompt": "2+2?", "chosen": "4", "rejected": "5"})
    assert pair == PreferencePair("2+2?", "4", "5")


def test_message_rows_with_and_without_an_explicit_prompt():
    user = {"role": "user", "content": "2+2?"}
    explicit = pair_from_row(
        {
            "prompt": [user],
            "chosen": [{"role": "assistant", "content": "4"}],
            "rejected": [{"role": "assistant", "content": "5"}],
        }
    )
    implicit = pair_from_row(
        {
            "chosen": [user, {"role": "assistant", "content": "4"}],
            "rejected": [user, {"role": "assistant", "content": "5"}],
        }
    )
    assert explicit.prompt == implicit.prompt == ({"role": "user", "content": "2+2?"},)
    assert (explicit.chosen, explicit.rejected) == (implicit.chosen, implicit.rejected) == ("4", "5")


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "x", "chosen": "a"}, "needs 'chosen' and 'rejected'"),
        ({"chosen": "a", "rejected": "b"}, "need a 'prompt'"),
        ({"prompt": "x", "chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]}, "both be text"),
        (
            {"chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]},
            "share no prompt",
        ),
    ],
)
def test_malformed_rows_say_which_and_why(row, message):
    with pytest.raises(ValueError, match=message):
        pair_from_row(row, 7)


def test_save_then_load_through_datasets(tmp_path):
    pairs = [PreferencePair(f"p{i}", f"good {i}", f"bad {i}", {"problem_id": str(i)}) for i in range(5)]
    path = save_pairs(pairs, tmp_path / "pairs.jsonl")
    assert json.loads(path.read_text().splitlines()[0])["chosen"] == "good 0"
    assert load_pairs(str(path)) == pairs
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pairs(str(tmp_path / "missing.jsonl"))
    (tmp_path / "empty.jsonl").write_text('{"prompt": "x", "chosen": "a"}\n')
    with pytest.raises(ValueError, match="row 0"):
        load_pairs(str(tmp_path / "empty.jsonl"))


def test_split_keeps_each_prompt_on_one_side():
    pairs = [PreferencePair(f"p{i % 10}", f"a{i}", f"b{i}") for i in range(40)]
    train, test = split_pairs(pairs, 0.3, seed=1)
    assert len(train) + len(test) == 40 and len(test) == 12
    assert not {p.prompt for p in train} & {p.prompt for p in test}


def test_pairs_from_env_prefer_the_higher_reward():
    tok = char_tokenizer()
    engine = TransformersEngine(tiny_llama(len(tok)), tok, chat_template=False)
    env = toy_env()
    problems = env.distinct_problems(6, seed=0)
    pairs = pairs_from_env(engine, env, problems, n=8, max_new_tokens=4, pairs_per_prompt=3)
    assert pairs, "a random tiny model's samples differ in reward"
    for pair in pairs:
        assert pair.meta["chosen_reward"] > pair.meta["rejected_reward"] and pair.chosen != pair.rejected
        problem = next(p for p in problems if p.id == pair.meta["problem_id"])
        rescored = env.step([problem], [[pair.chosen, pair.rejected]]).rewards[0]
        assert rescored[0] > rescored[1]
    per_prompt = {}
    for pair in pairs:
        per_prompt[pair.meta["problem_id"]] = per_prompt.get(pair.meta["problem_id"], 0) + 1
    assert max(per_prompt.values()) <= 3


def test_shift_boxed_integer_moves_only_the_last_plain_integer_box():
    rng = np.random.default_rng(0)
    assert shift_boxed_integer("3 + 4 = \\boxed{7}.", rng, shifts=[1]) == "3 + 4 = \\boxed{8}."
    assert shift_boxed_integer("\\boxed{1} then \\boxed{ 12 }", rng, shifts=[-2]) == "\\boxed{1} then \\boxed{ 10 }"
    assert shift_boxed_integer("\\boxed{-3}", rng, shifts=[10]) == "\\boxed{7}"
    assert shift_boxed_integer("\\boxed{6 + 6 = 12}", rng, shifts=[1]) == "\\boxed{6 + 6 = 13}"
    assert shift_boxed_integer("\\boxed{1 + 8 = \\boxed{9}}", rng, shifts=[1]) == "\\boxed{1 + 8 = \\boxed{10}}"
    for text in ["no box", "\\boxed{x}", "\\boxed{3.5}", "\\boxed{7} and \\boxed{y}", "\\boxed{12 + x}", ""]:
        assert shift_boxed_integer(text, rng) is None


def test_counterfactual_pairs_keep_only_copies_the_verifier_scores_lower():
    env = rlvr.BatchedEnv(rlvr.make("rlvr/Arithmetic-v0", split="train", digits=1))
    a, b = env.distinct_problems(2, seed=0)
    right_a, right_b = (f"{p.meta['expression']} = \\boxed{{{p.reference}}}" for p in (a, b))
    scored = Scored(
        [a, b],
        [[right_a, "\\boxed{100}", right_a + " "], [right_b, "no answer", "also none"]],
        np.array([[1.0, 0.1, 1.0], [1.0, 0.0, -np.inf]]),
        np.array([[True, False, True], [True, False, False]]),
    )

    pairs = counterfactual_pairs(env, scored, lambda t, rng: shift_boxed_integer(t, rng, shifts=[1]), seed=0)
    # the wrong and the unboxed samples are never perturbed; each right one gives one pair
    assert [(p.prompt, p.chosen) for p in pairs] == [
        (a.prompt, right_a),
        (a.prompt, right_a + " "),
        (b.prompt, right_b),
    ]
    assert pairs[0].rejected == f"{a.meta['expression']} = \\boxed{{{int(a.reference) + 1}}}"
    assert all(p.meta["counterfactual"] and p.meta["rejected_reward"] < p.meta["chosen_reward"] for p in pairs)
    assert all(p.meta["rejected_reward"] == pytest.approx(0.1) for p in pairs)  # the box is kept: format credit

    # a perturbation the verifier still scores right makes no pair: the verifier labels, not the perturbation
    harmless = counterfactual_pairs(env, scored, lambda t, rng: t.replace("\\boxed{", "\\boxed{ "))
    assert harmless == []
    assert len(counterfactual_pairs(env, scored, lambda t, rng: shift_boxed_integer(t, rng), pairs_per_prompt=1)) == 2


def test_counterfactual_pairs_keep_a_repeated_pair_once():
    """A policy that writes one right answer eight times gives one pair per distinct move, not eight."""
    env = rlvr.BatchedEnv(rlvr.make("rlvr/Arithmetic-v0", split="train", digits=1))
    (a,) = env.distinct_problems(1, seed=0)
    right = f"{a.meta['expression']} = \\boxed{{{a.reference}}}"
    scored = Scored([a], [[right] * 4], np.ones((1, 4)), np.ones((1, 4), dtype=bool))

    same_move = counterfactual_pairs(env, scored, lambda t, rng: shift_boxed_integer(t, rng, shifts=[1]))
    assert [p.rejected for p in same_move] == [f"{a.meta['expression']} = \\boxed{{{int(a.reference) + 1}}}"]
    moves = iter([1, 2, 1, 3])
    varied = counterfactual_pairs(env, scored, lambda t, rng: shift_boxed_integer(t, rng, shifts=[next(moves)]))
    assert [p.rejected.rsplit("{", 1)[1] for p in varied] == [f"{int(a.reference) + d}}}" for d in (1, 2, 3)]


def test_rewrite_boxed_integer_reaches_every_kind_and_never_the_answer():
    rng = np.random.default_rng(0)
    for s in (0, 7, 12, 95):
        text = f"x = \\boxed{{{s}}}."
        moved = {int(rewrite_boxed_integer(text, rng)[len("x = \\boxed{") : -2]) for _ in range(1000)}
        assert s not in moved
        assert {s + 1, s + 10, int(f"1{s}"), int(f"{s}1")} <= moved  # a neighbour, ten off, a digit added
        if s < 19:
            assert set(range(19)) - {s} <= moved  # any small integer: constants and operands
        if s >= 10:
            assert {int(str(s)[0]), int(str(s)[1])} <= moved  # a digit dropped
    assert rewrite_boxed_integer("\\boxed{-4}", rng) != "\\boxed{-4}"
    assert rewrite_boxed_integer("\\boxed{6 + 6 = 12}", rng).startswith("\\boxed{6 + 6 = ")
    for text in ["no box", "\\boxed{x}", "\\boxed{3.5}", "\\boxed{7} and \\boxed{y}", ""]:
        assert rewrite_boxed_integer(text, rng) is None


def test_counterfactual_pairs_make_several_distinct_copies_of_each_right_sample():
    env = rlvr.BatchedEnv(rlvr.make("rlvr/Arithmetic-v0", split="train", digits=1))
    (a,) = env.distinct_problems(1, seed=0)
    right = f"{a.meta['expression']} = \\boxed{{{a.reference}}}"
    scored = Scored([a], [[right, "\\boxed{100}"]], np.array([[1.0, 0.1]]), np.array([[True, False]]))

    pairs = counterfactual_pairs(env, scored, rewrite_boxed_integer, copies=5, seed=0)
    assert len(pairs) == 5 and len({p.rejected for p in pairs}) == 5
    assert all(p.chosen == right and p.rejected != right for p in pairs)
    # one move only: the spare draws repeat it, and the pair is kept once
    assert len(counterfactual_pairs(env, scored, lambda t, rng: shift_boxed_integer(t, rng, shifts=[1]), copies=5)) == 1
    with pytest.raises(ValueError, match="copies"):
        counterfactual_pairs(env, scored, rewrite_boxed_integer, copies=0)
