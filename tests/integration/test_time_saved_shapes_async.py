"""time_saved and async jobs in every form (issue 9 points 2, 3, 4, 7 and 8), one playbook run.

shapes/async.yml: jobs never waited for, waited for late by async_status and by async_wait
(their module reports no times), no_log jobs waited for in reverse order, a job async_wait
kills, a job polled by its task, a loop of jobs, and a job launched in one play and waited
for in the next. Every job stamps its own start and end on the host (the ground truth);
tolerances are in tests/integration/time_saved_truth.py.
"""

from __future__ import annotations

import pytest

from tests.integration.time_saved_truth import (
    CLOCK_TOL,
    END_TOL,
    RUN_TOL,
    Shaped,
    overlap,
    run_shape,
    validate,
)

pytestmark = pytest.mark.integration

FORMS = "Shapes async forms"
# Two hosts: each form is then reported per host and summed over hosts; a third host would
# add 9 async launches and their waits, not a case.
HOSTS = ["host1", "host2"]


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Shaped:
    return run_shape("async", tmp_path_factory.mktemp("async"), "--limit", ",".join(HOSTS))


def test_report_is_valid(shaped: Shaped) -> None:
    validate(shaped.report)
    states = shaped.play(FORMS)["job_states"]
    assert states == {"finished": 8 * len(HOSTS), "killed": len(HOSTS)}, states


def test_killed_jobs_are_reported_killed(shaped: Shaped) -> None:
    """Point 2: async_wait killed them; not 'still running at end of play'."""
    jobs = shaped.jobs(FORMS, "Launch a job async_wait will kill")
    assert sorted(jobs) == HOSTS
    assert {job["state"] for job in jobs.values()} == {"killed"}
    assert {job["waited_by"] for job in jobs.values()} == {"Give up on the long job and kill it"}
    assert all(job["baseline"] == 0.0 for job in jobs.values())  # not time saved
    block = shaped.run.stdout.split(f"TIME SAVED [play: {FORMS}]")[1].split("TIME SAVED")[0]
    assert f"{len(HOSTS)} job(s) killed: killed by async_wait after the wait timed out" in block
    assert "still running" not in block and "never waited" not in block


@pytest.mark.parametrize(
    ("stamp", "task"),
    [
        ("late", "Launch a job waited for late, whose module reports no times"),
        ("latewait", "Launch a job waited for late with async_wait"),
    ],
)
def test_late_wait_places_the_job_end_where_the_host_says(
    shaped: Shaped, stamp: str, task: str
) -> None:
    """Point 3: launch, a 4 s task, then the wait; the job (1 s, no delta) ended long before."""
    truth = shaped.truth(stamp)
    for host, job in shaped.jobs(FORMS, task).items():
        _start, end = truth[host]
        assert job["state"] == "finished"
        assert job["own_end"] is not None, job
        assert abs(job["own_end"] - end) <= END_TOL, (job, truth[host])
        # no start known: its run counts from its launch's end to its end, not to the wait
        assert job["baseline"] <= job["own_end"] - job["launch_end"] + 0.001, job
        assert job["baseline"] <= end - job["launch_end"] + END_TOL, (job, truth[host])


@pytest.mark.parametrize("which", ["short", "long"])
def test_no_log_jobs_waited_in_reverse_order_keep_their_own_waits(
    shaped: Shaped, which: str
) -> None:
    """Point 4: no_log hides the job ids; each job still gets its own wait and duration."""
    truth = shaped.truth(which)
    first = "first" if which == "long" else "then"
    for host, job in shaped.jobs(FORMS, f"Launch a {which} secret job").items():
        start, end = truth[host]
        assert job["jid"] is None  # still secret
        assert job["waited_by"] == f"Wait for the {which} secret job {first}", job
        assert job["state"] == "finished"
        # the module's own delta holds the stamps' span (taken inside its shell) and lies
        # within the window the controller saw the job in: launched .. seen ended
        assert end - start - CLOCK_TOL <= job["own_duration"], (job, truth[host])
        assert job["own_duration"] <= job["finished"] - job["launched"], (job, truth[host])


def test_job_never_waited_for_ended_per_its_job_file(shaped: Shaped) -> None:
    """Point 8: nobody waited, but it ended long before the play did: its job file says so."""
    truth = shaped.truth("forgotten")
    play = shaped.play(FORMS)
    for host, job in shaped.jobs(FORMS, "Launch a job nobody waits for").items():
        assert job["state"] == "finished", job
        assert job["waited_by"] is None and job["finished"] is None
        assert abs(job["own_end"] - truth[host][1]) <= END_TOL, (job, truth[host])
        assert job["own_end"] < play["end"]


def test_job_launched_in_one_play_waited_for_in_the_next(shaped: Shaped) -> None:
    """Point 7: each play counts the part of the job that ran during it."""
    launch, wait = shaped.play("Shapes launch play"), shaped.play("Shapes wait play")
    truth = shaped.truth("crossplay")
    in_wait = sum(overlap(span, wait["start"], wait["end"]) for span in truth.values())
    in_launch = sum(overlap(span, launch["start"], wait["start"]) for span in truth.values())
    launches = sum(h["duration"] for h in launch["tasks"][0]["hosts"].values())
    # the wait play holds what ran during it (the jobs' module delta, placed by its stamps)
    assert wait["baseline"] >= in_wait - 3 * RUN_TOL, (wait, truth)
    # and the launch play no more than its launches and what ran before the next play
    assert launch["baseline"] <= launches + in_launch + 3 * RUN_TOL, (launch, truth)


def test_polled_job_and_loop_of_jobs(shaped: Shaped) -> None:
    truth = shaped.truth("polled")
    polled = shaped.jobs(FORMS, "A job polled by its own task")
    assert {job["mode"] for job in polled.values()} == {"poll"}
    for host, job in polled.items():
        assert job["state"] == "finished"
        assert job["finished"] >= truth[host][1]  # the poll saw it after it ended
    looped = [j for j in shaped.play(FORMS)["jobs"] if j["task"] == "Launch a loop of jobs"]
    assert len(looped) == 2 * len(HOSTS)
    assert {job["waited_by"] for job in looped} == {"Wait for the loop with async_wait"}
    assert sorted({job["item"] for job in looped}) == ["0.3", "0.6"]
    for job in looped:  # the command's own delta: at least its sleep, within its lifetime
        assert float(job["item"]) <= job["own_duration"] <= job["duration"], job
