"""async_job_poll on a hostile or broken host: each point of issue 13, with real processes
(only `sleep` jobs started here, always killed) and real files in private async dirs.

The module's main() runs in a child process, as Ansible runs it. To run these tests
against another version of the module: TPLABS_POLL_MODULE=/path/to/async_job_poll.py.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.unit.plugins.modules.async_job_poll_fakes import (
    FakeJobs,
    jobs_by_jid,
    module_under_test,
    run_poll,
)

NOBODY = 65534
RUNNING = {"started": True, "finished": False}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users")


@pytest.fixture(scope="module")
def poll():
    return module_under_test()


@pytest.fixture
def shared(tmp_path: Path):
    """A base directory every user can reach (tmp_path is root's only)."""
    base = Path(tempfile.mkdtemp(prefix="poll-hostile-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def async_dir(shared: Path) -> Path:
    path = shared / "async"
    path.mkdir()
    path.chmod(0o777)  # a shared async dir, as on the hosts of the issue
    return path


@pytest.fixture
def fake(shared: Path):
    jobs = FakeJobs(shared / "launch")
    (shared / "launch").mkdir()
    (shared / "launch").chmod(0o755)
    yield jobs
    jobs.stop()


def boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise AssertionError("no btime")


def write(async_dir: Path, jid: str, data: object) -> Path:
    path = async_dir / jid
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


# --- 1. a kill is verified -------------------------------------------------------------------


def test_kill_of_a_root_job_by_another_user_is_kill_failed(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    before = job.path.read_bytes()
    reply = run_poll(
        poll, uid=NOBODY, jids=[job.jid], async_dir=str(async_dir), mode="kill", cleanup=True
    )
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "kill_failed", entry
    assert "not ours" in entry["msg"]
    assert len(job.processes()) >= 3  # its sleep still runs
    assert job.path.read_bytes() == before  # the job file is exactly as it was


def test_kill_of_a_wrong_jid_without_job_file_signals_nothing(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    wrong = f"{job.prefix}.1"  # the real job's prefix, another pid
    reply = run_poll(poll, jids=[wrong], async_dir=str(async_dir), mode="kill", cleanup=True)
    entry = jobs_by_jid(reply)[wrong]
    assert entry["state"] == "unknown", entry
    assert len(job.processes()) >= 3
    assert json.loads(job.path.read_text()) == {**RUNNING, "ansible_job_id": job.jid}


def test_kill_without_proc_is_kill_failed(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    before = job.path.read_bytes()
    reply = run_poll(poll, no_proc=True, jids=[job.jid], async_dir=str(async_dir), mode="kill")
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "kill_failed", entry
    assert "/proc" in entry["msg"]
    assert len(job.processes()) >= 3
    assert job.path.read_bytes() == before


def test_kill_is_reported_only_once_the_processes_are_gone(poll, fake, async_dir) -> None:
    job = fake.start(async_dir, ignore_term=True)  # SIGTERM is not enough
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), mode="kill")
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "killed", entry
    assert job.processes() == []
    on_disk = json.loads(job.path.read_text())
    assert on_disk["killed_by_async_wait"] is True and on_disk["finished"] is True


# --- 2. a job is identified by what its launch recorded ----------------------------------


def test_kill_spares_processes_that_started_after_the_job_file(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    old = time.time() - 3600
    os.utime(job.path, (old, old))  # the file predates the processes that carry its prefix
    before = job.path.read_bytes()
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), mode="kill")
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "kill_failed", entry
    assert "certainty" in entry["msg"]
    assert len(job.processes()) >= 3
    assert job.path.read_bytes() == before


def test_a_lookalike_of_another_user_does_not_keep_a_dead_job_alive(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    job.kill()  # the job dies without writing its result
    fake_it = fake.start(async_dir, uid=NOBODY, prefix=job.prefix)  # same prefix, not root
    assert fake_it.processes()
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), window=0)
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "orphaned", entry
    assert len(fake_it.processes()) >= 3  # and nothing of the other user was touched


# --- 3. a live job is never called orphaned -----------------------------------------------


def _step_clock(path: Path) -> None:
    """The clock was set forward after the launch: the file now looks older than the boot."""
    old = boot_time() - 600
    os.utime(path, (old, old))


def _restore_snapshot(path: Path) -> None:
    """A VM snapshot restored: the same file, its mtime from before this boot."""
    old = boot_time() - 86400
    os.utime(path, (old, old))


def _copy_file(path: Path) -> None:
    """The async dir restored by a copy (cp -p): a new inode with the old times."""
    copy = path.with_name(path.name + ".copy")
    shutil.copy2(path, copy)
    old = boot_time() - 3600
    os.utime(copy, (old, old))
    os.rename(copy, path)


@pytest.mark.parametrize(
    "change",
    [_step_clock, _restore_snapshot, _copy_file],
    ids=["clock-step", "restored-snapshot", "copied-file"],
)
def test_live_job_is_never_orphaned_after(poll, fake, async_dir, change) -> None:
    job = fake.start(async_dir)
    change(job.path)
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), window=0, cleanup=True)
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "running", entry
    assert job.path.exists()


