from pathlib import Path

import pytest

import rlvr

DATA = Path(__file__).resolve().parents[1] / "data"
GSM = str(DATA / "gsm8k_sample.jsonl")
MATH = str(DATA / "math_sample.jsonl")


def test_gsm8k_references_and_scoring():
    env = rlvr.make("rlvr/GSM8K-v0", data_files=GSM).unwrapped
    assert len(env) == 5
    refs = [p.reference for p in env.problems]
    assert refs == ["72", "10", "2400", "2", None]  # thousands separator dropped; no marker -> no reference
    obs, info = env.reset(options={"problem_id": "gsm8k-train-0"})
    assert obs.startswith("Natalia sold clips") and obs.endswith("Put the final answer in \\boxed{}.")
    assert env.step("48 + 24 = 72, so \\boxed{72}")[1] == 1.0
    env.reset(options={"problem_id": "gsm8k-train-2"})
    assert env.step("\\boxed{2,400}")[1] == 1.0
    env.reset(options={"problem_id": "gsm8k-train-4"})
    _, reward, *_, info = env.step("\\boxed{5}")
    assert info["status"] == "unscorable" and not info["scored"]


def test_math_references_from_solutions():
    env = rlvr.make("rlvr/MATH-v0", data_files={"train": MATH, "test": MATH}, split="test").unwrapped
    assert [p.reference for p in env.problems] == ["\\frac{3}{4}", "2", "(-2, 2)", None]
    assert env.problems[0].meta == {"level": "Level 1", "type": "Prealgebra"}
    env.reset(options={"problem_id": "math-test-0"})
    assert env.step("so \\boxed{0.75}")[1] == 1.0
    env.reset(options={"problem_id": "math-test-2"})
    assert env.step("\\boxed{(-2,2)}")[1] == 1.0


def test_limit_and_bad_input(tmp_path):
    assert len(rlvr.make("rlvr/GSM8K-v0", data_files=GSM, limit=2).unwrapped) == 2
    with pytest.raises(FileNotFoundError, match="not found"):
        rlvr.make("rlvr/GSM8K-v0", data_files=str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="no 'test' entry"):
        rlvr.make("rlvr/GSM8K-v0", data_files={"train": GSM}, split="test")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"prompt": "x"}\n')
    with pytest.raises(ValueError, match="'question' and 'answer'"):
        rlvr.make("rlvr/GSM8K-v0", data_files=str(wrong))
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="must end in"):
        rlvr.make("rlvr/GSM8K-v0", data_files=str(tmp_path / "x.txt"))


def test_hub_failure_says_how_to_work_offline(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(FileNotFoundError, match="data_files='local.jsonl'"):
        rlvr.make("rlvr/GSM8K-v0")
