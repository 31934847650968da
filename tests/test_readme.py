"""The README's quick tour runs as written."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_quick_tour_block_runs_and_says_what_it_shows():
    first = re.search(r"## A quick tour\s+```python\n(.*?)```", README, re.DOTALL).group(1)
    scope: dict = {}
    exec(compile(first, "README.md", "exec"), scope)
    assert scope["prompt"] == "What is 83 + 45? Put the final answer in \\boxed{}."
    assert (scope["reward"], scope["terminated"]) == (1.0, True)
    assert scope["info"]["components"] == {"answer/format": 1.0, "answer/correct": 1.0, "format": 1.0}


def test_composition_block_runs():
    block = re.search(r"\*\*Rewards compose\*\*.*?```python\n(.*?)```", README, re.DOTALL).group(1)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    env = scope["env"]
    env.reset(seed=0)
    assert env.step(f"\\boxed{{{env.unwrapped.problem.reference}}}")[1] == 1.0
