"""async_job_poll's functions on real job files, a real process table and real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.tplabs.async_tasks.plugins.modules import async_job_poll as poll
from ansible_collections.tplabs.async_tasks.plugins.modules.async_job_poll import Poller

JID = "j123456.789"


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


def fake_proc(tmp_path: Path, processes: dict[int, list[str]], btime: int = 1000) -> Path:
    """A /proc look-alike: <pid>/cmdline for each process and a stat with btime."""
    proc = tmp_path / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "stat").write_text(f"cpu  1 2 3\nbtime {btime}\nprocesses 9\n")
    for pid, args in processes.items():
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
    return proc


def wrapper_args(prefix: str) -> list[str]:
    return [
        "/usr/bin/python3",
        "/root/.ansible/tmp/ansible-tmp-1/async_wrapper.py",
        prefix,
        "60",
        "/x/AnsiballZ_command.py",
        "_",
    ]


# --- job ids and paths -------------------------------------------------------------------


@pytest.mark.parametrize(
    "jid",
    [
        "../../etc/passwd",
        "j1.2/../../x",
        "/etc/passwd",
        "j1",
        "1234.5",
        "j1.2\n",
        "j\u0661.2",
        "",
        None,
    ],
)
def test_job_path_rejects_anything_but_a_core_jid(jid) -> None:
    with pytest.raises(ValueError, match="invalid job id"):
        poll.job_path("/tmp/async", jid)


def test_job_path_stays_in_the_async_dir() -> None:
    assert poll.job_path("/tmp/async", "j12.34") == "/tmp/async/j12.34"


# --- reading job files -------------------------------------------------------------------


def test_read_job_kinds(async_dir: Path) -> None:
    assert poll.read_job(str(async_dir / JID))[0] == "missing"
    write(async_dir, JID, {"started": 1, "finished": 0, "ansible_job_id": JID})
    kind, data, _ = poll.read_job(str(async_dir / JID))
    assert (kind, data["started"], data["finished"]) == ("running", True, False)
    write(async_dir, JID, {"rc": 0, "changed": True})
    assert poll.read_job(str(async_dir / JID))[0] == "done"
    write(async_dir, JID, "{not json")
    kind, why, _ = poll.read_job(str(async_dir / JID))
    assert kind == "corrupt" and why.startswith("not JSON")
    write(async_dir, JID, "")
    assert poll.read_job(str(async_dir / JID))[:2] == ("corrupt", "empty file")
    write(async_dir, JID, "[1, 2]")
    assert poll.read_job(str(async_dir / JID))[1].startswith("not a JSON object")


def test_a_symlinked_job_file_is_not_followed(async_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(json.dumps({"rc": 0, "stdout": "secret"}))
    (async_dir / JID).symlink_to(secret)
    kind, why, _ = poll.read_job(str(async_dir / JID))
    assert (kind, why) == ("corrupt", "not a regular file")
    poller = Poller([JID], str(async_dir), proc=str(fake_proc(tmp_path, {})))
    poller.check()
    poller.cleanup()
    assert secret.exists()
    assert "secret" not in json.dumps(poller.jobs)


@pytest.mark.parametrize(
    ("data", "state"),
    [
        ({"rc": 0}, "finished"),
        ({"rc": 2, "failed": True}, "failed"),
        ({"msg": "Timeout exceeded", "failed": True, "child_pid": 42}, "timeout"),
        ({"killed_by_async_wait": True, "failed": True}, "killed"),
    ],
)
def test_classify_done(data: dict, state: str) -> None:
    assert poll.classify_done(data) == state


def test_boot_time(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {}, btime=1234)
    assert poll.boot_time(str(proc / "stat")) == 1234.0
    assert poll.boot_time(str(tmp_path / "nope")) is None


def test_wrapper_processes_matches_the_jid_prefix_of_async_wrapper_only(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {
            10: wrapper_args("j123456"),
            11: wrapper_args("j123456"),
            12: ["sleep", "j123456"],  # not a wrapper
            13: wrapper_args("j999"),
        },
    )
    assert poll.wrapper_processes({"j123456", "j777"}, str(proc)) == {
        "j123456": [10, 11],
        "j777": [],
    }
    assert poll.wrapper_processes({"j1"}, str(tmp_path / "missing")) is None


# --- the poller ----------------------------------------------------------------------------


def test_running_job_with_its_wrapper_alive_is_running(async_dir: Path, tmp_path: Path) -> None:
    write(async_dir, JID, {"started": True, "finished": False}, mtime=5000)
    proc = fake_proc(tmp_path, {10: wrapper_args("j123456")}, btime=1000)
    poller = Poller([JID], str(async_dir), clock=lambda: 5007.5, proc=str(proc))
    poller.check()
    job = poller.jobs[JID]
    assert (job["state"], job["started_at"], job["running_for"]) == ("running", 5000, 7.5)
    assert poller.pending() == [JID]


def test_running_job_without_its_wrapper_is_orphaned(async_dir: Path, tmp_path: Path) -> None:
    write(async_dir, JID, {"started": True, "finished": False}, mtime=5000)
    proc = fake_proc(tmp_path, {10: wrapper_args("j999")}, btime=1000)
    poller = Poller([JID], str(async_dir), clock=lambda: 5003.0, proc=str(proc))
    poller.check()
    assert poller.jobs[JID]["state"] == "orphaned"
    assert poller.jobs[JID]["msg"] == (
        "orphaned: the job file says running but no async_wrapper process of this job is left "
        "(killed?), 3.0s after it started"
    )
    assert poller.pending() == []


def test_a_job_from_before_the_last_boot_is_orphaned(async_dir: Path, tmp_path: Path) -> None:
    write(async_dir, JID, {"started": True, "finished": False}, mtime=900)
    proc = fake_proc(tmp_path, {10: wrapper_args("j123456")}, btime=1000)
    poller = Poller([JID], str(async_dir), clock=lambda: 1100.0, proc=str(proc))
    poller.check()
    assert poller.jobs[JID]["state"] == "orphaned"
    assert "rebooted" in poller.jobs[JID]["msg"]


def test_missing_file_is_unknown_unless_the_wrapper_is_starting(
    async_dir: Path, tmp_path: Path
) -> None:
    proc = fake_proc(tmp_path, {10: wrapper_args("j123456")})
    poller = Poller([JID, "j5.6"], str(async_dir), proc=str(proc))
    poller.check()
    assert poller.jobs[JID]["state"] == "running"
    assert poller.jobs["j5.6"] == {
        "jid": "j5.6",
        "path": str(async_dir / "j5.6"),
        "state": "unknown",
        "msg": f"unknown job: no job file {async_dir / 'j5.6'}",
    }


def test_corrupt_file_of_an_ended_job_is_reported(async_dir: Path, tmp_path: Path) -> None:
    write(async_dir, JID, "{oops")
    poller = Poller([JID], str(async_dir), proc=str(fake_proc(tmp_path, {})))
    poller.check()
    assert poller.jobs[JID]["state"] == "corrupt"
    assert poller.jobs[JID]["msg"].startswith(
        f"job file {async_dir / JID} cannot be parsed: not JSON"
    )


def test_wait_returns_as_soon_as_every_job_ended(async_dir: Path, tmp_path: Path) -> None:
    write(async_dir, JID, {"rc": 0, "stdout": "hi"}, mtime=10)
    write(async_dir, "j1.2", {"rc": 1, "failed": True}, mtime=10)
    poller = Poller([JID, "j1.2"], str(async_dir), proc=str(fake_proc(tmp_path, {})))
    poller.wait(window=30, interval=0.1, fail_fast=False)
    assert poller.checks == 1
    assert [poller.jobs[j]["state"] for j in (JID, "j1.2")] == ["finished", "failed"]
    assert poller.jobs[JID]["result"] == {"rc": 0, "stdout": "hi"}


def test_wait_notices_a_job_that_ends_during_the_window(
    async_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    write(async_dir, JID, {"started": True, "finished": False})
    proc = fake_proc(tmp_path, {10: wrapper_args("j123456")})
    poller = Poller([JID], str(async_dir), proc=str(proc))
    sleeps: list[float] = []

    def sleep(secs: float) -> None:
        sleeps.append(secs)
        if len(sleeps) == 3:
            write(async_dir, JID, {"rc": 0})

    monkeypatch.setattr(poll.time, "sleep", sleep)
    poller.wait(window=30, interval=0.1, fail_fast=False)
    assert poller.checks == 4
    assert sleeps == [0.1, 0.1, 0.1]
    assert poller.jobs[JID]["state"] == "finished"
    assert "started_at" in poller.jobs[JID]  # kept from the running view


def test_window_zero_reads_once(async_dir: Path, tmp_path: Path) -> None:
    write(async_dir, JID, {"started": True, "finished": False})
    poller = Poller(
        [JID], str(async_dir), proc=str(fake_proc(tmp_path, {10: wrapper_args("j123456")}))
    )
    poller.wait(window=0, interval=0.1, fail_fast=False)
    assert poller.checks == 1
    assert poller.jobs[JID]["state"] == "running"


def test_fail_fast_stops_at_the_first_failure(async_dir: Path, tmp_path: Path) -> None:
    write(async_dir, JID, {"started": True, "finished": False})
    write(async_dir, "j1.2", {"rc": 1, "failed": True})
    poller = Poller(
        [JID, "j1.2"], str(async_dir), proc=str(fake_proc(tmp_path, {10: wrapper_args("j123456")}))
    )
    poller.wait(window=30, interval=0.1, fail_fast=True)
    assert poller.checks == 1
    assert poller.pending() == [JID]


def test_cleanup_removes_ended_jobs_only(async_dir: Path, tmp_path: Path) -> None:
    write(async_dir, JID, {"started": True, "finished": False})
    write(async_dir, "j1.2", {"rc": 0})
    write(async_dir, "j3.4", {"started": True, "finished": False})  # orphan
    other = write(async_dir, "j9.9", {"rc": 0})
    poller = Poller(
        [JID, "j1.2", "j3.4"],
        str(async_dir),
        proc=str(fake_proc(tmp_path, {10: wrapper_args("j123456")})),
    )
    poller.check()
    poller.cleanup()
    assert sorted(p.name for p in async_dir.iterdir()) == [JID, "j9.9"]
    assert poller.jobs["j1.2"]["erased"] is True
    assert poller.jobs["j3.4"]["erased"] is True
    assert other.exists()


# --- real processes -----------------------------------------------------------------------

FAKE_WRAPPER = """
import os, sys, time
os.setsid()
child = os.fork()
if child == 0:
    os.setpgid(0, 0)
    time.sleep(120)
    sys.exit(0)
