"""docs/instructions.md shows the examples the tests use, every mode, and what is missing."""

from pathlib import Path

import pytest

from rlvr.verifiers.ifbench import IFBENCH_CONSTRAINTS, MISSING
from rlvr.verifiers.instructions import CONSTRAINTS, MODES, RULE_SETS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "instructions.md").read_text()


@pytest.mark.parametrize("table", [CONSTRAINTS, IFBENCH_CONSTRAINTS], ids=["ifeval", "ifbench"])
def test_every_constraint_is_in_a_table_with_its_examples(table):
    for cid, c in table.items():
        row = next((line for line in DOC.splitlines() if line.startswith(f"| `{cid}` |")), None)
        assert row is not None, cid
        for example in (c.passing, c.failing):
            assert example.replace("\n", "⏎").replace("|", "\\|").replace("`", "'") in row, (cid, example)
        assert row.endswith("| yes |") is (c.hardened is not None), cid


def test_modes_rule_sets_and_missing_ids_are_documented():
    for name in (*MODES, *RULE_SETS):
        assert f'`"{name}"`' in DOC, name
    for cid in MISSING:
        assert f"`{cid}`" in DOC, cid
    assert "AMD EPYC" in DOC or "Xeon" in DOC  # the measured agreement names its CPU
