"""time_saved: exact figures for constructed timelines, on the Recorder with a fake clock.

The Recorder is the callback's logic class: it takes plain values (host names, TaskInfo,
result dicts shaped as callbacks receive them), so these tests run on every ansible-core
the collection supports, without core-private classes. ``test_time_saved_callback.py``
checks the thin CallbackModule that feeds it from ansible's objects.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_model import (
    REPORT_STATES,
    TaskInfo,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_recorder import (
    Recorder,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_report import (
    build_report,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_text import recap

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[4] / "docs/schemas/time_saved.schema.json").read_text()
)
EPOCH = 1_800_000_000.0  # the wall clock at the playbook start (clock value 0)
H1, H2, H3 = "host1", "host2", "host3"
HOSTS = (H1, H2, H3)


def stamp(seconds: float) -> str:
    """A module's start/end string (host local time) for a time on the fake clock."""
    return datetime.fromtimestamp(EPOCH + seconds).strftime("%Y-%m-%d %H:%M:%S.%f")


def task(name: str, action: str = "ansible.builtin.command", **keys: Any) -> TaskInfo:
    return TaskInfo(uuid=f"uuid-{name}", name=name, action=action, **keys)


def launch_task(name: str = "Launch", **keys: Any) -> TaskInfo:
    keys.setdefault("async_val", 60)
    return task(name, **keys)


def waiter(name: str = "Wait", **keys: Any) -> TaskInfo:
    return task(name, "ansible.builtin.async_status", **keys)


def async_waiter(name: str = "Wait all", **keys: Any) -> TaskInfo:
    return task(name, "tplabs.async_tasks.async_wait", **keys)


class Run:
    """Drives a Recorder the way the callback does, at chosen clock values."""

    def __init__(self) -> None:
        self.now = 0.0
        self.rec = Recorder(clock=lambda: self.now, wall_clock=lambda: EPOCH + self.now)
        self.rec.playbook_start("site.yml")

    def at(self, value: float) -> Recorder:
        self.now = value
        return self.rec

    def play(self, at: float, name: str = "Play", key: str | None = None) -> None:
        self.at(at).play_start(key or name, name)

    def start(self, at: float, info: TaskInfo, host: str) -> None:
        self.at(at).task_start(host, info, [("all", 0), ("lab", 1)])

    def ok(self, at: float, info: TaskInfo, host: str, **data: Any) -> None:
        self.at(at).task_end(host, info, "changed" if data.get("changed") else "ok", data)

    def failed(self, at: float, info: TaskInfo, host: str, ignore: bool = False, **data: Any):
        self.at(at).task_end(host, info, "failed", data, ignore_errors=ignore)

    def skipped(self, at: float, info: TaskInfo, host: str) -> None:
        self.at(at).task_end(host, info, "skipped", {"skipped": True})

    def unreachable(self, at: float, info: TaskInfo, host: str) -> None:
        self.at(at).task_end(host, info, "unreachable", {"unreachable": True})

    def item(self, at: float, info: TaskInfo, host: str) -> None:
        self.at(at).item_end(host, info.uuid)

    def report(self, at: float, **stats: Any) -> dict[str, Any]:
        self.at(at).close(stats.get("failures"), stats.get("rescued"))
        report = build_report(self.rec)
        jsonschema.validate(report, SCHEMA)
        return report


def launched(jid: str, **extra: Any) -> dict[str, Any]:
    return {"ansible_job_id": jid, "started": True, "finished": False, "changed": True, **extra}


def status(jid: str, finished: bool = True, ran: tuple[float, float] | None = None, **extra: Any):
    """An async_status result; ``ran`` gives the command's own start and end."""
    data = {"ansible_job_id": jid, "started": True, "finished": finished, "changed": finished}
    if ran is not None:
        start, end = ran
        data.update(start=stamp(start), end=stamp(end), delta=f"0:00:{end - start:09.6f}")
        data.update(rc=0, stdout="done")
    data.update(extra)
    return data


def only(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["plays"]) == 1
    return report["plays"][0]


