"""Every Molecule scenario (molecule/*/molecule.yml) as one test, on real Incus containers.

tests/molecule/runner.py runs them through the Molecule CLI, TPLABS_MOLECULE_JOBS lanes at
a time (default 4), the longest first. Scenarios share a lane's containers one after
another, each on a restored snapshot of them as created; a scenario marked
`# tplabs-molecule: own-instances` (ssh) creates and destroys its own. Each run gets:

- an Incus name prefix of its lane or its own (MOLECULE_LAB_PREFIX, read by
  molecule/shared/create.yml), so runs never touch each other's containers or a user's host1;
- a Molecule ephemeral directory of its lane or its own, so two checkouts or two pytest
  sessions running the same scenario do not share state;
- a log in reports/molecule/<scenario>.log (a lane's create and destroy:
  reports/molecule/lane<N>.log); a failure shows the end of it.

The last test checks that destroy left no container of any lane or run.
"""

from __future__ import annotations

import pytest

from tests.molecule.incus import incus_problem
from tests.molecule.runner import SCENARIOS, TAIL_LINES, ScenarioPool

pytestmark = [pytest.mark.molecule, pytest.mark.incus]


@pytest.fixture(scope="session")
def incus_ready() -> None:
    problem = incus_problem()
    if problem:
        pytest.skip(f"Molecule on Incus cannot run here: {problem}")


@pytest.fixture(scope="session")
def scenario_pool(request: pytest.FixtureRequest, incus_ready: None):
    selected = [
        item.callspec.params["scenario"]
        for item in request.session.items
        if getattr(item, "callspec", None)
        and "scenario" in item.callspec.params
        and item.originalname == "test_scenario"
    ]
    pool = ScenarioPool(sorted(set(selected)))
    yield pool
    pool.shutdown()


def test_scenarios_found(scenario_pool: ScenarioPool) -> None:
    """Runs first (tests/molecule/conftest.py): asking for the pool starts the scenarios, so
    the lab role's own tests (test_lab_role.py) run beside them instead of before them."""
    assert "step0" in SCENARIOS, f"molecule/step0 missing; found {SCENARIOS}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(
    scenario: str, scenario_pool: ScenarioPool, request: pytest.FixtureRequest
) -> None:
    run = scenario_pool.result(scenario)
    # Properties of reports/molecule.xml (user_properties: record_property warns with xunit2).
    request.node.user_properties += [
        ("molecule_seconds", round(run.elapsed, 1)),
        ("molecule_cpu_s", round(run.cpu, 1)),
    ]
    print(
        f"molecule test -s {scenario}: rc={run.rc} in {run.elapsed:.1f}s "
        f"({run.cpu:.1f} CPU-s), log {run.log}"
    )
    assert run.rc == 0, (
        f"molecule test -s {scenario} failed (rc={run.rc}{', ' + run.error if run.error else ''}, "
        f"{run.elapsed:.0f}s); full log: {run.log}\n--- last {TAIL_LINES} lines ---\n{run.tail()}"
    )
    assert not run.leftovers, (
        f"destroy left containers behind (deleted now): {run.leftovers}; log: {run.log}"
    )


def test_lanes_leave_no_container(scenario_pool: ScenarioPool) -> None:
    """Last: every lane's destroy deleted its containers (their snapshots with them)."""
    leftovers = scenario_pool.leftovers()
    for lane in scenario_pool.lanes:
        print(f"{lane.name}: molecule create and destroy {lane.cpu:.1f} CPU-s, log {lane.log}")
    assert not leftovers, f"a lane's destroy left containers behind (deleted now): {leftovers}"
