"""The process table and how a job is tied to its processes (module_utils/_proc.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job, _kill, _proc

ME = 50
W = "/root/.ansible/tmp/ansible-tmp-1-2-3/async_wrapper.py"
MOD = "/root/.ansible/tmp/ansible-tmp-1-2-3/AnsiballZ_command.py"


def proc(pid, ppid=1, pgid=None, sid=None, uid=0, start=100, argv=(), state="S"):
    return _proc.Process(pid, ppid, pgid or pid, sid or pid, state, start, uid, tuple(argv))


def wrapper(prefix="j42"):
    return ("/usr/bin/python3", W, prefix, "60", MOD, "_")


def table(*procs, btime=1000.0, me=None):
    """A process table: our own process (pid 50, its own session) plus these."""
    mine = me or proc(ME, pgid=ME, sid=ME, argv=("python", "AnsiballZ_async_job_poll.py"))
    procs_by_pid = {p.pid: p for p in (mine, *procs)}
    return _proc.ProcTable(procs_by_pid, btime, 100, ME, proc="/nonexistent-proc")


def core_layout(uid=0, start=100, prefix="j42"):
    """async_wrapper's tree: supervisor 300 (session 299, whose leader exited), module
    child 301 in its own group, and the job's sleep 302 in that group."""
    return (
        proc(300, pgid=299, sid=299, uid=uid, start=start, argv=wrapper(prefix)),
        proc(301, ppid=300, pgid=301, sid=299, uid=uid, start=start, argv=wrapper(prefix)),
        proc(302, ppid=301, pgid=301, sid=299, uid=uid, start=start + 5, argv=("sleep", "60")),
    )


# --- reading the table ----------------------------------------------------------------------


def test_parse_stat_with_parentheses_in_the_name() -> None:
    raw = b"123 (a) (b c)) S 1 123 123 0 -1 4194560 " + b"0 " * 12 + b"98765 0 0"
    assert _proc.parse_stat(raw) == ("S", 1, 123, 123, 98765)


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (("/usr/bin/python3", W, "j42", "60", MOD, "_"), "j42"),
        (("python", "-X", "utf8", W, "j42", "60", MOD, "_"), "j42"),  # interpreter shim
        (("/bin/sh", "/usr/local/bin/py-shim", W, "j42", "60", MOD, "_"), "j42"),
        (("python", "/tmp/x/AnsiballZ_async_wrapper.py", "j42", "0", MOD, "_"), "j42"),
        (("python", W, "j42.1", "60", MOD, "_"), None),  # a job id, not a prefix
        (("python", W, "j42", "soon", MOD, "_"), None),
        (("python", "/tmp/not_a_wrapper.py", "j42", "60", MOD, "_"), None),
        (("sleep", "j42"), None),
        ((), None),
    ],
    ids=["plain", "shim-exec", "shim-sh", "ansiballz", "jid", "limit", "other", "sleep", "empty"],
)
def test_wrapper_args(argv, prefix) -> None:
    found = _proc.wrapper_args(argv)
    assert (found.prefix if found else None) == prefix


def test_wrapper_args_names_the_module_and_preserve_tmp() -> None:
    found = _proc.wrapper_args(("python", W, "j42", "60", MOD, "_", "-preserve_tmp"))
    assert (found.script, found.module, found.preserve_tmp) == (W, MOD, True)


def test_scan_reads_the_real_table_once_with_us_in_it() -> None:
    found = _proc.scan()
    assert found is not None
    me = found.processes[os.getpid()]
    assert (me.pgid, me.sid, me.uid) == (os.getpgid(0), os.getsid(0), os.geteuid())
    assert me.starttime > 0 and found.btime and found.hz > 0
    assert found.started_at(me) <= time.time()


def test_scan_of_an_empty_or_missing_proc_is_no_table(tmp_path) -> None:
    assert _proc.scan(str(tmp_path)) is None  # /proc not mounted
    assert _proc.scan(str(tmp_path / "nope")) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change a process's uid")
