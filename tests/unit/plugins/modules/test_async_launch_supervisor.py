"""async_launch's supervisor with real processes: slots, limits, records, detaching.

Each test launches a real detached supervisor (the same `launch()` the module calls) into
a private async dir and reads back the job files it writes. Nothing here depends on speed:
jobs are short, and bounds are behavioural (how many ran at once, in which order, what the
files say), never durations.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.tplabs.async_tasks.plugins.module_utils import (
    _launch,
    _launch_jobs,
    _launch_supervisor,
)
from ansible_collections.tplabs.async_tasks.plugins.module_utils._job import (
    KILLED_MARK,
    PROCESS_KEY,
    QUEUED_KEY,
    TIMEOUT_MSG,
    is_jid,
    jid_pid,
    parse_delta,
    read_job_file,
    record_state,
    write_job_file,
)
from ansible_collections.tplabs.async_tasks.plugins.modules.async_launch import specs_of
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._timing import max_running

STAMP = "%Y-%m-%d %H:%M:%S.%f"


@pytest.fixture
def async_dir(tmp_path: Path) -> Path:
    path = tmp_path / "async"
    path.mkdir()
    return path


def start(async_dir: Path, jobs: list[dict], limit: float = 60, slots: int = 0):
    """Launch and return (reader, first message); fails the test if the launch failed."""
    reader, first = _launch.launch(specs_of(jobs), str(async_dir), limit, slots)
    assert first.get("ok"), first
    return reader, first


def finish(async_dir: Path, reader, first: dict, window: float = 60) -> list[dict]:
    """Wait for every job's end message, then return the job files' records in input order."""
    jids = [job["jid"] for job in first["jobs"]]
    ends = _launch.wait_for_ends(reader, jids, window)
    reader.close()
    assert set(ends) == set(jids), f"not every job ended: {sorted(set(jids) - set(ends))}"
    return [read_job_file(str(async_dir / jid)).record for jid in jids]


def span(record: dict) -> tuple[float, float]:
    def stamp(text: str) -> float:
        return datetime.datetime.strptime(text, STAMP).timestamp()

    return stamp(record["start"]), stamp(record["end"])


def gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def wait_until(predicate, limit: float = 30.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --- slots ------------------------------------------------------------------------------


def test_max_parallel_caps_the_jobs_running_at_once_and_keeps_their_order(async_dir: Path) -> None:
    jobs = [{"name": f"j{i}", "argv": ["sleep", "0.6"]} for i in range(5)]
    reader, first = start(async_dir, jobs, slots=2)
    assert [job["state"] for job in first["jobs"]] == ["running", "running"] + ["queued"] * 3
    records = finish(async_dir, reader, first)
    assert [record["rc"] for record in records] == [0] * 5
    spans = [span(record) for record in records]
    assert max_running(spans) == 2
    starts = [start for start, _unused in spans]
    assert starts == sorted(starts), "queued jobs start in input order"


def test_without_max_parallel_every_job_starts_at_launch(async_dir: Path) -> None:
    jobs = [{"argv": ["sleep", "1"]} for _unused in range(4)]
    reader, first = start(async_dir, jobs)
    assert [job["state"] for job in first["jobs"]] == ["running"] * 4
    assert [job["name"] for job in first["jobs"]] == ["job0", "job1", "job2", "job3"]
    records = finish(async_dir, reader, first)
    assert max_running([span(record) for record in records]) == 4


# --- records ----------------------------------------------------------------------------


def test_records_tie_each_job_to_the_supervisor(async_dir: Path) -> None:
    reader, first = start(async_dir, [{"argv": ["sleep", "1"]}, {"argv": ["true"]}], slots=1)
    supervisor = first["supervisor"]
    running, queued = (read_job_file(str(async_dir / job["jid"])).record for job in first["jobs"])
    for job in first["jobs"]:
        assert is_jid(job["jid"])
        assert jid_pid(job["jid"]) == supervisor["pid"]
    assert record_state(running) == "running" and QUEUED_KEY not in running
    assert record_state(queued) == "queued" and queued[QUEUED_KEY] is True
    for record in (running, queued):
        assert record["started"] is True and record["finished"] is False
        process = record[PROCESS_KEY]
        assert {k: process[k] for k in ("pid", "starttime", "pgid", "uid")} == supervisor
    assert supervisor["starttime"] == _launch_jobs.proc_starttime(supervisor["pid"])
    assert supervisor["uid"] == os.getuid()
    job = running[PROCESS_KEY]["job"]
    assert job["pgid"] == job["pid"] != supervisor["pid"]
    assert "job" not in queued[PROCESS_KEY]
    finish(async_dir, reader, first)


def test_results_read_as_command_and_shell_return_them(async_dir: Path, tmp_path: Path) -> None:
    jobs = [
        {"name": "ok", "cmd": "echo 'one two'"},
        {"name": "sh", "shell": "echo out; echo err >&2; exit 3"},
        {"name": "missing", "argv": ["no-such-command-h4"]},
        {"name": "where", "argv": ["pwd"], "chdir": str(tmp_path)},
        {"name": "nowhere", "argv": ["pwd"], "chdir": str(tmp_path / "absent")},
    ]
    reader, first = start(async_dir, jobs)
    assert [job["state"] for job in first["jobs"]] == [
        "running",
        "running",
        "failed",
        "running",
        "failed",
    ]
    ok, sh, missing, where, nowhere = finish(async_dir, reader, first)
    assert "started" not in ok
    assert ok["cmd"] == ["echo", "one two"] and ok["stdout"] == "one two" and ok["rc"] == 0
    assert ok["changed"] is True and ok["msg"] == "" and "failed" not in ok
    assert parse_delta(ok["delta"]) is not None and ok["start"] <= ok["end"]
    assert sh["cmd"] == "echo out; echo err >&2; exit 3"
    assert (sh["rc"], sh["stdout"], sh["stderr"]) == (3, "out", "err")
    assert sh["failed"] is True and sh["msg"] == "non-zero return code"
    assert missing["failed"] is True and missing["rc"] == 2
    assert "No such file or directory" in missing["msg"] and "no-such-command-h4" in missing["msg"]
    assert where["stdout"] == str(tmp_path)
    assert nowhere["failed"] is True
    assert nowhere["msg"].startswith("Unable to change directory before execution")


def test_large_output_is_read_while_the_job_runs(async_dir: Path) -> None:
    size = (
        1_000_000  # far more than a pipe holds: a supervisor that only read at the end would hang
    )
    jobs = [{"shell": f"head -c {size} /dev/zero | tr '\\0' a; head -c {size} /dev/zero >&2"}]
    reader, first = start(async_dir, jobs, limit=120)
    (record,) = finish(async_dir, reader, first)
    assert record["rc"] == 0
    assert len(record["stdout"]) == size and set(record["stdout"]) == {"a"}
    assert len(record["stderr"]) == size


def test_a_handshake_bigger_than_a_pipe_arrives_whole(async_dir: Path) -> None:
    # 100 jobs with 1,000-character names: about 100 KB, more than a pipe holds at once.
    jobs = [{"name": f"{index:04d}-" + "x" * 995, "argv": ["true"]} for index in range(100)]
    reader, first = start(async_dir, jobs, slots=20)
    assert [job["name"] for job in first["jobs"]] == [job["name"] for job in jobs]
    assert len({job["jid"] for job in first["jobs"]}) == 100
    records = finish(async_dir, reader, first, window=300)
    assert {record["rc"] for record in records} == {0}


# --- limits and signals -------------------------------------------------------------------


def test_a_job_past_its_limit_is_killed_with_its_whole_group(
    async_dir: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "bg.pid"
    jobs = [
        {"name": "slow", "shell": f"sleep 300 & echo $! > {pidfile}; wait"},
        {"name": "quick", "argv": ["true"]},
    ]
    reader, first = start(async_dir, jobs, limit=1.5)
    slow, quick = finish(async_dir, reader, first)
    assert slow["msg"] == TIMEOUT_MSG and slow["failed"] is True
    assert record_state(slow) == "timeout"
    assert quick["rc"] == 0
    background = int(pidfile.read_text())
    assert wait_until(lambda: not Path(f"/proc/{background}").exists() or _zombie(background))
    assert wait_until(lambda: gone(slow["child_pid"]))


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


def test_the_limit_counts_from_the_jobs_own_start_not_the_launch(async_dir: Path) -> None:
    # The second job waits ~1 s for its slot; with a 2.5 s limit it must still finish.
    jobs = [{"argv": ["sleep", "1"]}, {"argv": ["sleep", "1"]}]
    reader, first = start(async_dir, jobs, limit=2.5, slots=1)
    records = finish(async_dir, reader, first)
    assert [record.get("rc") for record in records] == [0, 0], records


def test_sigterm_stops_the_supervisor_and_its_running_jobs(async_dir: Path) -> None:
    jobs = [{"argv": ["sleep", "300"]}, {"argv": ["sleep", "300"]}, {"argv": ["sleep", "300"]}]
    reader, first = start(async_dir, jobs, slots=2)
    supervisor = first["supervisor"]["pid"]
    records = [read_job_file(str(async_dir / job["jid"])).record for job in first["jobs"]]
    groups = [record[PROCESS_KEY]["job"]["pgid"] for record in records[:2]]
    os.kill(supervisor, signal.SIGTERM)
    assert wait_until(lambda: all(gone(group) for group in groups))
    assert wait_until(lambda: not Path(f"/proc/{supervisor}").exists() or _zombie(supervisor))
    # The queued job never started; every record is left for the waiter to judge (orphaned).
    assert [
        record_state(read_job_file(str(async_dir / j["jid"])).record) for j in first["jobs"]
    ] == [
        "running",
        "running",
        "queued",
    ]
    reader.close()


def test_jobs_die_with_a_killed_supervisor_and_their_records_stay_running(async_dir: Path) -> None:
    reader, first = start(
        async_dir, [{"argv": ["sleep", "300"]}, {"argv": ["sleep", "300"]}], slots=1
    )
    supervisor = first["supervisor"]["pid"]
    running = read_job_file(str(async_dir / first["jobs"][0]["jid"])).record
    job = running[PROCESS_KEY]["job"]["pid"]
    os.kill(supervisor, signal.SIGKILL)
    assert wait_until(lambda: gone(job) or _zombie(job)), "the job outlived its supervisor"
    states = [record_state(read_job_file(str(async_dir / j["jid"])).record) for j in first["jobs"]]
    assert states == ["running", "queued"]  # for the waiter to call orphaned
    reader.close()


def test_a_job_killed_from_outside_is_recorded_unless_its_record_was_replaced(
    async_dir: Path, monkeypatch
) -> None:
    # A grace long enough for this test to replace or remove records before the supervisor
    # looks (by default it looks at once).
    monkeypatch.setattr(_launch_supervisor, "OUTSIDE_KILL_GRACE", 3.0)
    reader, first = start(async_dir, [{"argv": ["sleep", "300"]} for _unused in range(3)])
    paths = [async_dir / job["jid"] for job in first["jobs"]]
    groups = [read_job_file(str(path)).record[PROCESS_KEY]["job"]["pgid"] for path in paths]
    # The first is killed by someone who records nothing; the others as async_wait does it:
    # processes gone, then the `killed` record (then, with cleanup, no file at all).
    for group in groups:
        os.killpg(group, signal.SIGTERM)
    assert wait_until(lambda: all(gone(group) for group in groups))
    killed = {"started": True, "finished": True, "failed": True, KILLED_MARK: True}
    write_job_file(str(paths[1]), killed)
    paths[2].unlink()
    jids = [job["jid"] for job in first["jobs"]]
    ends = _launch.wait_for_ends(reader, jids, 60)
    reader.close()
    assert set(ends) == set(jids)
    record = read_job_file(str(paths[0])).record
    assert record["rc"] == -signal.SIGTERM and record["failed"] is True
    assert read_job_file(str(paths[1])).record == killed
    assert not paths[2].exists()


def test_a_queued_job_whose_record_a_waiter_replaced_never_starts(
    async_dir: Path, tmp_path: Path
) -> None:
    go, ran = tmp_path / "go", tmp_path / "ran"
    jobs = [
        {"shell": f"while [ ! -e {go} ]; do sleep 0.05; done"},
        {"shell": f"touch {ran}"},
        {"argv": ["true"]},
    ]
    reader, first = start(async_dir, jobs, slots=1)
    killed = {"started": True, "finished": True, "failed": True, KILLED_MARK: True}
    write_job_file(str(async_dir / first["jobs"][1]["jid"]), killed)
    go.touch()
    held, withdrawn, last = finish(async_dir, reader, first)
    assert held["rc"] == 0 and last["rc"] == 0
    assert withdrawn == killed
    assert not ran.exists()


def test_out_of_descriptors_the_jobs_queue_instead_of_failing(async_dir: Path) -> None:
    # 40 descriptors: far fewer than 30 jobs at once need (two pipes each), no max_parallel.
    script = f"""
