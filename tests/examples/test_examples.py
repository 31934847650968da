"""Smoke runs of the examples, each in its own process as a user would run it."""

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