def test_live_job_is_never_orphaned_behind_an_interpreter_shim(poll, fake, async_dir) -> None:
    job = fake.start(async_dir, shim=True)
    argv = Path(f"/proc/{job.processes()[0]}/cmdline").read_bytes().split(b"\0")
    assert argv[1:3] == [b"-X", b"utf8"]  # the script is not in argv[:3]
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), window=0.5, cleanup=True)
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "running", entry
    assert job.path.exists()


def test_live_job_is_never_orphaned_without_proc(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    reply = run_poll(
        poll, no_proc=True, jids=[job.jid], async_dir=str(async_dir), window=0, cleanup=True
    )
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "running", entry
    assert job.path.exists()


def test_live_job_is_never_orphaned_when_its_processes_are_hidden(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)  # root's, polled by another user under hidepid=2
    reply = run_poll(
        poll, uid=NOBODY, hidepid=True, jids=[job.jid], async_dir=str(async_dir), window=0
    )
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "running", entry
    assert "hidden" in entry["msg"]


def test_orphan_needs_no_process_and_an_unchanged_file(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    job.kill()
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), window=0, cleanup=True)
    entry = jobs_by_jid(reply)[job.jid]
    assert entry["state"] == "orphaned", entry
    assert entry["erased"] is True


# --- 4. one bad file stays that job's ---------------------------------------------------------


def _deep() -> bytes:
    return b'{"a": ' * 100_000 + b"1" + b"}" * 100_000