import json, resource, sys
sys.path[:0] = {sys.path!r}
resource.setrlimit(resource.RLIMIT_NOFILE, (40, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from ansible_collections.tplabs.async_tasks.plugins.module_utils import (
    _launch,
    _launch_jobs,
    _launch_supervisor,
)
from ansible_collections.tplabs.async_tasks.plugins.modules.async_launch import specs_of
reader, first = _launch.launch(specs_of([{{"argv": ["sleep", "0.2"]}}] * 30), {str(async_dir)!r}, 60, 0)
ends = _launch.wait_for_ends(reader, [j["jid"] for j in first["jobs"]], 120)
print(json.dumps({{"first": first, "ends": len(ends)}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["first"]["ok"] and report["ends"] == 30
    states = [job["state"] for job in report["first"]["jobs"]]
    assert "queued" in states and "failed" not in states
    records = [read_job_file(str(async_dir / job["jid"])).record for job in report["first"]["jobs"]]
    assert [record.get("rc") for record in records] == [0] * 30


# --- detaching ----------------------------------------------------------------------------


def test_the_supervisor_is_detached_and_holds_none_of_our_descriptors(async_dir: Path) -> None:
    held_r, held_w = os.pipe()  # stands for the connection's pipes the module inherits
    try:
        reader, first = start(async_dir, [{"argv": ["sleep", "2"]}])
        pid = first["supervisor"]["pid"]
        assert os.getsid(pid) != os.getsid(0)
        assert os.getpgid(pid) != os.getpgid(0)
        assert os.getsid(pid) == first["supervisor"]["pgid"]
        ours = {os.stat(f"/proc/self/fd/{fd}").st_ino for fd in (held_r, held_w)}
        theirs = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                theirs.add(os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
        assert not ours & theirs
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == os.devnull
        finish(async_dir, reader, first)
    finally:
        os.close(held_r)
        os.close(held_w)


def test_ends_reach_a_waiting_module_and_views_follow_the_poll_contract(async_dir: Path) -> None:
    reader, first = start(async_dir, [{"argv": ["true"]}, {"argv": ["sleep", "300"]}], limit=300)
    jids = [job["jid"] for job in first["jobs"]]
    ends = _launch.wait_for_ends(reader, jids, window=1.0)
    assert list(ends) == [jids[0]]
    now = time.time()
    done, running = (_launch.view(str(async_dir), jid, ends, now, cleanup=True) for jid in jids)
    assert done["state"] == "finished" and done["erased"] is True
    assert done["result"]["rc"] == 0 and done["ended_at"] >= done["started_at"]
    assert not (async_dir / jids[0]).exists()
    assert running["state"] == "running" and running["running_for"] >= 0
    assert "result" not in running and (async_dir / jids[1]).exists()
    os.kill(first["supervisor"]["pid"], signal.SIGTERM)
    reader.close()


# --- pieces ----------------------------------------------------------------------------------


def test_job_ids_are_distinct_and_in_cores_format() -> None:
    class Repeating:
        def __init__(self) -> None:
            self.values = iter([7, 7, 7, 8])

        def randrange(self, _stop: int) -> int:
            return next(self.values)

    assert _launch_jobs.new_jids(2, 4242, Repeating()) == [
        "j000000000007.4242",
        "j000000000008.4242",
    ]
    jids = _launch_jobs.new_jids(50, 31)
    assert len(set(jids)) == 50 and all(is_jid(jid) and jid_pid(jid) == 31 for jid in jids)


def test_starttime_is_read_after_the_command_name_whatever_it_holds(tmp_path: Path) -> None:
    (tmp_path / "99").mkdir()
    fields = " ".join(str(n) for n in range(3, 30))  # field 22 holds "22"
    (tmp_path / "99" / "stat").write_text(f"99 (a) b (c)) {fields}\n")
    assert _launch_jobs.proc_starttime(99, proc=str(tmp_path)) == 22
    assert _launch_jobs.proc_starttime(98, proc=str(tmp_path)) is None
    assert _launch_jobs.proc_starttime() == _launch_jobs.proc_starttime(os.getpid())


def test_specs_split_cmd_as_command_does_and_run_shell_through_sh() -> None:
    cmd, shell, argv = specs_of(
        [
            {"cmd": "printf '%s' 'a b'"},
            {"shell": "echo $HOME | wc -c", "name": "count"},
            {"argv": ["ls", "-l"], "chdir": "~"},
        ]
    )
    assert (cmd.name, cmd.argv, cmd.cmd) == (
        "job0",
        ["printf", "%s", "a b"],
        ["printf", "%s", "a b"],
    )
    assert (shell.name, shell.argv[:2], shell.cmd) == (
        "count",
        ["/bin/sh", "-c"],
        "echo $HOME | wc -c",
    )
    assert argv.chdir == os.path.expanduser("~")


def test_a_launch_that_cannot_write_its_records_fails_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("")
    marker = tmp_path / "ran"
    jobs = [{"shell": f"sleep 1; touch {marker}"}, {"argv": ["true"]}]
    reader, first = _launch.launch(specs_of(jobs), str(target), 60, 1)
    reader.close()
    assert first["ok"] is False
    assert first["msg"].startswith("cannot start the jobs:") and str(target) in first["msg"]
    time.sleep(1.5)
    assert not marker.exists(), "the job started before the failed record was killed"