def test_sync_forks_1_is_its_own_baseline() -> None:
    """forks=1: hosts one after another; a 0.05 s hand-off is not concurrency (point 9)."""
    run = Run()
    run.play(0.0)
    sleep = task("Sleep")
    run.start(1.0, sleep, H1)
    run.start(6.0, sleep, H2)
    run.ok(6.05, sleep, H1, changed=True)
    run.start(11.0, sleep, H3)
    run.ok(11.05, sleep, H2, changed=True)
    run.ok(16.0, sleep, H3, changed=True)
    play = only(run.report(16.5))
    assert play["wall"] == pytest.approx(15.5)
    assert play["baseline"] == pytest.approx(15.1)
    [tsk] = play["tasks"]
    assert tsk["max_concurrent_hosts"] == 1
    # one definition of overlap: at most 1 at once means nothing saved, and not listed
    assert tsk["saved"] == 0.0
    assert tsk["span"] == pytest.approx(15.1)
    assert tsk["hosts"]["host2"] == {
        "status": "changed",
        "start": 6.0,
        "end": 11.05,
        "duration": 5.05,
        "baseline": 5.05,
        "runs": 1,
    }
    assert play["hosts"]["host1"]["changed"] == 1
    lines = [line.text for line in recap(run.report(16.5))]
    assert "no task saved time: nothing ran in parallel long enough to show" in lines


@pytest.mark.parametrize("gap", [0.0, 0.05, 0.149])
def test_sub_second_hand_offs_never_save_time(gap: float) -> None:
    """Point 9: sub-second tasks handed off within the tolerance: 1 at once, saved 0."""
    run = Run()
    run.play(0.0)
    quick = task("Quick")
    for index, host in enumerate(HOSTS):
        begin = index * 0.3
        run.start(begin, quick, host)
        run.ok(begin + 0.3 + gap, quick, host)
    [tsk] = only(run.report(1.5))["tasks"]
    assert (tsk["max_concurrent_hosts"], tsk["saved"]) == (1, 0.0)


def test_async_launch_and_async_status_wait() -> None:
    """Baseline = launches + each job's run beyond its launch; waits add nothing meanwhile."""
    run = Run()
    run.play(0.0)
    launch, wait = launch_task(), waiter()
    for index, host in enumerate(HOSTS):
        run.start(index * 0.1, launch, host)
    for index, host in enumerate(HOSTS):
        run.ok(0.5 + index * 0.1, launch, host, **launched(f"j{index}.1"))
    for index, host in enumerate(HOSTS):
        run.start(1.0 + index * 0.01, wait, host)
    run.ok(6.0, wait, H1, **status("j0.1", ran=(0.4, 5.4)))
    run.ok(6.5, wait, H2, **status("j1.1", ran=(0.5, 5.5)))
    run.ok(7.0, wait, H3, **status("j2.1", ran=(0.6, 6.6)))
    report = run.report(7.5)
    play = only(report)
    jobs = play["jobs"]
    assert [job["baseline"] for job in jobs] == [4.9, 4.9, 5.9]  # beyond their launches
    assert [job["end_source"] for job in jobs] == ["module"] * 3
    assert [(job["own_start"], job["own_end"]) for job in jobs][2] == (0.6, 6.6)
    assert [job["state"] for job in jobs] == ["finished"] * 3
    assert jobs[0]["waited_by"] == "Wait"
    assert play["baseline"] == pytest.approx(1.5 + 15.7)
    assert play["wall"] == pytest.approx(7.5)
    launch_out, wait_out = play["tasks"]
    assert launch_out["kind"] == "launch" and launch_out["async"] is True
    assert (launch_out["max_concurrent_hosts"], launch_out["max_concurrent_jobs"]) == (3, 3)
    assert wait_out["kind"] == "wait" and wait_out["baseline"] == 0.0
    assert report["job_states"] == {"finished": 3}
    lines = [line.text for line in recap(report)]
    assert "time saved 9.70 s, speed-up 2.29x" in lines


