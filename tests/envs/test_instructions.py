import json
from pathlib import Path

import pytest

import rlvr
from rlvr.envs.instructions import CONFLICTS, DEFAULT_IDS, IFEvalEnv, InstructionsEnv
from rlvr.verifiers.instructions import validate_kwargs

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
    fraction = InstructionsEnv(mode="fraction")
    fraction.reset(seed=0, options={"problem": two})
    assert fraction.step("no commas and no title")[1] == 0.5
    loose = InstructionsEnv(mode="loose")
    loose.reset(seed=0, options={"problem": two})
    assert loose.step("no commas and no title")[1] == 0.0
    loose.reset(seed=0, options={"problem": two})
    assert loose.step("Sure, a title:\n<<Sea>> and, a comma")[1] == 0.0  # the comma is on every variant


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
    with pytest.raises(ValueError, match="mode"):
        InstructionsEnv(mode="lenient")
    with pytest.raises(ValueError, match="rules"):
        InstructionsEnv(rules="lenient")


def test_every_default_id_is_drawn_with_valid_ifeval_arguments():
    env = InstructionsEnv(max_constraints=3)
    seen = set()
    for seed in range(400):
        env.reset(seed=seed)
        for c in env.problem.reference:
            seen.add(c["id"])
            validate_kwargs(c["id"], c["kwargs"])
            relations = [v for k, v in c["kwargs"].items() if k.endswith("relation")]
            assert all(r in ("less than", "at least") for r in relations)
    assert seen == set(DEFAULT_IDS)


def test_the_request_to_repeat_is_the_prompt_without_the_repeat_sentence():
    env = InstructionsEnv(
        max_constraints=3, constraint_ids=("combination:repeat_prompt", "change_case:english_capital")
    )
    for seed in range(20):
        env.reset(seed=seed)
        ids = {c["id"]: c["kwargs"] for c in env.problem.reference}
        if "combination:repeat_prompt" in ids:
            request = ids["combination:repeat_prompt"]["prompt_to_repeat"]
            assert env.problem.prompt.startswith(request + " First repeat the request")
            assert env.step(request + " The answer.")[1] == float(len(ids) == 1)
            return
    raise AssertionError("repeat_prompt never drawn")


def test_hardened_rules_reach_the_reward():
    problem = rlvr.Problem("h", "q", [{"id": "detectable_format:json_format", "kwargs": {}}])
    for rules, want in (("ifeval", 1.0), ("hardened", 0.0)):
        env = InstructionsEnv(rules=rules)
        env.reset(seed=0, options={"problem": problem})
        assert env.step("42")[1] == want
        assert env.self_check() == 2 * len(DEFAULT_IDS)


def test_ifeval_format_from_a_local_file():
    env = rlvr.make("rlvr/IFEval-v0", data_files=IFEVAL).unwrapped
    assert len(env) == 3 and env.skipped == 0
    problem = env.problem_from_id("ifeval-1000")
    assert problem.reference[1] == {
        "id": "detectable_format:number_highlighted_sections",
        "kwargs": {"num_highlights": 3},
    }
    env.reset(options={"problem_id": "ifeval-1001"})
    assert env.step("a quiet poem about the sea and the boats resting in the harbor")[1] == 1.0
    env.reset(options={"problem_id": "ifeval-1002"})
    assert env.step("X. then the answer")[1] == 1.0
    env.reset(options={"problem_id": "ifeval-1002"})
    assert env.step("the answer")[1] == 0.0
    assert isinstance(env, IFEvalEnv)


def test_ifeval_rows_with_bad_arguments_fail_on_loading(tmp_path):
    row = {"key": 7, "prompt": "p", "instruction_id_list": ["keywords:letter_frequency"],
           "kwargs": [{"letter": "a", "let_frequency": -2, "let_relation": "at least", "keywords": None}]}  # fmt: skip
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="key 7.*let_frequency"):
        IFEvalEnv(data_files=str(path))
    row["instruction_id_list"] = ["no:such"]
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError):  # nothing left to pose
        IFEvalEnv(data_files=str(path))
