"""lab/checker: the challenge's "the launch did not wait", judged on the host's word.

No Ansible run here: a job as the checker sees it (the launch's reply, the job's run as its
host recorded it) and the file's time; the graders' real runs are in
tests/integration/test_checker.py.
"""

from __future__ import annotations

import pytest

from lab.checker.common import Grade, JobSeen, load_shared
from lab.checker.hosts import HostView
from lab.checker.record import Job, Task
from lab.checker.steps_more import written_by_job

JID = "j123456789.42"
LAUNCH = Task(
    uuid="launch",
    name="Launch",
    action="ansible.builtin.shell",
    async_val=60,
    poll=0,
    throttle=0,
    failed_when=[],
    loop=False,
    play=0,
)


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_LANG", "en")
    load_shared()


def seen(finished: bool, span: tuple[float, float] | None, heard_at: float) -> JobSeen:
    """The job; the controller heard of its launch at heard_at (host and controller clocks
    are the same here)."""
    info: dict = {"exists": True, "record": {"rc": 0}}
    if span:
        info.update(start=span[0], end=span[1])
    job = Job(
        host="host1",
        jid=JID,
        task=LAUNCH,
        launched_at=heard_at,
        result={"ansible_job_id": JID, "started": True, "finished": finished},
    )
    view = HostView(name="host1", now=200.0, async_dir="/root/.ansible_async", jobs={JID: info})
    return JobSeen(job=job, view=view, offset=0.0)


def test_a_launch_slower_than_the_job_does_not_fail_a_right_answer() -> None:
    """Under load the controller hears of the launch after the 5 s job wrote the file: the
    launch's reply (job unfinished) and the job's own run on the host decide, not that."""
    grade = Grade()
    found = written_by_job(grade, seen(False, (100.0, 105.0), heard_at=108.0), [], 105.0, "host1")
    assert grade.passed, grade.missing
    assert found and "by its host's clock" in found


def test_a_launch_that_waited_fails_on_its_own_reply() -> None:
    grade = Grade()
    found = written_by_job(grade, seen(True, (100.0, 105.0), heard_at=108.0), [], 105.0, "host1")
    assert found is None
    assert "the launch returned after the job had finished: it waited" in grade.missing[0][0]


def test_a_file_written_outside_the_jobs_run_is_not_the_jobs() -> None:
    grade = Grade()
    found = written_by_job(grade, seen(False, (100.0, 105.0), heard_at=101.0), [], 90.0, "host1")
    assert found is None
    assert "before the background job" in grade.missing[0][0]