def test_uid_of_a_process_that_changed_uid_without_exec() -> None:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: not "dumpable" any more, /proc says root
        os.setuid(65534)
        os.write(write_fd, b"x")
        time.sleep(60)
        os._exit(0)
    try:
        os.read(read_fd, 1)
        t = _proc.scan()
        child = t.processes[pid]
        assert child.uid == 0  # what the owner of /proc/<pid> says
        assert t.uid_of(child) == 65534
        assert t.sees_other_users(65534)  # root's processes are visible to it here
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_live_ignores_zombies_and_reused_pids() -> None:
    t = table(proc(7, start=10), proc(8, state="Z"))
    assert t.live(7) is not None and t.live(7, 10) is not None
    assert t.live(7, 11) is None  # the same pid, another process
    assert t.live(8) is None and t.live(9) is None


# --- core's wrapper ----------------------------------------------------------------------


def test_core_job_is_tied_with_its_session_and_groups() -> None:
    t = table(*core_layout())
    found = _proc.core_job(t, "j42.298", owner=0, written_at=1002.0)
    assert (found.alive, found.certain) == (True, True), found.reason
    assert found.pids == [300, 301, 302]
    assert found.groups == [299, 301] and found.sids == [299]
    assert found.tmpdirs == ["/root/.ansible/tmp/ansible-tmp-1-2-3"]


def test_core_job_of_another_owner_is_not_the_job() -> None:
    t = table(*core_layout(uid=1000))
    found = _proc.core_job(t, "j42.298", owner=0, written_at=1002.0)
    assert (found.alive, found.certain) == (False, False)
    assert found.ignored == [300, 301]
    assert "do not belong to the job file's owner" in found.reason


def test_core_job_started_after_its_file_is_alive_but_not_certain() -> None:
    t = table(*core_layout(start=50_000))  # 500 s after the boot; the file at 1002
    found = _proc.core_job(t, "j42.298", owner=0, written_at=1002.0)
    assert (found.alive, found.certain) == (True, False)
    assert "started after the job file was written" in found.reason
    assert found.groups == []


def test_core_job_in_a_session_led_by_a_stranger_is_not_certain() -> None:
    shell = proc(299, pgid=299, sid=299, argv=("bash",))
    t = table(shell, *core_layout())
    found = _proc.core_job(t, "j42.298", owner=0, written_at=1002.0)
    assert (found.alive, found.certain) == (True, False)
    assert "led by pid 299" in found.reason


def test_core_job_in_our_own_session_is_never_certain() -> None:
    me = proc(ME, pgid=299, sid=299)
    t = table(*core_layout(), me=me)
    found = _proc.core_job(t, "j42.298", owner=0, written_at=1002.0)
    assert found.certain is False and "not one of the job's own" in found.reason


@pytest.mark.parametrize("pgid", [0, 1, -3, ME], ids=["0", "1", "negative", "own"])
def test_forbidden_groups(pgid) -> None:
    assert _proc.forbidden_group(pgid, table())


def test_a_group_shared_with_a_stranger_is_never_signalled_whole(monkeypatch) -> None:
    stranger = proc(400, pgid=301, sid=299, argv=("cron",), start=1)
    t = table(*core_layout(), stranger)
    found = _proc.JobProcs(certain=True)
    _proc._collect(t, [t.processes[300], t.processes[301]], None, found)
    assert 301 not in found.groups and {301, 302} <= set(found.loose)
    sent = []
    monkeypatch.setattr(_kill.os, "killpg", lambda g, s: sent.append(("group", g)))
    monkeypatch.setattr(_kill.os, "kill", lambda p, s: sent.append(("pid", p)))
    _kill.send(t, found, signal.SIGTERM)
    assert ("group", 301) not in sent and ("pid", 400) not in sent
    assert ("pid", 301) in sent and ("pid", 302) in sent


# --- async_launch's records ----------------------------------------------------------------


def launch_record(sup=(300, 100, 299, 0), job=(310, 310, 120)):
    info = dict(zip(("pid", "starttime", "pgid", "uid"), sup, strict=True))
    if job is not None:
        info["job"] = dict(zip(("pid", "pgid", "starttime"), job, strict=True))
    return {"started": True, "finished": False, _job.PROCESS_KEY: info}


def launch_table(changes=None):
    sup = proc(300, pgid=299, sid=299, start=100)
    job = proc(310, ppid=300, pgid=310, sid=299, start=120, argv=("sleep", "60"))
    kid = proc(311, ppid=310, pgid=310, sid=299, start=121, argv=("sleep", "1"))
    procs = {p.pid: p for p in (sup, job, kid)}
    procs.update(changes or {})
    return table(*(p for p in procs.values() if p is not None))


