import json
from pathlib import Path

import pytest

import rlvr
from rlvr.envs.ifbench import COMBINABLE, SOLO, IFBenchDataEnv, IFBenchEnv
from rlvr.verifiers.ifbench import ALL_CONSTRAINTS, IFBENCH_CONSTRAINTS
from rlvr.verifiers.instructions import validate_kwargs

IFBENCH = str(Path(__file__).resolve().parents[1] / "data" / "ifbench_sample.jsonl")


def test_every_constraint_is_drawn_with_valid_arguments_and_worded_without_placeholders():
    seen = set()
    # A fixed task has one prompt, so its prompt hash puts it in one split only.
    for env in (IFBenchEnv(), IFBenchEnv(split="test")):
        for seed in range(1000):
            env.reset(seed=seed)
            (c,) = env.problem.reference
            seen.add(c["id"])
            validate_kwargs(c["id"], c["kwargs"], ALL_CONSTRAINTS)
            assert "{N}" not in env.problem.prompt and "{keyword" not in env.problem.prompt
    assert seen == set(IFBENCH_CONSTRAINTS)


def test_solo_tasks_are_posed_alone_and_repeats_repeat_the_task():
    env = IFBenchEnv(constraint_ids=("custom:multiples", "repeat:repeat_span"))
    for seed in range(10):
        env.reset(seed=seed)
        (c,) = env.problem.reference
        if c["id"] == "custom:multiples":
            assert env.problem.prompt == IFBENCH_CONSTRAINTS["custom:multiples"].instruction
        else:
            task = env.problem.meta["task"]
            assert c["kwargs"]["prompt_to_repeat"] == task and env.problem.prompt.startswith(task)
            span = task[c["kwargs"]["n_start"] : c["kwargs"]["n_end"] + 1]
            assert env.step(span)[1] == 1.0


def test_two_constraints_come_only_from_the_combinable_set():
    env = IFBenchEnv(max_constraints=2)
    pairs = 0
    for seed in range(300):
        env.reset(seed=seed)
        ids = [c["id"] for c in env.problem.reference]
        if len(ids) == 2:
            pairs += 1
            assert set(ids) <= set(COMBINABLE) and ids[0] != ids[1]
            assert not set(ids) & set(SOLO)
    assert pairs > 20


def test_self_check_reward_and_options():
    env = IFBenchEnv()
    assert env.self_check() == 2 * len(IFBENCH_CONSTRAINTS)
    env.reset(options={"problem": rlvr.Problem("x", "q", [{"id": "format:no_whitespace", "kwargs": {}}])})
    assert env.step("calm-sea")[1] == 1.0
    hardened = IFBenchEnv(rules="hardened")
    hardened.reset(options={"problem": rlvr.Problem("y", "q", [{"id": "format:sub-bullets", "kwargs": {}}])})
    assert hardened.step("no bullets")[1] == 0.0
    with pytest.raises(ValueError, match="max_constraints"):
        IFBenchEnv(max_constraints=3)
    with pytest.raises(ValueError, match="unknown IFBench"):
        IFBenchEnv(constraint_ids=("words:start_verb",))
    with pytest.raises(ValueError, match="mode"):
        IFBenchEnv(mode="lenient")
    assert isinstance(rlvr.make("rlvr/IFBench-v0").unwrapped, IFBenchEnv)


def test_ifbench_rows_from_a_local_file(tmp_path):
    env = IFBenchDataEnv(data_files=IFBENCH)
    assert len(env) == 2 and env.skipped == 1  # words:start_verb is not implemented
    env.reset(options={"problem_id": "ifbench-b2"})
    assert env.step("calm-sea")[1] == 1.0
    env.reset(options={"problem_id": "ifbench-b1"})
    assert env.step("Dawn at 6 with 2 boats.")[1] == 1.0
    bad = {"key": "z", "prompt": "p", "instruction_id_list": ["count:numbers"], "kwargs": [{"N": -1}]}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match="IFBench row 0.*N"):
        IFBenchDataEnv(data_files=str(path))
