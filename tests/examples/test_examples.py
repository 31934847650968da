"""Smoke runs of the examples, each in its own process as a user would run it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(name: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120, cwd=EXAMPLES.parent
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_custom_env_prints_rewards():
    out = run("custom_env.py")
    rewards = [float(line.rsplit("reward", 1)[1]) for line in out.splitlines() if " -> " in line]
    assert len(rewards) == 6 and set(rewards) == {0.0, 1.0}
    assert "mean reward 0.50" in out


def test_custom_verifier_prints_rewards():
    out = run("custom_verifier.py")
    rewards = [float(line.split()[1]) for line in out.splitlines() if line.strip().startswith("reward")]
    assert rewards == [1.0, 1.0, 0.0, 0.0]


def test_quickstart_pays_only_for_the_right_single_answer():
    out = run("quickstart.py")
    mean = next(line for line in out.splitlines() if line.startswith("mean")).split()[1:]
    assert [float(x) for x in mean] == pytest.approx([1.0, 0.1, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from toymodels import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("algorithm", ["grpo", "reinforce", "ppo"])
def test_arithmetic_recipe_runs_every_algorithm(tiny_model, algorithm):
    args = ["--algorithm", algorithm, "--model", tiny_model, "--steps", "2", "--no-chat-template"]
    args += ["--max-new-tokens", "4", "--eval-problems", "4", "--prompts", "2", "--group", "2"]
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "arithmetic.py"), *args], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"{algorithm}: held-out greedy accuracy before training")
    assert sum(line.startswith("step ") for line in lines) == 2
    assert lines[-1].startswith(f"{algorithm}: held-out greedy accuracy after 2 steps")


def test_humaneval_recipe_trains_with_the_sandboxed_reward(tiny_model, tmp_path):
    run_dir = tmp_path / "humaneval"
    cmd = [
        sys.executable, "-m", "rlvr", "train", str(EXAMPLES / "humaneval_grpo.yaml"), f"model.name={tiny_model}",
        "model.chat_template=false", "model.autocast=none", "rollout.max_new_tokens=8", "rollout.prompts_per_step=2",
        "rollout.group_size=2", "train.steps=2", "eval.problems=2", "eval.every=0", "checkpoint.every=0",
        "log.progress=false", "log.plots=false", f"log.run_dir={run_dir}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reward_mean" in r] == [0, 1]
    assert all(r["reward_mean"] == 0.0 for r in rows if "reward_mean" in r)  # a tiny random model writes no Python
    samples = (run_dir / "samples.jsonl").read_text()
    assert "tests" in samples  # the reward breakdown names the code-tests component


def test_instructions_recipe_runs(tiny_model, tmp_path):
    run_dir = tmp_path / "instructions"
    cmd = [
        sys.executable, "-m", "rlvr", "train", str(EXAMPLES / "instructions_grpo.yaml"), f"model.name={tiny_model}",
        "model.chat_template=false", "model.autocast=none", "rollout.max_new_tokens=8", "rollout.prompts_per_step=2",
        "rollout.group_size=2", "train.steps=2", "eval.problems=2", "checkpoint.every=0",
        "log.progress=false", "log.plots=false", f"log.run_dir={run_dir}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reward_mean" in r] == [0, 1]
    assert "constraints" in (run_dir / "samples.jsonl").read_text()  # the breakdown says which constraint failed


def run_example(name: str, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.splitlines()


def test_dpo_recipe_reports_held_out_accuracy_before_and_after(tiny_model, tmp_path):
    rows = [{"prompt": "abc"[: 1 + i % 3], "chosen": "jj", "rejected": "ab"} for i in range(12)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for loss in ("dpo", "simpo"):
        lines = run_example(
            "dpo.py", "--pairs", str(tmp_path / "pairs.jsonl"), "--model", tiny_model, "--no-chat-template",
            "--loss", loss, "--batch-size", "4", "--held-out", "0.34",
        )  # fmt: skip
        assert lines[0].startswith("before: held-out implicit-reward accuracy") and lines[-1].startswith("after ")


def test_rejection_sampling_recipe_writes_an_sft_set(tiny_model, tmp_path):
    out = tmp_path / "sft.jsonl"
    lines = run_example(
        "rejection_sampling.py", "--model", tiny_model, "--no-chat-template", "--prompts", "4", "--n", "2",
        "--min-reward", "0", "--eval-problems", "4", "--max-new-tokens", "4", "--epochs", "1", "--out", str(out),
    )  # fmt: skip
    assert lines[0].startswith("best-of-2 on held-out") and lines[-1].startswith("held-out greedy accuracy before")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and {"prompt", "completion", "problem_id", "reward"} <= rows[0].keys()


def test_reward_model_ppo_recipe_runs(tiny_model, tmp_path):
    from toymodels import char_tokenizer, tiny_llama

    from rlvr.preference.reward_model import RewardModel, save_reward_model

    tok = char_tokenizer()
    rm_dir = save_reward_model(RewardModel(tiny_llama(len(tok), seed=5)), tok, tmp_path / "rm")
    lines = run_example(
        "reward_model_ppo.py", "--reward-model", str(rm_dir), "--model", tiny_model, "--no-chat-template",
        "--steps", "2", "--prompts", "2", "--group", "2", "--eval-problems", "4", "--max-new-tokens", "4",
        "--out", str(tmp_path / "policy"),
    )  # fmt: skip
    assert lines[0].startswith("  rule-based verifier on 4 held-out problems: accuracy")
    assert lines[1].startswith("    'What is") and "(reward " in lines[1], "sample answers follow the accuracy"
    assert sum(line.startswith("step ") for line in lines) == 2
    assert "after 2 steps" in lines[-2] and lines[-1] == f"policy saved: {tmp_path / 'policy'}"
    assert (tmp_path / "policy" / "config.json").exists()