def test_loop_launch_and_loop_wait_use_item_times() -> None:
    run = Run()
    run.play(0.0)
    launch, wait = launch_task("Launch loop"), waiter("Wait loop")
    run.start(0.0, launch, H1)
    run.item(0.4, launch, H1)
    run.item(1.0, launch, H1)
    results = [
        {"item": 1, "ansible_loop_var": "item", **launched("ja.1")},
        {"item": 2, "ansible_loop_var": "item", **launched("jb.1")},
    ]
    run.ok(1.1, launch, H1, changed=True, results=results)
    run.start(1.2, wait, H1)
    done_a, done_b = status("ja.1", ran=(0.2, 2.2)), status("jb.1", ran=(0.6, 3.6))
    run.item(3.0, wait, H1)
    run.item(5.0, wait, H1)
    run.ok(5.1, wait, H1, changed=True, results=[done_a, done_b])
    play = only(run.report(6.0))
    job_a, job_b = play["jobs"]
    assert (job_a["launched"], job_a["launch_end"], job_a["finished"]) == (0.0, 0.4, 3.0)
    assert (job_b["launched"], job_b["launch_end"], job_b["finished"]) == (0.4, 1.0, 5.0)
    assert job_a["item"] == "1" and job_b["item"] == "2"
    assert (job_a["baseline"], job_b["baseline"]) == (1.1, 2.5)  # beyond the 1.1 s launch
    launch_out, wait_out = play["tasks"]
    assert launch_out["max_concurrent_jobs"] == 2
    assert launch_out["hosts"]["host1"]["items"] == 2
    # the launch itself and its jobs' runs beyond it
    assert launch_out["baseline"] == pytest.approx(1.1 + 1.1 + 2.5)
    # the wait: 3.9 s, all but its last 0.1 s while one of its jobs was alive
    assert wait_out["baseline"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("poll", "expected_jobs"),
    [pytest.param(0, 3, id="poll-0-jobs-run-together"), pytest.param(5, 2, id="poll-5")],
)
def test_throttle_two(poll: int, expected_jobs: int) -> None:
    """throttle: 2 limits launches; with poll 0 the jobs still all run together."""
    run = Run()
    run.play(0.0)
    tsk = launch_task("Throttled", async_val=30, poll=poll)
    wait = waiter()
    if poll == 0:
        run.start(0.0, tsk, H1)
        run.start(0.01, tsk, H2)
        run.start(0.5, tsk, H3)  # slot of host1 handed over just before its result
        run.ok(0.52, tsk, H1, **launched("j1.1"))
        run.ok(0.53, tsk, H2, **launched("j2.1"))
        run.ok(1.0, tsk, H3, **launched("j3.1"))
        for host in HOSTS:
            run.start(1.1, wait, host)
        for host, jid in zip(HOSTS, ("j1.1", "j2.1", "j3.1"), strict=True):
            run.ok(6.0, wait, host, **status(jid, ran=(0.6, 5.6)))
    else:
        run.start(0.0, tsk, H1)
        run.start(0.01, tsk, H2)
        run.at(5.0).async_poll(H1, {"ansible_job_id": "j1.1", "finished": False})
        run.at(5.49).async_end(H1, status("j1.1"))
        run.start(5.5, tsk, H3)
        run.ok(5.52, tsk, H1, **status("j1.1"))
        run.at(5.5).async_end(H2, status("j2.1"))
        run.ok(5.53, tsk, H2, **status("j2.1"))
        run.at(10.6).async_end(H3, status("j3.1"))
        run.ok(10.6, tsk, H3, **status("j3.1"))
    play = only(run.report(11.0))
    throttled = play["tasks"][0]
    assert throttled["max_concurrent_hosts"] == 2
    assert throttled["max_concurrent_jobs"] == expected_jobs
    if poll:
        assert throttled["kind"] == "poll"
        assert [job["mode"] for job in play["jobs"]] == ["poll"] * 3
        assert play["jobs"][0]["polls"] == 1
        assert play["jobs"][0]["finished"] == 5.49  # the worker's own poll
        assert play["jobs"][0]["end_source"] == "poll"
        # the task ran the job: the host times are the baseline
        assert play["baseline"] == pytest.approx(5.52 + 5.52 + 5.1)


def test_failure_and_unreachable_are_not_saved_time() -> None:
    run = Run()
    run.play(0.0)
    tsk = task("Work")
    for host in HOSTS:
        run.start(0.0, tsk, host)
    run.ok(2.0, tsk, H1)
    run.failed(3.0, tsk, H2, msg="boom", rc=1)
    run.unreachable(4.0, tsk, H3)
    report = run.report(4.0)
    play = only(report)
    assert play["baseline"] == pytest.approx(2.0)
    assert play["failed_time"] == pytest.approx(7.0)
    assert play["hosts"]["host2"]["failed"] == 1
    assert play["hosts"]["host3"]["unreachable"] == 1
    lines = [line.text for line in recap(report)]
    assert "hosts 3: 1 ok, 1 with failures, 1 unreachable" in lines
    assert any("time on failed/unreachable hosts 7.00 s" in line for line in lines)


