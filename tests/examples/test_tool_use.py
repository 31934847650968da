"""The tool-use recipe runs end to end on a tiny model, as a user would run it."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tool_use.py"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from toymodels import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_tool_use_recipe_smoke_run(tiny_model):
    args = ["--model", tiny_model, "--steps", "2", "--no-chat-template", "--prompts", "2", "--group", "2"]
    args += ["--max-new-tokens", "4", "--max-total-tokens", "12", "--eval-problems", "2"]
    out = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("held-out before training: solved ")
    steps = [line for line in lines if line.startswith("step ")]
    assert len(steps) == 2 and all("tool calls/episode" in s and "tool success" in s for s in steps)
    assert lines[-1].startswith("held-out after 2 steps: solved ")
