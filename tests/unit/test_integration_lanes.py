"""The integration scheduler's units (tests/integration/lanes.py): every test of a laned file is
in exactly one lane, and units are the file or the lane, so that a new test cannot fall
silently outside its lane (and away from the module fixture it shares)."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO
from tests.integration.lanes import LANES, unit_of


def functions_of(path: str) -> list[str]:
    tree = ast.parse((REPO / path).read_text())
    return [
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")
    ]


@pytest.mark.parametrize("path", sorted(LANES))
def test_every_test_of_a_laned_file_is_in_one_lane(path: str) -> None:
    lanes = LANES[path]
    names = functions_of(path)
    for name in names:
        holders = [lane for lane, members in lanes.items() if name in members]
        assert len(holders) == 1, f"{path}::{name} is in lanes {holders}: list it in one"
    listed = {name for members in lanes.values() for name in members}
    assert listed <= set(names), f"lanes name tests {path} no longer has: {listed - set(names)}"


def test_units_are_files_or_lanes() -> None:
    assert unit_of("tests/integration/test_lab.py::test_x") == "tests/integration/test_lab.py"
    steps = "tests/integration/test_steps.py"
    assert unit_of(f"{steps}::test_challenge[async_wait]") == f"{steps}::steps_7_8_challenge_site"
    assert unit_of(f"{steps}::test_step1_fire_and_forget") == f"{steps}::steps_1_to_4"