BAD_FILES = {
    "invalid-utf8": (lambda d: write(d, "j1.666", b'{"rc": 0, "stdout": "\xff\xfe"}'), "j1.666"),
    "deep-nesting": (lambda d: write(d, "j1.667", _deep()), "j1.667"),
    "300-digit-jid": (lambda d: None, "j" + "4" * 300 + ".1"),
    "fifo": (lambda d: os.mkfifo(d / "j1.668"), "j1.668"),
    "symlink": (lambda d: (d / "j1.669").symlink_to("/etc/passwd"), "j1.669"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_one_bad_file_stays_that_jobs(poll, async_dir, case) -> None:
    make, bad = BAD_FILES[case]
    make(async_dir)
    write(async_dir, "j1.100", {"rc": 0, "stdout": "fine"})
    reply = run_poll(
        poll, jids=["j1.100", bad], async_dir=str(async_dir), window=0, cleanup=True, timeout=30
    )
    jobs = jobs_by_jid(reply)
    assert jobs["j1.100"]["state"] == "finished"
    assert jobs["j1.100"]["erased"] is True
    assert jobs[bad]["state"] in ("corrupt", "unknown"), jobs[bad]
    assert jobs[bad]["msg"]
    assert Path("/etc/passwd").exists()


def test_an_unreadable_async_dir_is_reported_per_job(poll, shared) -> None:
    private = shared / "root-only"
    private.mkdir(mode=0o700)
    write(private, "j1.100", {"rc": 0})
    reply = run_poll(poll, uid=NOBODY, jids=["j1.100", "j1.101"], async_dir=str(private), window=0)
    jobs = jobs_by_jid(reply)
    for jid in ("j1.100", "j1.101"):
        assert jobs[jid]["state"] == "corrupt", jobs[jid]
        assert "Permission denied" in jobs[jid]["msg"]


# --- 5. costs ------------------------------------------------------------------------------


def count_proc_scans(calls: list):
    """setup() for run_poll: count the reads of the /proc directory."""

    def setup() -> None:
        real = os.listdir

        def listdir(path="."):
            if str(path).rstrip("/") == "/proc":
                calls.append(1)
                os.write(99, b"s")
            return real(path)

        os.listdir = listdir

    return setup


def test_one_process_table_read_per_check_whatever_the_number_of_jobs(poll, async_dir) -> None:
    jids = [f"j7{n:04d}.{n + 1}" for n in range(60)]
    for jid in jids:  # sixty dead jobs: each looks orphaned
        write(async_dir, jid, RUNNING)
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK)
    os.dup2(write_fd, 99)
    try:
        reply = run_poll(
            poll, setup=count_proc_scans([]), jids=jids, async_dir=str(async_dir), window=0
        )
        scans = len(os.read(read_fd, 1 << 16))
    finally:
        os.close(99)
        os.close(read_fd)
        os.close(write_fd)
    assert [j["state"] for j in reply["jobs"]] == ["orphaned"] * 60
    assert scans <= 2  # one read, and one to confirm the verdicts


def test_kill_cost_does_not_grow_with_the_number_of_jobs(poll, fake, async_dir) -> None:
    """Ten jobs that ignore SIGTERM: one grace period for all of them, not one each.

    The clock is virtual (time.sleep advances it), so the count does not depend on the
    machine's speed: rounds of 0.05 s over a few seconds of grace, whatever the jobs."""
    jobs = [fake.start(async_dir, ignore_term=True) for _unused in range(10)]

    def virtual_clock() -> None:
        now = [time.monotonic()]
        time.monotonic = lambda: now[0]
        time.sleep = lambda secs: now.__setitem__(0, now[0] + max(secs, 0.001))
        count_proc_scans([])()

    read_fd, write_fd = os.pipe2(os.O_NONBLOCK)
    os.dup2(write_fd, 99)
    try:
        reply = run_poll(
            poll,
            setup=virtual_clock,
            jids=[j.jid for j in jobs],
            async_dir=str(async_dir),
            mode="kill",
        )
        scans = len(os.read(read_fd, 1 << 16))
    finally:
        os.close(99)
        os.close(read_fd)
        os.close(write_fd)
    assert [j["state"] for j in reply["jobs"]] == ["killed"] * 10, reply
    assert scans <= 120, f"{scans} reads of /proc to kill 10 jobs"


def test_a_big_running_file_is_neither_sent_back_nor_read(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    record = {**RUNNING, "ansible_job_id": job.jid, "pad": "x" * (20 * 1024 * 1024)}
    job.path.write_text(json.dumps(record))
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), window=0.3)
    assert jobs_by_jid(reply)[job.jid]["state"] == "running"
    assert len(json.dumps(reply)) < 64 * 1024


def test_a_big_result_is_truncated_and_kept(poll, async_dir) -> None:
    write(async_dir, "j1.100", {"rc": 0, "stdout": "y" * (5 * 1024 * 1024)})
    reply = run_poll(poll, jids=["j1.100"], async_dir=str(async_dir), window=0, cleanup=True)
    entry = jobs_by_jid(reply)["j1.100"]
    assert (entry["state"], entry.get("truncated")) == ("finished", True), entry
    assert entry["result"]["rc"] == 0
    assert len(json.dumps(reply)) < 2 * 1024 * 1024
    assert (async_dir / "j1.100").exists()  # the whole result stays on the host
    assert entry["erased"] is False


# --- 6. nothing is written through a link ---------------------------------------------------


def test_never_follows_a_planted_tmp_link_when_killing(poll, fake, async_dir, shared) -> None:
    job = fake.start(async_dir)
    outside = shared / "precious"
    outside.write_text("precious")
    for name in (f"{job.jid}.tmp", f".{job.jid}.tmp"):
        (async_dir / name).symlink_to(outside)
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), mode="kill")
    assert jobs_by_jid(reply)[job.jid]["state"] == "killed"
    assert outside.read_text() == "precious"
    assert stat.S_ISREG(job.path.lstat().st_mode)


def test_never_follows_a_symlinked_job_file(poll, async_dir, shared) -> None:
    secret = shared / "secret"
    secret.write_text(json.dumps({"rc": 0, "stdout": "secret"}))
    (async_dir / "j1.2").symlink_to(secret)
    reply = run_poll(poll, jids=["j1.2"], async_dir=str(async_dir), window=0, cleanup=True)
    assert jobs_by_jid(reply)["j1.2"]["state"] == "corrupt"
    assert "secret" not in json.dumps(reply)
    assert secret.exists()