@pytest.mark.parametrize("how", ["ignore_errors", "rescue", "rescue-seen-in-stats"])
def test_forgiven_failures_count_as_work(how: str) -> None:
    """Point 6: ignore_errors and a rescued failure: not a failed host, their time is work."""
    run = Run()
    run.play(0.0)
    tsk = task("May fail", rescuable=how == "rescue")
    rescue = task("Rescue")
    run.start(0.0, tsk, H1)
    run.start(0.0, tsk, H2)
    run.ok(2.0, tsk, H1)
    run.failed(3.0, tsk, H2, ignore=how == "ignore_errors", msg="boom", rc=1)
    if how != "ignore_errors":
        run.start(3.1, rescue, H2)
        run.ok(3.5, rescue, H2)
    stats = {}
    if how == "rescue-seen-in-stats":  # ansible's recap: rescued=1, failed=0
        stats = {"failures": {}, "rescued": {H2: 1}}
    report = run.report(4.0, **stats)
    play = only(report)
    expected = "ignored" if how == "ignore_errors" else "rescued"
    assert play["tasks"][0]["hosts"]["host2"]["status"] == expected
    assert play["hosts"]["host2"]["failed"] == 0 and play["hosts"]["host2"][expected] == 1
    assert play["failed_time"] == 0.0
    assert play["baseline"] == pytest.approx(5.0 + (0.4 if how != "ignore_errors" else 0.0))
    lines = [line.text for line in recap(report)]
    assert "hosts 2: 2 ok" in lines
    assert not any("failed/unreachable" in line for line in lines)


def test_a_rescuable_failure_ansible_counted_as_failed_stays_failed() -> None:
    """The block had a rescue, but ansible's recap says failed (e.g. the rescue failed too)."""
    run = Run()
    run.play(0.0)
    tsk = task("May fail", rescuable=True)
    run.start(0.0, tsk, H1)
    run.failed(1.0, tsk, H1, msg="boom")
    play = only(run.report(2.0, failures={H1: 1}, rescued={}))
    assert play["hosts"]["host1"]["failed"] == 1
    assert play["failed_time"] == pytest.approx(1.0)


def test_skipped_host_time_counts_in_the_baseline() -> None:
    """Point 5: skips (check mode, when:) take time one by one too: in the baseline."""
    run = Run()
    run.play(0.0)
    maybe = task("Maybe")
    for host in HOSTS:
        run.start(0.0, maybe, host)
    for host in HOSTS:
        run.skipped(0.6, maybe, host)
    report = run.report(0.6)
    play = only(report)
    assert play["hosts"]["host1"]["skipped"] == 1
    assert play["skipped_time"] == pytest.approx(1.8)
    assert play["baseline"] == pytest.approx(1.8)
    assert play["speedup"] == pytest.approx(3.0)
    assert play["tasks"][0]["max_concurrent_hosts"] == 3
    lines = [line.text for line in recap(report)]
    assert any(line.startswith("skipped host-tasks 3 took 1.80 s") for line in lines)


def test_serial_batches_are_one_play() -> None:
    """Point 1: serial: 1 starts the play again per batch with the same play and task ids."""
    run = Run()
    work = task("Work")
    for index, host in enumerate(HOSTS):
        run.play(index * 2.5, "Serial play", key="play-uuid")
        run.start(index * 2.5 + 0.1, work, host)
        run.ok(index * 2.5 + 2.4, work, host)
    report = run.report(7.5)
    play = only(report)
    assert play["batches"] == 3
    assert play["wall"] == pytest.approx(7.4)
    assert play["baseline"] == pytest.approx(6.9)
    assert play["speedup"] < 1
    [tsk] = play["tasks"]
    assert sorted(tsk["hosts"]) == list(HOSTS)
    assert tsk["max_concurrent_hosts"] == 1
    lines = [line.text for line in recap(report)]
    assert lines.count("TIME SAVED [play: Serial play]") == 1
    assert "serial: 3 batches, one wall from first to last" in lines


def test_async_wait_results_match_jobs_by_jid() -> None:
    """async_wait's result shape (contract 2), built by hand; ended_ago places the end."""
    run = Run()
    run.play(0.0)
    launch, wait = launch_task(), async_waiter()
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("j1.1"))
    run.start(0.0, launch, H2)
    run.ok(0.5, launch, H2, **launched("j2.2"))
    run.start(0.6, wait, H1)
    run.start(0.6, wait, H2)
    job_ok = {"jid": "j1.1", "state": "finished", "finished": True, "failed": False}
    job_ok.update(elapsed=3.4, ended_ago=1.0, result={"rc": 0})
    job_late = {"jid": "j2.2", "state": "timeout", "finished": True, "failed": True}
    job_gone = {"jid": "j9.9", "state": "launch_failed", "finished": True, "failed": True}
    run.ok(5.0, wait, H1, jobs=[job_ok], counts={"finished": 1})
    run.failed(9.0, wait, H2, jobs=[job_late, job_gone], msg="timeout")
    play = only(run.report(9.0))
    first, second = play["jobs"]
    assert (first["state"], first["finished"], first["own_end"]) == ("finished", 5.0, 4.0)
    assert (first["own_start"], first["end_source"]) == (0.6, "async_wait")
    assert first["baseline"] == pytest.approx(3.4)  # 0.6 to 4.0, after its launch
    assert (second["state"], second["finished"]) == ("timeout", 9.0)
    assert second["baseline"] == 0.0  # a timed-out job is not saved time
    assert play["baseline"] == pytest.approx(1.0 + 3.4)
    assert play["job_states"] == {"finished": 1, "timeout": 1}


