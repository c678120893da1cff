"""The shared job model: job ids, states, durations and job files."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("j123.456", True),
        ("j1.1", True),
        ("j" + "1" * 18 + ".4194304", True),
        ("j" + "1" * 300 + ".1", False),  # would make a file name too long
        ("j12.", False),
        ("123.456", False),
        ("j12.34/../x", False),
        ("j12.34\n", False),
        (12, False),
        (None, False),
    ],
    ids=repr,
)
def test_is_jid(value, ok):
    assert _job.is_jid(value) is ok


def test_jid_parts():
    assert _job.jid_prefix("j123.456") == "j123"
    assert _job.jid_pid("j123.456") == 456


def test_state_sets_partition():
    assert {"queued", "running", "kill_failed"} == _job.ACTIVE_STATES
    assert set(_job.STATES) == _job.ACTIVE_STATES | _job.ENDED_STATES
    assert not _job.ACTIVE_STATES & _job.ENDED_STATES
    assert {"finished", "failed", "timeout"} == _job.RESULT_STATES
    assert "finished" not in _job.FAILED_STATES
    assert "skipped" not in _job.FAILED_STATES
    assert {"killed", "orphaned", "unknown", "corrupt", "timeout"} <= _job.FAILED_STATES


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0:00:05.004112", 5.004112),
        ("1:02:03", 3723.0),
        ("1 day, 0:00:03.5", 86403.5),
        ("2 days, 1:00:00", 2 * 86400 + 3600.0),
        (4, 4.0),
        (2.5, 2.5),
        (-1, None),
        (True, None),
        ("soon", None),
        (None, None),
    ],
    ids=repr,
)
def test_parse_delta(value, seconds):
    assert _job.parse_delta(value) == seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (1, True),
        ("1", True),
        ("true", True),
        ("false", False),
        ("0", False),
        (0, False),
        (False, False),
        (None, False),
        ([], False),
    ],
    ids=repr,
)
def test_flag(value, expected):
    assert _job.flag(value) is expected


@pytest.mark.parametrize(
    ("record", "state"),
    [
        ({"started": True, "finished": False, "ansible_job_id": "j1.2"}, "running"),
        ({"started": 1, "finished": 0}, "running"),
        ({"started": "true", "finished": "false"}, "running"),
        ({"started": True, "finished": False, "queued": True}, "queued"),
        (
            {
                "started": True,
                "finished": False,
                "_tplabs_process": {
                    "pid": 9,
                    "starttime": 1,
                    "pgid": 8,
                    "uid": 0,
                    "job": {"pid": 10, "pgid": 10, "starttime": 2},
                },
            },
            "running",
        ),
        (
            {
                "started": True,
                "finished": False,
                "queued": True,
                "_tplabs_process": {"pid": 9, "starttime": 1, "pgid": 8, "uid": 0},
            },
            "queued",
        ),
        ({"rc": 0, "changed": True}, "finished"),
        ({"rc": 2, "failed": True}, "failed"),
        ({"msg": "Timeout exceeded", "failed": True, "child_pid": 12}, "timeout"),
        (
            {"started": True, "finished": True, "failed": True, "killed_by_async_wait": True},
            "killed",
        ),
    ],
    ids=[
        "running",
        "running-ints",
        "running-strings",
        "queued",
        "launch-running",
        "launch-queued",
        "finished",
        "failed",
        "timeout",
        "killed",
    ],
)
def test_record_state(record, state):
    assert _job.record_state(record) == state


def test_job_path_refuses_non_jids(tmp_path):
    assert _job.job_path(str(tmp_path), "j1.2") == str(tmp_path / "j1.2")
    with pytest.raises(ValueError, match="invalid job id"):
        _job.job_path(str(tmp_path), "../../etc/passwd")


def test_read_missing(tmp_path):
    found = _job.read_job_file(str(tmp_path / "j1.2"))
    assert (found.kind, found.state) == ("missing", "unknown")


def test_read_record(tmp_path):
    path = tmp_path / "j1.2"
    path.write_text(json.dumps({"started": True, "finished": False}))
    found = _job.read_job_file(str(path))
    assert found.kind == "record"
    assert found.state == "running"
    assert found.uid == os.geteuid()
    assert found.mtime == path.stat().st_mtime


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "nested too deep"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
    ],
    ids=["empty", "bad-utf8", "deep", "not-json", "not-object"],
)
def test_read_corrupt(tmp_path, content, reason):
    path = tmp_path / "j1.2"
    path.write_bytes(content)
    found = _job.read_job_file(str(path))
    assert (found.kind, found.state) == ("corrupt", "corrupt")
    assert reason in found.reason


def test_read_refuses_symlink_and_fifo(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text(json.dumps({"rc": 0}))
    (tmp_path / "j1.2").symlink_to(target)
    assert _job.read_job_file(str(tmp_path / "j1.2")).reason == "a symbolic link, not a job file"
    os.mkfifo(tmp_path / "j1.3")
    found = _job.read_job_file(str(tmp_path / "j1.3"))  # would block without O_NONBLOCK
    assert (found.kind, found.reason) == ("corrupt", "not a regular file")
    assert stat.S_ISFIFO((tmp_path / "j1.3").lstat().st_mode)


def test_read_size_cap(tmp_path):
    path = tmp_path / "j1.2"
    path.write_text(json.dumps({"stdout": "x" * 2000}))
    found = _job.read_job_file(str(path), max_bytes=1000)
    assert found.kind == "corrupt"
    assert "over the 1000-byte limit" in found.reason
    assert found.size == path.stat().st_size


def test_write_is_atomic_and_ignores_planted_tmp(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("precious")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "j1.2.tmp").symlink_to(outside)  # core's own temporary name, planted
    path = jobs / "j1.2"
    path.write_text(json.dumps({"started": True, "finished": False}))
    _job.write_job_file(str(path), {"finished": True, "rc": 0})
    assert json.loads(path.read_text()) == {"finished": True, "rc": 0}
    assert outside.read_text() == "precious"
    assert sorted(p.name for p in jobs.iterdir()) == ["j1.2", "j1.2.tmp"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_is_jid_prefix():
    assert _job.is_jid_prefix("j123")
    assert not _job.is_jid_prefix("j123.4")
    assert not _job.is_jid_prefix("j" + "1" * 19)
    assert not _job.is_jid_prefix(None)


def test_read_reuses_an_unchanged_file(tmp_path, monkeypatch):
    path = tmp_path / "j1.2"
    path.write_text(json.dumps({"started": True, "finished": False}))
    first = _job.read_job_file(str(path))
    reads = []
    real_read = os.read
    monkeypatch.setattr(_job.os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    assert _job.read_job_file(str(path), previous=first) is first
    assert reads == []  # only fstat: the content is not read again
    tmp = tmp_path / "new"
    tmp.write_text(json.dumps({"rc": 0}))
    os.rename(tmp, path)  # what the wrapper does at the end: a new inode
    again = _job.read_job_file(str(path), previous=first)
    assert again is not first and again.state == "finished"


def test_a_file_over_the_cap_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "j1.2"
    path.write_text(json.dumps({"started": True, "finished": False, "pad": "x" * 5000}))
    monkeypatch.setattr(_job.os, "read", lambda fd, n: pytest.fail("read a file over the cap"))
    found = _job.read_job_file(str(path), max_bytes=1000)
    assert (found.kind, found.too_big, found.size) == ("corrupt", True, path.stat().st_size)


def test_write_keeps_mode_and_owner(tmp_path):
    path = tmp_path / "j1.2"
    path.write_text("{}")
    _job.write_job_file(str(path), {"rc": 0}, mode=0o644, owner=(os.geteuid(), os.getegid()))
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    if os.geteuid() == 0:
        _job.write_job_file(str(path), {"rc": 0}, mode=0o640, owner=(65534, 65534))
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


@pytest.mark.parametrize(
    ("record", "truncated"),
    [
        ({"rc": 0, "stdout": "short"}, False),
        ({"rc": 0, "stdout": "x" * 100_000, "stdout_lines": ["y"] * 50_000}, True),
    ],
    ids=["small", "big"],
)
def test_shrink_record(record, truncated):
    small, cut = _job.shrink_record(record, max_bytes=4096)
    assert cut is truncated
    assert len(json.dumps(small)) <= 4096
    assert small["rc"] == 0
    if truncated:
        assert "more characters cut" in small["stdout"]
        assert small["stdout_lines"][-1].endswith("more items cut]")


def test_shrink_record_too_deep_keeps_scalars():
    deep: dict = {"rc": 3, "msg": "m"}
    node = deep
    for _unused in range(500):
        node["nested"] = {}
        node = node["nested"]
    small, cut = _job.shrink_record(deep)
    assert (small, cut) == ({"rc": 3, "msg": "m"}, True)
