from pathlib import Path

import pytest

import rlvr
from rlvr.envs.instructions import CONFLICTS, IFEvalEnv, InstructionsEnv

IFEVAL = str(Path(__file__).resolve().parents[1] / "data" / "ifeval_sample.jsonl")


def test_generated_problems_have_one_to_three_constraints_and_no_conflicts():
    env = InstructionsEnv()
    counts = set()
    for seed in range(300):
        env.reset(seed=seed)
        ids = [c["id"] for c in env.problem.reference]
        counts.add(len(ids))
        assert len(set(ids)) == len(ids)
        for group in CONFLICTS:
            assert len(group & set(ids)) <= 1, ids
    assert counts == {1, 2, 3}


def test_prompt_words_every_constraint_naturally():
    env = InstructionsEnv(max_constraints=1)
    env.reset(seed=3)
    (constraint,) = env.problem.reference
    assert "{" not in env.problem.prompt and env.problem.prompt.split(".")[0] in env.problem.meta["task"]


def test_self_check_covers_every_constraint_and_the_reward_is_strict():
    env = InstructionsEnv()
    assert env.self_check() == 2 * len(env.constraint_ids)
    env.reset(seed=0, options={"problem": rlvr.Problem("x", "q", [{"id": "punctuation:no_comma", "kwargs": {}}])})
    assert env.step("no commas here")[1] == 1.0
    two = rlvr.Problem(
        "y", "q", [{"id": "punctuation:no_comma", "kwargs": {}}, {"id": "detectable_format:title", "kwargs": {}}]
    )
    loose = InstructionsEnv(mode="loose")
    loose.reset(seed=0, options={"problem": two})
    assert loose.step("no commas and no title")[1] == 0.5


def test_held_out_split_and_bad_options():
    test = InstructionsEnv(split="test")
    assert all(
        test.split_of(test.problem_from_id(str(s))) == "test"
        for s in [test.reset(seed=i)[1]["problem_id"] for i in range(5)]
    )
    with pytest.raises(ValueError, match="unknown constraint"):
        InstructionsEnv(constraint_ids=("no:such",))
    with pytest.raises(ValueError, match="max_constraints"):
        InstructionsEnv(max_constraints=0)


def test_ifeval_format_from_a_local_file():
    env = rlvr.make("rlvr/IFEval-v0", data_files=IFEVAL).unwrapped
    assert len(env) == 2 and env.skipped == 1  # combination:repeat_prompt is not implemented
    problem = env.problem_from_id("ifeval-1000")
    assert problem.reference[1] == {
        "id": "detectable_format:number_highlighted_sections",
        "kwargs": {"num_highlights": 3},
    }
    env.reset(options={"problem_id": "ifeval-1001"})
    assert env.step("a quiet poem")[1] == 1.0
    assert isinstance(env, IFEvalEnv)