time.sleep(120)
"""


@pytest.fixture
def fake_wrapper(tmp_path: Path):
    """A process tree shaped like async_wrapper's: a supervisor and a child in its own group."""
    script = tmp_path / "async_wrapper.py"
    script.write_text(FAKE_WRAPPER)
    started: list[subprocess.Popen] = []

    def start(prefix: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, str(script), prefix, "60", "module", "_"])
        started.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(poll.wrapper_processes({prefix})[prefix]) < 2:
            time.sleep(0.05)
        return proc

    yield start
    for proc in started:
        for pid in poll.wrapper_processes({proc.args[2]})[proc.args[2]]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


def test_real_process_table_tells_running_from_orphaned(async_dir: Path, fake_wrapper) -> None:
    fake_wrapper("j424242")
    write(async_dir, "j424242.1", {"started": True, "finished": False})
    write(async_dir, "j434343.1", {"started": True, "finished": False})
    poller = Poller(["j424242.1", "j434343.1"], str(async_dir))
    poller.check()
    assert poller.jobs["j424242.1"]["state"] == "running"
    assert poller.jobs["j434343.1"]["state"] == "orphaned"


def test_kill_stops_every_process_of_the_job_and_records_it(async_dir: Path, fake_wrapper) -> None:
    fake_wrapper("j515151")
    assert len(poll.wrapper_processes({"j515151"})["j515151"]) == 2
    write(async_dir, "j515151.7", {"started": True, "finished": False})
    poller = Poller(["j515151.7"], str(async_dir))
    poller.kill()
    assert poll.wrapper_processes({"j515151"})["j515151"] == []
    job = poller.jobs["j515151.7"]
    assert job["state"] == "killed"
    assert len(job["killed_pids"]) == 2
    on_disk = json.loads((async_dir / "j515151.7").read_text())
    assert on_disk["finished"] is True and on_disk["failed"] is True


