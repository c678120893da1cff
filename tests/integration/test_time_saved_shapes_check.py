"""time_saved in check mode (issue 9 point 5), one playbook run with --check.

shapes/check_mode.yml: a task that runs for real on every host at once (its stamps are the
ground truth of "3 at once"), two commands skipped in check mode, a job launched in check mode.
"""

from __future__ import annotations

import pytest

from tests.integration.time_saved_truth import Shaped, max_running, run_shape, validate

pytestmark = pytest.mark.integration

PLAY = "Shapes check mode"


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Shaped:
    return run_shape("check_mode", tmp_path_factory.mktemp("check"), "--check")


def test_report_is_valid(shaped: Shaped) -> None:
    validate(shaped.report)
    play = shaped.play(PLAY)
    assert play["skipped_time"] == pytest.approx(skipped_seconds(play), abs=0.01)


def skipped_seconds(play: dict) -> float:
    return sum(
        entry["duration"]
        for task in play["tasks"]
        for entry in task["hosts"].values()
        if entry["status"] == "skipped"
    )


def test_skipped_time_is_work_and_shown(shaped: Shaped) -> None:
    """Point 5: check-mode skips took time on 3 hosts at once; the baseline counts it."""
    play = shaped.play(PLAY)
    truth = shaped.truth("check")
    # the controller's view of each run holds the host's own: never fewer at once
    stamped = shaped.task(PLAY, "Run and stamp check")
    assert stamped["max_concurrent_hosts"] >= max_running(list(truth.values())) >= 1
    assert skipped_seconds(play) > 0
    # nothing failed: every host's busy time is in the baseline, skips included
    assert play["baseline"] == pytest.approx(
        sum(h["busy"] for h in play["hosts"].values()), abs=0.01
    )
    for name in ("Skipped in check mode 1", "Skipped in check mode 2"):
        task = shaped.task(PLAY, name)
        assert {h["status"] for h in task["hosts"].values()} == {"skipped"}
        if task["max_concurrent_hosts"] > 1:
            assert task["saved"] > 0, task
    block = shaped.run.stdout.split(f"TIME SAVED [play: {PLAY}]")[1]
    assert "skipped host-tasks" in block and "counted in the baseline" in block


def test_job_launched_in_check_mode_is_skipped(shaped: Shaped) -> None:
    """The module skipped in check mode: its job file says so, and no wait ran for it."""
    jobs = shaped.play(PLAY)["jobs"]
    assert len(jobs) == 3
    assert {job["state"] for job in jobs} == {"skipped"}, jobs