@pytest.mark.parametrize(
    "state", sorted(_job.ENDED_STATES - {"finished", "skipped", "launch_failed"})
)
def test_every_ended_state_of_async_wait_is_reported_as_itself(state: str) -> None:
    """Point 2 and issue 12: killed, orphaned, unknown, corrupt... never 'running at end'."""
    run = Run()
    run.play(0.0)
    launch, wait = launch_task(), async_waiter()
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("j1.1"))
    run.start(0.6, wait, H1)
    entry = {"jid": "j1.1", "state": state, "finished": True, "failed": True, "msg": "why"}
    run.failed(3.0, wait, H1, jobs=[entry])
    report = run.report(3.5)
    [job] = only(report)["jobs"]
    assert (job["state"], job["finished"], job["msg"]) == (state, 3.0, "why")
    assert job["meaning"] == _job.STATES[state].meaning
    assert job["baseline"] == 0.0  # nothing beyond its launch
    assert report["job_states"] == {state: 1}
    lines = [line.text for line in recap(report)]
    assert any(line.startswith(f"1 job(s) {state.replace('_', ' ')}:") for line in lines)
    assert not any("still running" in line or "never waited" in line for line in lines)


@pytest.mark.parametrize("state", ["queued", "running", "kill_failed"])
def test_active_states_of_async_wait(state: str) -> None:
    run = Run()
    run.play(0.0)
    launch, wait = launch_task(), async_waiter()
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("j1.1"))
    run.start(0.6, wait, H1)
    entry = {"jid": "j1.1", "state": state, "finished": False, "failed": state == "kill_failed"}
    run.ok(3.0, wait, H1, jobs=[entry])
    [job] = only(run.report(3.5))["jobs"]
    # queued/running: still so when last seen, and no job file to read: end unknown
    assert job["state"] == ("kill_failed" if state == "kill_failed" else "not_waited")
    assert job["baseline"] == 0.0


def test_all_report_states_are_in_the_schema() -> None:
    assert set(SCHEMA["$defs"]["job_state"]["enum"]) == set(REPORT_STATES)
    assert set(_job.STATES) < set(REPORT_STATES)


def test_late_wait_without_module_times_uses_async_wait_ended_ago() -> None:
    """Point 3: launch, a 4 s task, then the wait: the job ran 1 s, not 5."""
    run = Run()
    run.play(0.0)
    launch, other, wait = launch_task(), task("Something else"), async_waiter()
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("j1.1"))
    run.start(0.6, other, H1)
    run.ok(4.6, other, H1)
    run.start(4.7, wait, H1)
    entry = {"jid": "j1.1", "state": "finished", "finished": True, "failed": False}
    entry.update(elapsed=1.0, ended_ago=3.6, result={"changed": True})  # no delta
    run.ok(5.2, wait, H1, jobs=[entry])
    [job] = only(run.report(5.5))["jobs"]
    assert job["baseline"] == pytest.approx(1.0)
    assert (job["own_start"], job["own_end"]) == (0.6, 1.6)
    assert job["end_bounds"] is None


def test_late_async_status_without_module_times_reads_the_local_job_file(tmp_path: Path):
    """Point 3 with async_status on a local host: the job file's mtime is the job's end."""
    run = Run()
    run.play(0.0)
    launch, other, wait = launch_task(), task("Something else"), waiter()
    job_file = tmp_path / "j1.1"
    job_file.write_text(json.dumps({"changed": True, "finished": True}))
    os.utime(job_file, (EPOCH + 1.6, EPOCH + 1.6))
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("j1.1", results_file=str(job_file)))
    run.start(0.6, other, H1)
    run.ok(4.6, other, H1)
    run.start(4.7, wait, H1)
    run.ok(5.2, wait, H1, **status("j1.1", results_file=str(job_file)))
    [job] = only(run.report(5.5))["jobs"]
    assert (job["end_source"], job["own_end"]) == ("job_file", 1.6)
    assert job["baseline"] == pytest.approx(1.1)  # no start stamp: from the launch's end