# --- 7. the smaller ones ------------------------------------------------------------------


def test_kill_removes_the_launch_tmp_dir(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    assert (job.tmpdir / "args").exists()
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), mode="kill")
    assert jobs_by_jid(reply)[job.jid]["state"] == "killed"
    assert not job.tmpdir.exists()  # the module's arguments (secrets) are gone


@pytest.mark.parametrize("window", [float("nan"), float("inf"), -1.0], ids=repr)
def test_window_must_be_a_finite_number(poll, async_dir, window) -> None:
    write(async_dir, "j1.2", RUNNING)
    reply = run_poll(poll, jids=["j1.2"], async_dir=str(async_dir), window=window, timeout=20)
    assert reply.get("failed") is True, reply
    assert "window" in reply["msg"]


def test_cleanup_error_is_reported_per_job(poll, shared) -> None:
    locked = shared / "locked"
    locked.mkdir(mode=0o755)  # root's: another user can read but not remove
    write(locked, "j1.2", {"rc": 0})
    reply = run_poll(poll, uid=NOBODY, jids=["j1.2"], async_dir=str(locked), window=0, cleanup=True)
    entry = jobs_by_jid(reply)["j1.2"]
    assert entry["state"] == "finished"
    assert "Permission denied" in entry["cleanup_error"]


def test_started_false_as_a_string_is_read_as_false(poll, fake, async_dir) -> None:
    job = fake.start(async_dir)
    job.path.write_text(json.dumps({"started": 1, "finished": "false", "ansible_job_id": job.jid}))
    reply = run_poll(poll, jids=[job.jid], async_dir=str(async_dir), window=0)
    assert jobs_by_jid(reply)[job.jid]["state"] == "running"


def test_the_second_waiter_is_told_the_file_was_removed(poll, async_dir) -> None:
    write(async_dir, "j1.2", {"rc": 0})
    first = run_poll(poll, jids=["j1.2"], async_dir=str(async_dir), window=0, cleanup=True)
    assert jobs_by_jid(first)["j1.2"]["erased"] is True
    second = run_poll(poll, jids=["j1.2"], async_dir=str(async_dir), window=0, seen=["j1.2"])
    entry = jobs_by_jid(second)["j1.2"]
    assert entry["state"] == "unknown"
    assert "removed after this wait saw it" in entry["msg"]
    third = run_poll(poll, jids=["j1.2"], async_dir=str(async_dir), window=0)
    assert "already removed" in jobs_by_jid(third)["j1.2"]["msg"]


# --- issue 8: the async dir as the host sees it ------------------------------------------


def test_tilde_is_expanded_on_the_host(poll, shared) -> None:
    home = shared / "home"
    (home / ".jobs").mkdir(parents=True)
    write(home / ".jobs", "j1.2", {"rc": 0})

    def set_home() -> None:
        os.environ["HOME"] = str(home)

    reply = run_poll(poll, setup=set_home, jids=["j1.2"], async_dir="~/.jobs", window=0)
    assert reply["async_dir"] == str(home / ".jobs")
    assert jobs_by_jid(reply)["j1.2"]["state"] == "finished"


def test_a_job_where_the_pwd_fallback_put_it_is_found(poll, shared) -> None:
    cwd = shared / "cwd"
    cwd.mkdir()
    write(cwd, "j1.2", {"rc": 0})  # core's _remote_expand_user fell back to `pwd`

    def chdir() -> None:
        os.chdir(cwd)

    reply = run_poll(poll, setup=chdir, jids=["j1.2"], async_dir=str(shared / "async"), window=0)
    entry = jobs_by_jid(reply)["j1.2"]
    assert entry["state"] == "finished", entry
    assert entry["found_in"] == str(cwd)


# --- async_launch's jobs: tied by the record, the supervisor spared unless all its jobs go --


def starttime(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return int(raw[raw.rindex(b")") + 2 :].split()[19])


@pytest.fixture
def launch():
    """A stand-in for async_launch's supervisor (its own session) and its jobs' processes."""
    started: list[subprocess.Popen] = []

    def spawn(own_session: bool) -> subprocess.Popen:
        argv = ["setsid", "sleep", "3600"] if own_session else ["sleep", "3600"]
        proc = subprocess.Popen(argv, process_group=None if own_session else 0)
        started.append(proc)
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline
            and b"sleep" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        ):
            time.sleep(0.02)
        return proc

    yield spawn
    for proc in started:
        proc.kill()
        proc.wait()


