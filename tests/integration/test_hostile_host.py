"""async_job_poll and async_wait on a hostile or broken host, with real ansible-playbook runs
on the local inventory: a private async dir and remote tmp, only `sleep` jobs, all killed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, ansible_env, playbook_json
from tests.unit.plugins.modules.async_job_poll_fakes import session_members

pytestmark = pytest.mark.integration

PLAYBOOKS = REPO / "tests" / "integration" / "playbooks"


@pytest.fixture
def private(tmp_path: Path):
    """A private async dir and remote tmp; every process started under them is killed."""
    async_dir = tmp_path / "async"
    remote_tmp = tmp_path / "remote-tmp"
    async_dir.mkdir()
    remote_tmp.mkdir()
    yield async_dir, remote_tmp
    for pid, _sid in session_members(str(remote_tmp)):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def run(name: str, async_dir: Path, remote_tmp: Path, **extra: object) -> dict:
    env = ansible_env(
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_REMOTE_TMP=str(remote_tmp),
    )
    extra_vars = json.dumps({"hostile_async_dir": str(async_dir), **extra})
    result, doc = playbook_json(PLAYBOOKS / name, "-e", extra_vars, env=env)
    assert result.rc == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return {t["task"]["name"]: t["hosts"]["host1"] for t in doc["plays"][0]["tasks"]}


def test_kill_spares_a_wrong_jid_and_is_verified(private) -> None:
    async_dir, remote_tmp = private
    tasks = run("hostile_kill.yml", async_dir, remote_tmp)
    jid = tasks["Launch a sleep"]["ansible_job_id"]
    (wrong,) = tasks["Kill a wrong job id that shares the real job's prefix"]["jobs"]
    assert wrong["state"] == "unknown", wrong
    (alive,) = tasks["Look at the real job"]["jobs"]
    assert alive["state"] == "running" and len(alive["pids"]) >= 3, alive
    (killed,) = tasks["Kill the real job"]["jobs"]
    assert killed["state"] == "killed", killed
    assert killed["result"]["killed_pids"] == alive["pids"]
    assert [Path(d).parent for d in killed["launch_tmp_removed"]] == [remote_tmp]
    assert not any(Path(d).exists() for d in killed["launch_tmp_removed"])
    assert json.loads((async_dir / jid).read_text())["killed_by_async_wait"] is True
    for pid in alive["pids"]:
        assert (
            not Path(f"/proc/{pid}/cmdline").exists()
            or b"sleep" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
    waited = tasks["Wait for it with a short timeout, killing it then"]
    assert waited["failed"] is True
    assert [j["state"] for j in waited["jobs"]] == ["killed"], waited["jobs"]
    assert session_members(str(remote_tmp)) == []


def test_a_wrapper_behind_an_interpreter_shim_is_not_orphaned(private, tmp_path: Path) -> None:
    async_dir, remote_tmp = private
    shim = tmp_path / "python-shim"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -X utf8 "$@"\n')
    shim.chmod(0o755)
    tasks = run("hostile_shim.yml", async_dir, remote_tmp, hostile_shim=str(shim))
    (seen,) = tasks["Look at it while it runs"]["jobs"]
    assert seen["state"] == "running", seen
    assert "erased" not in seen
    waited = tasks["Wait for it a second, then kill it"]
    assert [j["state"] for j in waited["jobs"]] == ["killed"], waited["jobs"]
    assert session_members(str(remote_tmp)) == []


def test_broken_job_files_stay_their_own_and_leave_no_temp_dir(private) -> None:
    async_dir, remote_tmp = private
    (async_dir / "j1.666").write_bytes(b'{"rc": 0, "stdout": "\xff"}')
    (async_dir / "j1.667").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    os.mkfifo(async_dir / "j1.668")
    (async_dir / "j1.669").symlink_to("/etc/hostname")
    bad = ["j1.666", "j1.667", "j1.668", "j1.669"]
    tasks = run("hostile_bad_files.yml", async_dir, remote_tmp, hostile_bad_jids=bad)
    jobs = tasks["Wait for it and for the broken ones"]["jobs"]
    assert [j["state"] for j in jobs] == ["finished", "corrupt", "corrupt", "corrupt", "corrupt"]
    reasons = [j["msg"] for j in jobs[1:]]
    assert "not UTF-8" in reasons[0] and "nested too deep" in reasons[1]
    assert "not a regular file" in reasons[2] and "symbolic link" in reasons[3]
    assert Path("/etc/hostname").exists()
    # The poll module's temp dirs are gone when the play ends ...
    left = [p.name for d in remote_tmp.iterdir() for p in d.iterdir()]
    assert not any("async_job_poll" in name for name in left), left
    # ... and the launch's once core's async_wrapper watcher exits: it removes it after its
    # next look at the job (every 5 s), so the job file says finished before that.
    deadline = time.monotonic() + 120
    while session_members(str(remote_tmp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_members(str(remote_tmp)) == []
    assert [p.name for p in remote_tmp.iterdir()] == []


@pytest.fixture
def shared():
    """A private async dir every user can write in (a shared one, as on the issue's hosts),
    and a remote tmp; every process started under them is killed."""
    base = Path(tempfile.mkdtemp(prefix="hostile-shared-", dir="/tmp"))
    base.chmod(0o755)
    async_dir, remote_tmp = base / "async", base / "remote-tmp"
    async_dir.mkdir(mode=0o777)
    async_dir.chmod(0o777)
    remote_tmp.mkdir(mode=0o777)
    remote_tmp.chmod(0o777)
    yield async_dir, remote_tmp
    for pid, _sid in session_members(str(remote_tmp)):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("su"), reason="needs root and su")
def test_an_unprivileged_waiter_cannot_kill_a_root_job(shared) -> None:
    async_dir, remote_tmp = shared
    tasks = run("hostile_unprivileged.yml", async_dir, remote_tmp)
    jid = tasks["Launch a sleep as root"]["ansible_job_id"]
    waited = tasks["Wait for it as nobody, killing it at the timeout"]
    assert waited["failed"] is True
    (job,) = waited["jobs"]
    assert job["state"] == "kill_failed", job
    assert "not ours" in job["msg"]
    (alive,) = tasks["Look at the job as root"]["jobs"]
    assert alive["state"] == "running" and len(alive["pids"]) >= 3, alive
    (killed,) = tasks["Kill it as root"]["jobs"]
    assert (killed["state"], killed["erased"]) == ("killed", True), killed
    assert not (async_dir / jid).exists()


def test_async_launch_jobs_are_killed_queued_ones_with_their_supervisor(private) -> None:
    async_dir, remote_tmp = private
    tasks = run("hostile_launch.yml", async_dir, remote_tmp)
    jobs = tasks["Launch three sleeps, one at a time"]["jobs"]
    assert [j["state"] for j in jobs] == ["running", "queued", "queued"]
    supervisor = int(jobs[0]["jid"].split(".")[1])
    (one,) = tasks["Kill the last queued job alone"]["jobs"]
    assert one["state"] == "kill_failed", one
    assert jobs[0]["jid"] in one["msg"] and jobs[1]["jid"] in one["msg"]
    states = [j["state"] for j in tasks["Kill them all"]["jobs"]]
    assert states == ["killed", "killed", "killed"], tasks["Kill them all"]["jobs"]
    assert (
        not Path(f"/proc/{supervisor}/cmdline").exists()
        or not Path(f"/proc/{supervisor}/cmdline").read_bytes()
    )
    for job in jobs:
        on_disk = json.loads((async_dir / job["jid"]).read_text())
        assert on_disk["killed_by_async_wait"] is True
