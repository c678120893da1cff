"""async_job_poll's poller on real job files and the real process table (in process).

The hostile-host cases (other users, no /proc, killing) are in
test_async_job_poll_hostile.py; random job files in test_async_job_poll_property.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job, _poll, _proc
from ansible_collections.tplabs.async_tasks.plugins.modules import async_job_poll as poll
from ansible_collections.tplabs.async_tasks.plugins.modules.async_job_poll import Poller
from tests.unit.plugins.modules.async_job_poll_fakes import jobs_by_jid, run_poll

RUNNING = {"started": True, "finished": False}


@pytest.fixture
def async_dir(tmp_path: Path) -> Path:
    path = tmp_path / "async"
    path.mkdir()
    return path


def write(async_dir: Path, jid: str, data: object, mtime: float | None = None) -> Path:
    path = async_dir / jid
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def poller(async_dir: Path, *jids: str, **kwargs) -> Poller:
    return Poller(list(jids), str(async_dir), **kwargs)


# --- job ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "jid",
    ["../../etc/passwd", "j1.2/../../x", "/etc/passwd", "j1", "1234.5", "j1.2\n", "j\u0661.2", ""],
    ids=repr,
)
def test_a_bad_job_id_is_reported_and_never_a_path(async_dir: Path, jid: str) -> None:
    p = poller(async_dir, jid, "j1.2")
    write(async_dir, "j1.2", {"rc": 0})
    p.check()
    assert p.jobs[jid]["state"] == "unknown"
    assert p.jobs[jid]["path"] is None
    assert "no file was looked up" in p.jobs[jid]["msg"]
    assert p.jobs["j1.2"]["state"] == "finished"


# --- states ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "state"),
    [
        ({"rc": 0}, "finished"),
        ({"rc": 2, "failed": True}, "failed"),
        ({"msg": "Timeout exceeded", "failed": True, "child_pid": 42}, "timeout"),
        ({"killed_by_async_wait": True, "failed": True, "finished": True}, "killed"),
    ],
    ids=["finished", "failed", "timeout", "killed"],
)
def test_ended_jobs(async_dir: Path, data: dict, state: str) -> None:
    write(async_dir, "j1.2", data, mtime=5000)
    p = poller(async_dir, "j1.2")
    p.check()
    entry = p.jobs["j1.2"]
    assert (entry["state"], entry["ended_at"], entry["result"]) == (state, 5000, data)


def test_wait_returns_as_soon_as_every_job_ended(async_dir: Path) -> None:
    write(async_dir, "j1.2", {"rc": 0, "stdout": "hi"})
    write(async_dir, "j1.3", {"rc": 1, "failed": True})
    p = poller(async_dir, "j1.2", "j1.3")
    p.wait(window=30, interval=0.1, fail_fast=False)
    assert p.checks == 1
    assert [e["state"] for e in p.reply_jobs()] == ["finished", "failed"]


def alive_everywhere(monkeypatch) -> None:
    """Every job looks alive and tied (the process table is not what is tested here)."""
    monkeypatch.setattr(
        _proc, "core_job", lambda *a, **k: _proc.JobProcs(alive=True, certain=True, pids=[9])
    )


def test_wait_notices_a_job_that_ends_during_the_window(async_dir: Path, monkeypatch) -> None:
    write(async_dir, "j1.2", RUNNING)
    alive_everywhere(monkeypatch)
    sleeps: list[float] = []

    def sleep(secs: float) -> None:
        sleeps.append(secs)
        if len(sleeps) == 3:
            write(async_dir, "j1.2", {"rc": 0})

    monkeypatch.setattr(_poll.time, "sleep", sleep)
    p = poller(async_dir, "j1.2")
    p.wait(window=30, interval=0.1, fail_fast=False)
    assert (p.checks, sleeps) == (4, [0.1, 0.1, 0.1])
    assert p.jobs["j1.2"]["state"] == "finished"
    assert "started_at" in p.jobs["j1.2"]  # kept from the running view


def test_window_zero_reads_once_and_sleeps_never(async_dir: Path, monkeypatch) -> None:
    write(async_dir, "j1.2", RUNNING)
    alive_everywhere(monkeypatch)
    monkeypatch.setattr(_poll.time, "sleep", lambda s: pytest.fail("slept"))
    p = poller(async_dir, "j1.2")
    p.wait(window=0, interval=0.1, fail_fast=False)
    assert p.checks == 1 and p.jobs["j1.2"]["state"] == "running"
    assert p.jobs["j1.2"]["pids"] == [9]


def test_the_pause_never_outlasts_the_window(async_dir: Path, monkeypatch) -> None:
    write(async_dir, "j1.2", RUNNING)
    alive_everywhere(monkeypatch)
    now = [0.0]
    monkeypatch.setattr(_poll.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_poll.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    p = poller(async_dir, "j1.2")
    p.wait(window=2.0, interval=30.0, fail_fast=False)
    assert now[0] == 2.0


def test_fail_fast_stops_at_the_first_failure(async_dir: Path, monkeypatch) -> None:
    write(async_dir, "j1.2", RUNNING)
    write(async_dir, "j1.3", {"rc": 1, "failed": True})
    alive_everywhere(monkeypatch)
    p = poller(async_dir, "j1.2", "j1.3")
    p.wait(window=30, interval=0.1, fail_fast=True)
    assert p.checks == 1 and p.pending() == ["j1.2"]


def test_the_process_table_is_read_at_most_once_a_second(async_dir: Path, monkeypatch) -> None:
    for n in range(20):
        write(async_dir, f"j1.{n}", RUNNING)
    alive_everywhere(monkeypatch)
    scans = []
    real = _proc.scan
    monkeypatch.setattr(_proc, "scan", lambda proc="/proc": scans.append(1) or real(proc))
    now = [1000.0]  # a virtual clock: the test does not depend on how fast checks run
    monkeypatch.setattr(_poll.time, "monotonic", lambda: now[0])
    p = poller(async_dir, *(f"j1.{n}" for n in range(20)))
    for _unused in range(5):
        p.check()
        now[0] += 0.19
    assert len(scans) == 1
    now[0] += 0.5  # a second after the first read
    p.check()
    assert len(scans) == 2


def test_a_job_that_ends_while_it_looks_dead_is_not_orphaned(async_dir: Path, monkeypatch) -> None:
    """No process (it just exited) and, before the second look, its result is written."""
    write(async_dir, "j1.2", RUNNING)
    real = _proc.scan
    calls = []

    def scan(proc="/proc"):
        calls.append(1)
        if len(calls) == 2:  # the confirming read of the table
            write(async_dir, "j1.2", {"rc": 0})
        return real(proc)

    monkeypatch.setattr(_proc, "scan", scan)
    p = poller(async_dir, "j1.2")
    p.check()
    assert p.jobs["j1.2"]["state"] == "finished"


def test_a_starting_job_without_a_file_yet_is_running(async_dir: Path) -> None:
    # The launcher (the pid in the job id) runs with the prefix on its command line.
    jid = f"j42.{os.getpid()}"
    table = _proc.scan()
    me = table.processes[os.getpid()]
    fake_me = _proc.Process(me.pid, me.ppid, me.pgid, me.sid, "S", me.starttime, me.uid, ("j42",))
    table.processes[me.pid] = fake_me
    p = poller(async_dir, jid)
    entry, suspect = p.inspect(jid, table)
    assert (entry["state"], suspect) == ("running", False)
    assert "no job file yet" in entry["msg"]


# --- cleanup ---------------------------------------------------------------------------------


def test_cleanup_removes_ended_jobs_only(async_dir: Path, monkeypatch) -> None:
    write(async_dir, "j1.2", RUNNING)
    write(async_dir, "j1.3", {"rc": 0})
    write(async_dir, "j1.4", "{not json")
    write(async_dir, "j9.9", {"rc": 0})  # not asked for
    monkeypatch.setattr(
        _proc,
        "core_job",
        lambda table, jid, *a: _proc.JobProcs(alive=jid == "j1.2", certain=jid == "j1.2"),
    )
    p = poller(async_dir, "j1.2", "j1.3", "j1.4")
    p.check()
    p.cleanup()
    assert sorted(x.name for x in async_dir.iterdir()) == ["j1.2", "j9.9"]
    assert [e.get("erased") for e in p.reply_jobs()] == [None, True, True]


def test_reply_has_no_internal_keys(async_dir: Path) -> None:
    write(async_dir, "j1.2", {"rc": 0, "stdout": "x" * 5000})
    p = poller(async_dir, "j1.2", result_max_bytes=1024)
    p.check()
    p.cleanup()
    (entry,) = p.reply_jobs()
    assert not [k for k in entry if k.startswith("_")]
    assert entry["truncated"] is True and entry["erased"] is False
    assert entry["cleanup_error"].startswith("kept: its result")


# --- main() ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"interval": float("nan")}, "interval must be a finite number of seconds >= 0"),
        ({"result_max_bytes": 10}, "result_max_bytes must be >= 1024, got 10"),
        ({"async_dir": " "}, "async_dir must not be empty"),
        ({"mode": "explode"}, "value of mode must be one of: wait, kill"),
    ],
    ids=["interval", "result_max_bytes", "async_dir", "mode"],
)
def test_main_rejects_bad_input(args: dict, message: str) -> None:
    reply = run_poll(poll, **{"jids": ["j1.2"], "async_dir": "/nonexistent", **args})
    assert reply["failed"] is True
    assert message in reply["msg"]


def test_main_replies_with_the_contract_fields(async_dir: Path) -> None:
    write(async_dir, "j1.2", {"rc": 0})
    reply = run_poll(poll, jids=["j1.2", "j1.3"], async_dir=str(async_dir), window=0)
    assert {"jobs", "now", "async_dir", "checks", "changed"} <= set(reply)
    assert reply["async_dir"] == str(async_dir)
    assert [j["state"] for j in reply["jobs"]] == ["finished", "unknown"]
    assert jobs_by_jid(reply)["j1.2"]["path"] == str(async_dir / "j1.2")


def test_check_mode_kill_only_reads(async_dir: Path) -> None:
    write(async_dir, "j1.2", {"rc": 0})
    reply = run_poll(
        poll,
        jids=["j1.2"],
        async_dir=str(async_dir),
        mode="kill",
        cleanup=True,
        _ansible_check_mode=True,
    )
    assert jobs_by_jid(reply)["j1.2"]["state"] == "finished"
    assert (async_dir / "j1.2").exists()


def test_wrapper_processes_is_kept_for_callers(async_dir: Path) -> None:
    assert poll.wrapper_processes({"j1"}) == {"j1": []}
    assert _job.is_jid_prefix("j1")


def test_cleanup_says_when_another_waiter_removed_the_file_first(async_dir: Path) -> None:
    write(async_dir, "j1.2", {"rc": 0})
    p = poller(async_dir, "j1.2", "j1.3")
    p.check()
    (async_dir / "j1.2").unlink()  # the other waiter was quicker
    p.cleanup()
    first, wrong = p.reply_jobs()
    assert first["erased"] is False
    assert first["cleanup_error"].startswith("already removed (by another waiter")
    assert wrong["state"] == "unknown" and "cleanup_error" not in wrong


def test_a_job_file_rewritten_while_it_looks_dead_is_not_orphaned(
    async_dir: Path, monkeypatch
) -> None:
    """A running record replaced by another between the two looks: not judged this time."""
    write(async_dir, "j1.2", RUNNING)
    real = _proc.scan
    calls = []

    def scan(proc="/proc"):
        calls.append(1)
        if len(calls) == 2:
            write(async_dir, "j1.2", {**RUNNING, "ansible_job_id": "j1.2", "again": 1})
        return real(proc)

    monkeypatch.setattr(_proc, "scan", scan)
    p = poller(async_dir, "j1.2")
    p.check()
    assert p.jobs["j1.2"]["state"] == "running"
    assert "changed while its processes looked gone" in p.jobs["j1.2"]["msg"]
