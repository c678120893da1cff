"""lab/checker/record.py: what the checker reads from a run's record (no Ansible run here).

The records are shaped as the lab_checker callback writes them; the graders' real runs are
tests/integration/test_checker.py.
"""

from __future__ import annotations

from lab.checker.record import Record

JID = "j123456789.42"


def task(uuid: str, action: str, async_val: str = "0", loop: bool = True) -> dict:
    return {
        "uuid": uuid,
        "name": uuid,
        "action": action,
        "async": async_val,
        "poll": "0",
        "loop": loop,
    }


def result(uuid: str, status: str, at: float, **fields) -> dict:
    return {"task": uuid, "host": "host1", "status": status, "at": at, "result": fields}


def looped_launch_then_looped_wait() -> Record:
    """A launch loop (async, poll 0), then async_status looped over its results: the
    wait's items carry the same job ids, later."""
    return Record(
        {
            "tasks": [
                task("launch", "ansible.builtin.command", async_val="600"),
                task("wait", "ansible.builtin.async_status"),
            ],
            "results": [
                result("launch", "start", 10.0),
                result("launch", "item_ok", 11.0, ansible_job_id=JID, started=1, finished=0),
                result("launch", "ok", 11.5, results=[{"ansible_job_id": JID, "finished": 0}]),
                result("wait", "start", 12.0),
                result("wait", "item_ok", 20.0, ansible_job_id=JID, finished=1, rc=0),
                result("wait", "ok", 20.5, results=[{"ansible_job_id": JID, "finished": 1}]),
            ],
            "stats": {},
        }
    )


def test_a_looped_jobs_launch_time_is_its_launch_items_not_the_waits() -> None:
    record = looped_launch_then_looped_wait()
    [job] = record.jobs()
    assert (job.jid, job.task.uuid, job.launched_at) == (JID, "launch", 11.0)


def test_the_looped_wait_reports_the_job_finished() -> None:
    record = looped_launch_then_looped_wait()
    [report] = record.wait_reports("host1", JID)
    assert (report["waiter"], report["finished"]) == ("async_status", 1)