def test_launch_job_is_its_own_group_never_the_supervisor() -> None:
    found = _proc.launch_job(launch_table(), "j1.300", launch_record(), owner=0)
    assert found.certain, found.reason
    assert found.pids == [310, 311] and found.groups == [310]
    assert 300 not in found.pids


@pytest.mark.parametrize(
    ("changes", "record", "alive", "certain"),
    [
        ({}, launch_record(job=None), True, False),  # queued: only its supervisor runs
        ({310: None, 311: None}, launch_record(), True, False),  # ended, not yet recorded
        ({300: None, 310: None, 311: None}, launch_record(), False, False),  # all gone
        ({310: proc(310, start=999)}, launch_record(), True, False),  # pid reused
        ({}, launch_record(sup=(301, 100, 299, 0)), True, False),  # not the jid's pid
        ({}, {"started": True, _job.PROCESS_KEY: {"pid": "300"}}, True, False),  # malformed
    ],
    ids=["queued", "ended", "gone", "reused", "other-pid", "malformed"],
)
def test_launch_job_cases(changes, record, alive, certain) -> None:
    found = _proc.launch_job(launch_table(changes), "j1.300", record, owner=0)
    assert (found.alive, found.certain) == (alive, certain), found.reason


# --- real processes -----------------------------------------------------------------------


def test_kill_all_stops_a_real_session_and_sees_it_gone() -> None:
    child = subprocess.Popen(
        ["setsid", "sh", "-c", "trap '' TERM; sleep 120 & wait"], start_new_session=False
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            t = _proc.scan()
            members = [p for p in t.processes.values() if p.sid == child.pid and not p.dead]
            if len(members) >= 2:
                break
            time.sleep(0.05)
        found = _proc.JobProcs(certain=True)
        _proc._collect(t, [t.processes[child.pid]], child.pid, found)
        assert found.groups == [child.pid]
        left, errors = _kill.kill_all({"j1.2": found}, t)
        assert left == {"j1.2": []} and errors == {"j1.2": []}
    finally:
        child.kill()
        child.wait()


def test_every_process_is_stopped_before_any_is_signalled(monkeypatch) -> None:
    """A job's groups are signalled one after the other: none of its processes may run in
    between (async_wrapper's child would see its module die and write a failure)."""
    t = table(*core_layout())
    found = _proc.JobProcs(certain=True)
    _proc._collect(t, [t.processes[300], t.processes[301]], None, found)
    other = _proc.JobProcs(certain=True)
    _proc._collect(t, [t.processes[302]], None, other)
    sent = []
    monkeypatch.setattr(_kill.os, "killpg", lambda g, s: sent.append((s, g)))
    monkeypatch.setattr(_kill.os, "kill", lambda p, s: sent.append((s, p)))
    monkeypatch.setattr(_kill._proc, "scan", lambda proc="/proc": table())
    _kill.kill_all({"j42.1": found, "j42.2": other}, t, signals=((signal.SIGTERM, 0),))
    kinds = [sig for sig, _unused in sent]
    stops, terms, conts = (kinds.count(s) for s in (signal.SIGSTOP, signal.SIGTERM, signal.SIGCONT))
    assert stops == terms == conts >= 2, sent
    assert kinds == [signal.SIGSTOP] * stops + [signal.SIGTERM] * terms + [signal.SIGCONT] * conts
    # each target stopped, signalled and continued alike
    assert {target for s, target in sent if s == signal.SIGSTOP} == {
        target for s, target in sent if s == signal.SIGTERM
    }


def test_a_failed_signal_still_continues_what_was_stopped(monkeypatch) -> None:
    t = table(*core_layout())
    found = _proc.JobProcs(certain=True)
    _proc._collect(t, [t.processes[300], t.processes[301]], None, found)
    sent = []

    def killpg(group, sig):
        if sig == signal.SIGTERM:
            raise RuntimeError("interrupted")
        sent.append((sig, group))

    monkeypatch.setattr(_kill.os, "killpg", killpg)
    monkeypatch.setattr(_kill.os, "kill", lambda p, s: sent.append((s, p)))
    with pytest.raises(RuntimeError):
        _kill.kill_all({"j42.1": found}, t, signals=((signal.SIGTERM, 0),))
    stopped = {g for s, g in sent if s == signal.SIGSTOP}
    assert stopped and stopped == {g for s, g in sent if s == signal.SIGCONT}