def test_late_async_status_without_any_end_says_it_is_a_bound() -> None:
    """Remote host, no module times: the end is only bounded, and the recap says so."""
    run = Run()
    run.play(0.0)
    launch, wait = launch_task(), waiter()
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("j1.1"))
    run.start(0.6, wait, H1)
    run.at(1.0).retry(H1, wait, status("j1.1", finished=False))
    run.ok(3.0, wait, H1, **status("j1.1"))
    report = run.report(3.0)
    [job] = only(report)["jobs"]
    assert job["end_source"] == "seen" and job["end_bounds"] == [1.0, 3.0]
    assert job["own_end"] is None
    assert any("known only as bounds" in line.text for line in recap(report))


@pytest.mark.parametrize("order", ["launch-order", "reverse-order"])
def test_no_log_launches_matched_by_when_their_jobs_started(order: str) -> None:
    """Point 4: two no_log launches on one host, waited for in any order."""
    run = Run()
    run.play(0.0)
    short = launch_task("Launch short", no_log=True)
    long_ = launch_task("Launch long", no_log=True)
    hidden = {"censored": "the output has been hidden", "changed": True}
    run.start(0.0, short, H1)
    run.ok(0.5, short, H1, **hidden)
    run.start(0.6, long_, H1)
    run.ok(1.1, long_, H1, **hidden)
    waits = [("Wait short", "js.1", (0.2, 1.2)), ("Wait long", "jl.1", (0.8, 3.8))]
    if order == "reverse-order":
        waits.reverse()
    at = 4.0
    for name, jid, ran in waits:
        wait = waiter(name)
        run.start(at, wait, H1)
        run.ok(at + 0.5, wait, H1, **status(jid, ran=ran))
        at += 1.0
    jobs = {job["task"]: job for job in only(run.report(at))["jobs"]}
    assert jobs["Launch short"]["waited_by"] == "Wait short"
    assert jobs["Launch long"]["waited_by"] == "Wait long"
    assert jobs["Launch short"]["own_duration"] == pytest.approx(1.0)
    assert jobs["Launch long"]["own_duration"] == pytest.approx(3.0)
    assert {job["jid"] for job in jobs.values()} == {None}  # still hidden


def test_no_log_launches_not_matched_when_nothing_tells_which() -> None:
    """Two no_log launches, a wait with no start time: the report does not guess."""
    run = Run()
    run.play(0.0)
    first, second = launch_task("First", no_log=True), launch_task("Second", no_log=True)
    hidden = {"censored": "the output has been hidden", "changed": True}
    for at, info in ((0.0, first), (1.0, second)):
        run.start(at, info, H1)
        run.ok(at + 0.5, info, H1, **hidden)
    wait = waiter()
    run.start(2.0, wait, H1)
    run.ok(3.0, wait, H1, **status("jx.1"))
    jobs = only(run.report(3.5))["jobs"]
    assert [job["state"] for job in jobs] == ["not_waited", "not_waited"]
    assert [job["waited_by"] for job in jobs] == [None, None]


def test_no_log_wait_leaves_the_job_censored() -> None:
    run = Run()
    run.play(0.0)
    launch, wait = launch_task(), waiter("Wait quietly", no_log=True)
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("jq.1"))
    run.start(0.6, wait, H1)
    run.ok(4.0, wait, H1, censored="the output has been hidden", changed=False)
    report = run.report(4.0)
    [job] = only(report)["jobs"]
    assert (job["jid"], job["state"], job["finished"]) == ("jq.1", "censored", None)
    assert job["baseline"] == 0.0


def test_job_launched_in_one_play_waited_for_in_the_next() -> None:
    """Point 7: each play's baseline counts the job where it ran."""
    run = Run()
    run.play(0.0, "Launch play")
    launch = launch_task()
    for host in HOSTS:
        run.start(0.0, launch, host)
    for index, host in enumerate(HOSTS):
        run.ok(0.5, launch, host, **launched(f"j{index}.1"))
    run.play(1.0, "Wait play")
    wait = waiter()
    for host in HOSTS:
        run.start(1.1, wait, host)
    for index, host in enumerate(HOSTS):
        run.ok(5.6, wait, host, **status(f"j{index}.1", ran=(0.4, 5.4)))
    report = run.report(5.7)
    first, second = report["plays"]
    assert first["baseline"] == pytest.approx(3 * 1.0)  # launches, then jobs until 1.0
    assert second["baseline"] == pytest.approx(3 * 4.4)  # the jobs from 1.0 to 5.4
    assert first["speedup"] == pytest.approx(3.0, abs=0.01)
    assert second["speedup"] == pytest.approx(13.2 / 4.6, abs=0.01)
    assert report["baseline"] == pytest.approx(16.2)
    assert second["saved"] > 0


