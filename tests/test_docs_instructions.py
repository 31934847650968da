"""The constraint table in docs/instructions.md shows the examples the tests use."""

from pathlib import Path

from rlvr.verifiers.instructions import CONSTRAINTS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "instructions.md").read_text()


def test_every_constraint_is_in_the_table_with_its_examples():
    for cid, c in CONSTRAINTS.items():
        row = next((line for line in DOC.splitlines() if line.startswith(f"| `{cid}` |")), None)
        assert row is not None, cid
        for example in (c.passing, c.failing):
            assert example.replace("\n", "⏎").replace("|", "\\|").replace("`", "'") in row, (cid, example)
