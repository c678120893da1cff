"""The units of work of the integration tests under pytest-xdist: a file, or a lane of a
file (LANES), and how long each takes (WEIGHTS). tests/integration/conftest.py schedules
them; kept apart so that it can be read (and unit-tested) without pytest-xdist.
"""

from __future__ import annotations

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
# unit -> seconds it took (reports/integration.xml of a quiet `make test`, 2 cores, 4 workers),
# for the longest units.
WEIGHTS: dict[str, float] = {
    "tests/integration/test_steps.py::steps_7_8_challenge_site": 374,
    "tests/integration/test_async_wait.py": 305,
    "tests/integration/test_async_launch.py": 297,
    "tests/integration/test_checker.py": 281,
    "tests/integration/test_steps.py::steps_5_6_9": 178,
    "tests/integration/test_guides.py": 164,
    "tests/integration/test_parity.py": 132,
    "tests/integration/test_steps.py::steps_1_to_4": 121,
    "tests/integration/test_time_saved.py": 84,
    "tests/integration/test_hostile_host.py": 58,
    "tests/integration/test_time_saved_shapes_plays.py": 55,
}
PER_TEST = 5.0


def unit_of(nodeid: str) -> str:
    """The unit of work of a test: its file, or its file's lane."""
    path, _unused, rest = nodeid.partition("::")
    name = rest.split("[", 1)[0]
    for lane, names in LANES.get(path, {}).items():
        if name in names:
            return f"{path}::{lane}"
    return path