def test_job_never_waited_for_read_from_its_local_job_file(tmp_path: Path) -> None:
    """Point 8: it ended before the play did; its job file says so."""
    run = Run()
    run.play(0.0)
    launch = launch_task("Fire and forget")
    job_file = tmp_path / "jf.1"
    job_file.write_text(
        json.dumps({"rc": 0, "start": stamp(0.3), "end": stamp(1.3), "delta": "0:00:01.000000"})
    )
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("jf.1", results_file=str(job_file)))
    other = task("Other")
    run.start(0.6, other, H1)
    run.ok(2.0, other, H1)
    report = run.report(2.0)
    [job] = only(report)["jobs"]
    assert (job["state"], job["end_source"], job["own_end"]) == ("finished", "module", 1.3)
    assert job["finished"] is None and job["baseline"] == pytest.approx(0.8)
    assert "job file" in job["msg"]
    assert not any("running" in line.text for line in recap(report))


def test_job_never_waited_for_still_running_per_its_job_file(tmp_path: Path) -> None:
    run = Run()
    run.play(0.0)
    launch = launch_task("Fire and forget")
    job_file = tmp_path / "jr.1"
    job_file.write_text(json.dumps({"started": 1, "finished": 0, "ansible_job_id": "jr.1"}))
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("jr.1", results_file=str(job_file)))
    report = run.report(2.0)
    [job] = only(report)["jobs"]
    assert job["state"] == "running"
    assert any("still running at the end of the playbook" in line.text for line in recap(report))


def test_job_never_waited_for_and_unreadable_is_not_waited() -> None:
    run = Run()
    run.play(0.0)
    launch = launch_task("Fire and forget", async_val=1)
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("jz.1", results_file="/nonexistent/jz.1"))
    report = run.report(2.0)
    [job] = only(report)["jobs"]
    assert job["state"] == "not_waited"
    assert "async limit (1 s)" in job["msg"]
    assert job["baseline"] == 0.0


def test_async_launch_results_with_and_without_wait() -> None:
    """Contract 3: async_launch jobs by jid and name; wait: true also ends them."""
    run = Run()
    run.play(0.0)
    launch = task("Launch jobs", "tplabs.async_tasks.async_launch")
    wait = async_waiter()
    run.start(0.0, launch, H1)
    jobs = [
        {"jid": "j1.100", "name": "build", "state": "running"},
        {"jid": "j2.100", "name": "test", "state": "queued"},
        {"jid": "j3.100", "name": "skip me", "state": "skipped"},
    ]
    run.ok(0.5, launch, H1, changed=True, jobs=jobs, max_parallel=1)
    run.start(0.6, wait, H1)
    done = [
        {"jid": "j1.100", "state": "finished", "finished": True, "elapsed": 2.0, "ended_ago": 2.4},
        {"jid": "j2.100", "state": "finished", "finished": True, "elapsed": 2.0, "ended_ago": 0.4},
    ]
    run.ok(4.9, wait, H1, jobs=done)
    now_wait = task("Launch and wait", "tplabs.async_tasks.async_launch")
    run.start(5.0, now_wait, H1)
    entry = {"jid": "j4.100", "name": "quick", "state": "finished", "finished": True}
    entry.update(elapsed=1.0, ended_ago=0.2)
    run.ok(6.5, now_wait, H1, jobs=[entry])
    play = only(run.report(7.0))
    by_name = {job["name"]: job for job in play["jobs"]}
    assert sorted(by_name) == ["build", "quick", "test"]
    assert (by_name["build"]["own_start"], by_name["build"]["own_end"]) == (0.5, 2.5)
    assert (by_name["test"]["own_start"], by_name["test"]["own_end"]) == (2.5, 4.5)
    assert by_name["quick"]["waited_by"] == "Launch and wait"
    assert {job["mode"] for job in play["jobs"]} == {"async_launch"}
    launch_out, _wait_out, now_out = play["tasks"]
    assert launch_out["baseline"] == pytest.approx(0.5 + 4.0)
    assert launch_out["max_concurrent_jobs"] == 1  # max_parallel 1: one after the other
    # launch and wait in one task: the job's 1 s (the rest of the task ran while it was alive)
    assert now_out["baseline"] == pytest.approx(1.0)


