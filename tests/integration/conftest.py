"""How the integration tests share out between pytest-xdist workers (`make integration`:
``-n 4 --dist loadfile``).

Each test file is one unit of work: its tests run together, in order, on one worker (module
fixtures and the state its tests leave each other stay there). Two changes to plain
``loadfile``, made by a scheduler of our own (``pytest_xdist_make_scheduler``, the hook
pytest-xdist offers for this):

- a file listed in LANES splits into lanes, each a unit of its own: test_steps.py runs every
  lab step with jobs that sleep, about 15 min on one worker, the longest unit by far;
- the units start longest first (WEIGHTS, seconds measured on a quiet 2-core machine; a unit
  not listed weighs 5 s per test), so that no long unit starts last, alone.

(``--dist loadgroup`` with ``xdist_group`` marks would do the lanes, but with pytest 9.2
pytest-xdist 3.8 drops the groups without a word and spreads the tests one by one:
pytest-dev/pytest-xdist#1386.)
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

# file -> lane -> names of the tests in it (a test's name up to any "[" of its parameters).
# A lane keeps its tests in file order; tests that share a module fixture share a lane.
LANES: dict[str, dict[str, tuple[str, ...]]] = {
    "tests/integration/test_steps.py": {
        "steps_1_to_4": (
            "test_step1_fire_and_forget",
            "test_step2_reads_step1_jobs",
            "test_step2_adhoc_commands_of_the_lab",
            "test_step2_wrong_jid_is_explained",
            "test_step3_returns_before_the_job_ends",
            "test_step4_both_waits_return_the_result",
        ),
        "steps_5_6_9": (
            "test_step5_throttle_paces_launches_only_with_poll_0",
            "test_step6_forks_caps_every_task_not_poll_0_jobs",
            "test_step9_time_gained_with_time_saved",
        ),
        "steps_7_8_challenge_site": (
            "test_step7_timeout_is_killed_and_handled",
            "test_step8_group_of_jobs_failure_named",
            "test_challenge",
            "test_site_runs_every_step_in_order",
        ),
    },
}
# unit -> seconds it took (reports/integration.xml of a quiet run), for the longest units.
WEIGHTS: dict[str, float] = {
    "tests/integration/test_async_launch.py": 470,
    "tests/integration/test_async_wait.py": 445,
    "tests/integration/test_checker.py": 435,
    "tests/integration/test_steps.py::steps_7_8_challenge_site": 300,
    "tests/integration/test_steps.py::steps_5_6_9": 285,
    "tests/integration/test_steps.py::steps_1_to_4": 270,
    "tests/integration/test_guides.py": 250,
    "tests/integration/test_parity.py": 180,
    "tests/integration/test_time_saved.py": 125,
}
PER_TEST = 5.0


def unit_of(nodeid: str) -> str:
    """The unit of work of a test: its file, or its file's lane."""
    path, _, rest = nodeid.partition("::")
    name = rest.split("[", 1)[0]
    for lane, names in LANES.get(path, {}).items():
        if name in names:
            return f"{path}::{lane}"
    return path


class LaneScheduling(LoadScopeScheduling):
    """pytest-xdist's per-file scheduling, with lanes, longest unit first."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _assign_work_unit(self, node: Any) -> None:
        def weight(unit: str) -> float:
            return WEIGHTS.get(unit, PER_TEST * len(self.workqueue[unit]))

        heaviest = max(self.workqueue, key=weight)
        self.workqueue.move_to_end(heaviest, last=False)
        super()._assign_work_unit(node)


def pytest_xdist_make_scheduler(config: Any, log: Any) -> LoadScopeScheduling | None:
    if config.getvalue("dist") == "loadfile":
        return LaneScheduling(config, log)
    return None