# --- main() as Ansible runs it ------------------------------------------------------------


def run_main(monkeypatch, capsys, **args) -> dict:
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
    with pytest.raises(SystemExit):
        poll.main()
    return json.loads(capsys.readouterr().out)


def test_main_reads_and_cleans_up(async_dir: Path, monkeypatch, capsys) -> None:
    write(async_dir, JID, {"rc": 0, "stdout": "done"})
    out = run_main(
        monkeypatch, capsys, jids=[JID], async_dir=str(async_dir), window=0, cleanup=True
    )
    assert out["changed"] is False
    assert out["checks"] == 1
    assert [(j["jid"], j["state"], j["erased"]) for j in out["jobs"]] == [(JID, "finished", True)]
    assert list(async_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"jids": ["../../etc/passwd"]}, "invalid job id(s) ['../../etc/passwd']"),
        ({"jids": [JID], "window": -1}, "window must be >= 0, got -1.0"),
    ],
)
def test_main_rejects_bad_input(
    async_dir: Path, monkeypatch, capsys, args: dict, message: str
) -> None:
    out = run_main(monkeypatch, capsys, async_dir=str(async_dir), **args)
    assert out["failed"] is True
    assert message in out["msg"]


def test_the_process_table_is_not_read_on_every_check(async_dir: Path, monkeypatch) -> None:
    write(async_dir, JID, {"started": True, "finished": False})
    scans: list[set[str]] = []

    def scan(prefixes: set[str], proc: str = "/proc") -> dict[str, list[int]]:
        scans.append(prefixes)
        return {p: [10] for p in prefixes}

    monkeypatch.setattr(poll, "wrapper_processes", scan)
    poller = Poller([JID], str(async_dir))
    for _ in range(5):
        poller.check()
    assert poller.jobs[JID]["state"] == "running"
    assert len(scans) == 1