def test_what_if_and_critical_path() -> None:
    run = Run()
    run.play(0.0)
    launch, wait = launch_task(), waiter()
    for host in HOSTS:
        run.start(0.0, launch, host)
    for index, host in enumerate(HOSTS):
        run.ok(0.48 + index * 0.01, launch, host, **launched(f"j{index}.1"))
    for host in HOSTS:
        run.start(0.6, wait, host)
    for index, host in enumerate(HOSTS):
        run.ok(5.0 + index, wait, host, **status(f"j{index}.1", ran=(0.5, 4.5 + index)))
    report = run.report(7.0)
    what_if = only(report)["what_if"]
    # launch 0.5 s + job 4-6 s per host, 3 at once: 6.5 s; minus the launch and wait spans
    assert what_if["wall_if_sync"] == pytest.approx(7.0 - 0.5 - 6.4 + 6.5)
    path = what_if["critical_path"]
    assert (path["host"], path["tasks"], path["longest"]["task"]) == ("host3", 2, "Wait")
    assert path["longest"]["seconds"] == pytest.approx(6.4)
    lines = [line.text for line in recap(report)]
    assert any(
        line.startswith("what-if (estimate): every async task synchronous") for line in lines
    )
    assert any(line.startswith("critical path (estimate): host3") for line in lines)


def test_no_log_keeps_names_and_times_only() -> None:
    run = Run()
    run.play(0.0)
    secret = "s3cr3t-value"
    launch, wait = launch_task("Launch secret", no_log=True), waiter("Wait for it")
    run.start(0.0, launch, H1)
    run.item(0.5, launch, H1)
    hidden = {"censored": "the output has been hidden", "changed": True}
    run.ok(0.6, launch, H1, results=[hidden])
    run.start(0.7, wait, H1)
    run.ok(4.0, wait, H1, **status("jsecret.1", ran=(0.3, 3.3), stdout=secret))
    report = run.report(4.5)
    [job] = only(report)["jobs"]
    assert job["task"] == "Launch secret"
    assert job["jid"] is None and "item" not in job and "reported" not in job
    assert (job["state"], job["finished"]) == ("finished", 4.0)
    text = json.dumps(report)
    assert secret not in text and "jsecret" not in text


def test_job_launched_in_check_mode_is_skipped_per_its_job_file(tmp_path: Path) -> None:
    """--check: the module skipped; async_status is skipped too; the job file tells."""
    run = Run()
    run.play(0.0)
    launch, wait = launch_task(), waiter()
    job_file = tmp_path / "jc.1"
    record = {
        "changed": False,
        "skipped": True,
        "msg": "Command would have run if not in check mode",
    }
    job_file.write_text(json.dumps(record))
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("jc.1", results_file=str(job_file)))
    run.start(0.6, wait, H1)
    run.skipped(0.8, wait, H1)
    report = run.report(1.0)
    [job] = only(report)["jobs"]
    assert (job["state"], job["baseline"]) == ("skipped", 0.0)
    assert only(report)["skipped_time"] == pytest.approx(0.2)


@pytest.mark.parametrize("limit", ["forks", "throttle"])
def test_a_start_beyond_the_worker_limit_ends_the_open_run(limit: str) -> None:
    """forks=1 (or throttle: 1) under load: ansible starts host2 in the freed slot, then
    reports host1 0.4 s later. The start proves host1 had ended: 1 at once, nothing saved."""
    run = Run()
    run.play(0.0)
    if limit == "forks":
        run.rec.forks = 1
        sleep = task("Sleep")
    else:
        run.rec.forks = 10
        sleep = task("Sleep", throttle=1)
    run.start(0.0, sleep, H1)
    run.start(1.0, sleep, H2)  # host1's worker has exited
    run.ok(1.4, sleep, H1)
    run.start(2.0, sleep, H3)
    run.ok(2.4, sleep, H2)
    run.ok(3.0, sleep, H3)
    play = only(run.report(3.0))
    [tsk] = play["tasks"]
    assert [tsk["hosts"][h]["end"] for h in HOSTS] == [1.0, 2.0, 3.0]
    assert (tsk["max_concurrent_hosts"], tsk["saved"]) == (1, 0.0)
    assert play["baseline"] == pytest.approx(3.0)


def test_starts_within_the_worker_limit_end_nothing() -> None:
    run = Run()
    run.rec.forks = 3
    run.play(0.0)
    sleep = task("Sleep")
    for host in HOSTS:
        run.start(0.0, sleep, host)
    for index, host in enumerate(HOSTS):
        run.ok(1.0 + index, sleep, host)
    [tsk] = only(run.report(3.0))["tasks"]
    assert [tsk["hosts"][h]["end"] for h in HOSTS] == [1.0, 2.0, 3.0]
    assert tsk["max_concurrent_hosts"] == 3
