"""benchmarks/cpu_anatomy.py: the accounting records read back, each process sorted by kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO, load_file

anatomy = load_file(REPO / "benchmarks" / "cpu_anatomy.py", "cpu_anatomy")


def record(
    pid: int, ppid: int, name: str, start: int, seconds: float, cpu_ticks: int, version: int = 3
) -> bytes:
    """One acct_v3 record: all the CPU as user time, in comp_t (exact below 8192 ticks)."""
    return anatomy.RECORD.pack(
        b"\0",
        bytes([version]),
        0,
        0,
        0,
        0,
        pid,
        ppid,
        start,
        seconds * anatomy.AHZ,
        cpu_ticks,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        name.encode(),
    )


@pytest.mark.parametrize(
    ("encoded", "ticks"),
    [(0, 0), (150, 150), (0x1FFF, 8191), ((1 << 13) | 1000, 8000), ((2 << 13) | 3, 192)],
)
def test_comp_t_is_a_base_8_float(encoded: int, ticks: int) -> None:
    assert anatomy.comp_t(encoded) == ticks


def test_each_process_gets_the_parent_alive_when_it_started() -> None:
    data = b"".join(
        [
            record(10, 1, "sh", 1000, 5, 0),  # pid 10, first life
            record(11, 10, "python", 1001, 1, 48),
            record(10, 1, "ansible-playboo", 2000, 9, 150),  # pid 10 reused later
            record(12, 10, "ansible-playboo", 2001, 1, 10),
            record(13, 12, "sh", 2002, 1, 0),
            record(14, 13, "python3", 2002, 1, 50),
            record(15, 14, "python3", 2003, 60, 20),
            record(16, 99, "sshd", 2003, 1, 3),
            record(17, 1, "x", 2003, 1, 3, version=2),  # not acct_v3: skipped
            record(18, 1, "python", 2004, 30, 5),  # detached: given to init
            record(19, 18, "python", 2004, 29, 40),  # the module the detached job runs
            record(20, 0, "pytest", 2000, 99, 10),
            record(21, 20, "python", 2001, 50, 90),  # a pytest worker, not a job
        ]
    )
    procs = {(p.pid, p.start): p for p in anatomy.parse(data)}
    assert len(procs) == 12
    assert procs[(11, 1001)].parent is procs[(10, 1000)]
    assert procs[(12, 2001)].parent is procs[(10, 2000)]
    assert procs[(16, 2003)].parent is None
    assert procs[(15, 2003)].end == 2063
    kinds = {key: anatomy.kind(p) for key, p in procs.items()}
    assert kinds == {
        (10, 1000): "sh",
        (11, 1001): "module run: python",
        (10, 2000): "ansible-playbook (main)",
        (12, 2001): "ansible-playbook worker",
        (13, 2002): "sh",
        (14, 2002): "module run: python3",
        (15, 2003): "async job process",
        (16, 2003): "sshd",
        (18, 2004): "async job process",
        (19, 2004): "async job process",
        (20, 2000): "pytest",
        (21, 2001): "python",
    }
    assert procs[(10, 2000)].cpu == 1.5


def test_table_sums_each_kind_and_the_rest() -> None:
    procs = anatomy.parse(
        b"".join(
            [
                record(1, 0, "ansible-playboo", 100, 9, 200),
                record(2, 1, "ansible-playboo", 101, 1, 20),
                record(3, 1, "ansible-playboo", 102, 1, 20),
                record(4, 0, "incus", 103, 1, 10),
            ]
        )
    )
    lines = anatomy.table(procs, top=2).splitlines()
    assert lines[1].split() == ["ansible-playbook", "(main)", "2.0", "80.0%", "1", "2.000"]
    assert lines[2].split() == ["ansible-playbook", "worker", "0.4", "16.0%", "2", "0.200"]
    assert lines[3].split() == ["(the", "rest)", "0.1", "4.0%"]
    assert lines[4].split() == ["total", "2.5", "4"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--read", "{tmp}/nope"], "--read {tmp}/nope: no such file"),
        (["--top", "0", "--read", "{tmp}/nope"], "--top 0: give 1 or more"),
        (["--keep", "{tmp}/no/pacct", "--", "true"], "--keep {tmp}/no/pacct: no directory"),
        ([], "give a command to run (after --) or --read FILE"),
    ],
    ids=["read-missing", "top-zero", "keep-no-dir", "nothing"],
)
def test_bad_input_is_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        anatomy.main([a.format(tmp=tmp_path) for a in args])
    assert exit_.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


def test_read_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pacct = tmp_path / "pacct"
    pacct.write_bytes(record(5, 0, "pytest", 10, 4, 300))
    assert anatomy.main(["--read", str(pacct)]) == 0
    out = capsys.readouterr().out
    assert "1 processes ended over 0 s" in out
    assert "pytest" in out and "3.0" in out


def test_the_tools_own_record_is_left_out() -> None:
    """Turning accounting off writes a record of this tool: started detached (init its
    parent), it must not make every Python of the measured command an async job."""
    data = b"".join(
        [
            record(50, 1, "python", 1000, 90, 0),  # this tool, launched with nohup
            record(51, 50, "make", 1001, 88, 1),
            record(52, 51, "pytest", 1002, 80, 10),
            record(53, 52, "python", 1003, 70, 90),  # a pytest worker
        ]
    )
    with_tool = {p.pid: anatomy.kind(p) for p in anatomy.parse(data)}
    assert with_tool[53] == "async job process"  # what the tool's record did to the table
    kinds = {p.pid: anatomy.kind(p) for p in anatomy.parse(data, tool_pid=50)}
    assert kinds == {51: "make", 52: "pytest", 53: "python"}


def test_read_leaves_out_the_tool_pid_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pacct = tmp_path / "pacct"
    pacct.write_bytes(record(50, 1, "python", 10, 9, 0) + record(53, 50, "python", 11, 4, 300))
    assert anatomy.main(["--read", str(pacct), "--tool-pid", "50"]) == 0
    out = capsys.readouterr().out
    assert "1 processes ended" in out
    assert "async job" not in out