def launch_record(jid: str, sup: int, job: int | None = None) -> dict:
    record = {**RUNNING, "ansible_job_id": jid}
    info = {"pid": sup, "starttime": starttime(sup), "pgid": sup, "uid": 0}
    if job is None:
        record["queued"] = True
    else:
        info["job"] = {"pid": job, "pgid": job, "starttime": starttime(job)}
    record["_tplabs_process"] = info
    return record


def alive(proc: subprocess.Popen) -> bool:
    try:
        return Path(f"/proc/{proc.pid}/stat").read_bytes().split(b") ")[1][:1] not in b"ZX"
    except OSError:
        return False


def test_kill_of_a_launch_job_spares_its_supervisor(poll, launch, async_dir) -> None:
    sup, job = launch(True), launch(False)
    jid = f"j123456789012.{sup.pid}"
    write(async_dir, jid, launch_record(jid, sup.pid, job.pid))
    reply = run_poll(poll, jids=[jid], async_dir=str(async_dir), mode="kill")
    entry = jobs_by_jid(reply)[jid]
    assert entry["state"] == "killed", entry
    assert not alive(job) and alive(sup)


def test_a_queued_launch_job_stops_its_supervisor_only_with_all_its_jobs(
    poll, launch, async_dir
) -> None:
    sup = launch(True)
    queued, other = f"j100000000001.{sup.pid}", f"j100000000002.{sup.pid}"
    write(async_dir, queued, launch_record(queued, sup.pid))
    write(async_dir, other, launch_record(other, sup.pid))
    reply = run_poll(poll, jids=[queued], async_dir=str(async_dir), mode="kill")
    entry = jobs_by_jid(reply)[queued]
    assert entry["state"] == "kill_failed", entry
    assert other in entry["msg"] and alive(sup)
    reply = run_poll(poll, jids=[queued, other], async_dir=str(async_dir), mode="kill")
    assert [j["state"] for j in reply["jobs"]] == ["killed", "killed"], reply
    assert not alive(sup)


def test_a_launch_jobs_own_result_is_kept_and_marked_killed(poll, launch, async_dir) -> None:
    """The supervisor reaps the job killed alone and writes its result: that result is kept
    (with the output so far), marked as killed, never overwritten by a bare kill record."""
    sup, job = launch(True), launch(False)
    jid = f"j123456789013.{sup.pid}"
    path = write(async_dir, jid, launch_record(jid, sup.pid, job.pid))

    def supervisor() -> None:  # what async_launch's supervisor does when its job dies
        while alive(job):
            time.sleep(0.02)
        # Written aside and renamed over the job file, as the supervisor (_job.write_job_file)
        # and core's async_wrapper write: a reader never sees it half written. (A plain
        # write_text here let the poll read a truncated file now and then: "failed" under
        # load instead of "killed".)
        aside = path.with_name(f".{path.name}.supervisor")
        aside.write_text(json.dumps({"rc": -15, "stdout": "so far", "failed": True}))
        os.replace(aside, path)

    watcher = threading.Thread(target=supervisor, daemon=True)
    watcher.start()
    reply = run_poll(poll, jids=[jid], async_dir=str(async_dir), mode="kill")
    watcher.join(30)
    entry = jobs_by_jid(reply)[jid]
    assert entry["state"] == "killed", entry
    assert entry["result"]["stdout"] == "so far"
    on_disk = json.loads(path.read_text())
    assert (on_disk["killed_by_async_wait"], on_disk["stdout"]) == (True, "so far")


def test_a_result_planted_by_another_user_in_the_fallback_dir_is_ignored(poll, shared) -> None:
    cwd = shared / "cwd"
    cwd.mkdir(mode=0o777)
    cwd.chmod(0o777)
    planted = write(cwd, "j1.2", {"rc": 0, "stdout": "all good, honest"})
    os.chown(planted, NOBODY, NOBODY)

    def chdir() -> None:
        os.chdir(cwd)

    reply = run_poll(poll, setup=chdir, jids=["j1.2"], async_dir=str(shared / "async"), window=0)
    entry = jobs_by_jid(reply)["j1.2"]
    assert entry["state"] == "unknown", entry
    assert "found_in" not in entry
