"""Where a command's CPU goes, process by process: what `make test` (or any stage) is made of.

Runs a command under the kernel's process accounting (acct(2): every process that ends writes
a record with its name, its parent, its start and its CPU), then sorts the records into kinds
and prints the CPU seconds of each:

- ``module run: python`` / ``module run: python3``: a Python started by a shell, which is how
  a connection runs a module, one per task and host (in make test, ``python`` is the venv's,
  the interpreter of inventories/local.yml, and ``python3`` the Incus image's);
- ``async job process``: a Python process that a module run started, or that the kernel gave
  to init when its parent ended (async_wrapper detaches a job so), and their Python children
  (the module a job runs, an async_launch supervisor's jobs);
- ``ansible-playbook`` / ``ansible`` (main) and their forked workers, one per task and host;
- every other command by its name (``incus``, ``sshd``, ``pytest``, ``ansible-lint``...).

Processes that are still running at the end (the Incus daemon) write no record: their CPU is
not in the table. Needs root and a kernel with BSD process accounting (most distributions).

    sudo python benchmarks/cpu_anatomy.py [--keep FILE] [--top N] -- make integration
    python benchmarks/cpu_anatomy.py --read FILE [--tool-pid PID]   # an earlier run's records
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# struct acct_v3 (linux/acct.h): flag, version, tty, exitcode, uid, gid, pid, ppid, btime
# (epoch seconds), etime (float, in AHZ ticks), then 8 comp_t (utime, stime, mem, io, rw,
# minflt, majflt, swaps) and a 16-byte command name.
RECORD = struct.Struct("<ccHIIIIIIf8H16s")
AHZ = 100  # ticks per second of the times in a record
VERSION = 3


def comp_t(value: int) -> int:
    """Decode a comp_t: 13-bit mantissa, 3-bit base-8 exponent."""
    return (value & 0x1FFF) << (3 * ((value >> 13) & 0x7))


@dataclass
class Process:
    pid: int
    ppid: int
    start: float
    end: float
    cpu: float
    name: str
    parent: Process | None = None


def parse(data: bytes, tool_pid: int | None = None) -> list[Process]:
    """The processes of an acct_v3 file (records of another version are skipped). Turning
    accounting off writes a record of the process that did it: this tool, TOOL_PID, is left
    out (started detached, with init as parent, it would count as an async job, and every
    Python under it with it)."""
    found = []
    for offset in range(0, len(data) - RECORD.size + 1, RECORD.size):
        fields = RECORD.unpack_from(data, offset)
        if fields[1][0] != VERSION:
            continue
        pid, ppid, btime, etime = fields[6], fields[7], fields[8], fields[9]
        cpu = (comp_t(fields[10]) + comp_t(fields[11])) / AHZ
        name = fields[18].split(b"\0", 1)[0].decode("utf-8", "replace")
        if pid == tool_pid:
            continue
        found.append(Process(pid, ppid, float(btime), btime + etime / AHZ, cpu, name))
    link_parents(found)
    return found


def link_parents(processes: list[Process]) -> None:
    """Each process's parent: the process of that pid alive when it started (pids are reused;
    the start times are whole seconds, hence the second of slack)."""
    by_pid: dict[int, list[Process]] = collections.defaultdict(list)
    for proc in processes:
        by_pid[proc.pid].append(proc)
    for proc in processes:
        for candidate in by_pid.get(proc.ppid, ()):
            if candidate.start <= proc.start + 1 and candidate.end >= proc.start - 1:
                proc.parent = candidate


def is_module_run(proc: Process) -> bool:
    """A Python started by a shell: how a connection runs a module."""
    return (
        proc.name in ("python", "python3") and proc.parent is not None and proc.parent.name == "sh"
    )


def ancestors(proc: Process, limit: int = 64) -> list[Process]:
    found = []
    while proc.parent is not None and len(found) < limit:
        proc = proc.parent
        found.append(proc)
    return found


def is_detached(proc: Process) -> bool:
    """A Python process the kernel gave to init (or to a container's systemd) when its parent
    ended: how async_wrapper detaches a job from the task that launched it."""
    if not proc.name.startswith("python"):
        return False
    return proc.ppid == 1 or (proc.parent is not None and proc.parent.name in ("init", "systemd"))


def kind(proc: Process) -> str:
    if is_module_run(proc):
        return f"module run: {proc.name}"
    if is_detached(proc) or (
        proc.name.startswith("python")
        and any(is_module_run(up) or is_detached(up) for up in ancestors(proc))
    ):
        return "async job process"
    parent = proc.parent.name if proc.parent else ""
    for tool, shown in (("ansible-playboo", "ansible-playbook"), ("ansible", "ansible")):
        if proc.name == tool:
            return f"{shown} worker" if parent == tool else f"{shown} (main)"
    return proc.name


def table(processes: list[Process], top: int) -> str:
    cpu: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for proc in processes:
        name = kind(proc)
        cpu[name] += proc.cpu
        count[name] += 1
    spent = sum(cpu.values())
    total = spent or 1.0  # the shares of nothing
    lines = [f"{'kind':<26} {'CPU-s':>9} {'share':>6} {'processes':>9} {'CPU-s each':>10}"]
    for name, seconds in cpu.most_common(top):
        lines.append(
            f"{name:<26} {seconds:9.1f} {seconds / total:6.1%} {count[name]:9d} "
            f"{seconds / count[name]:10.3f}"
        )
    rest = spent - sum(seconds for _unused, seconds in cpu.most_common(top))
    lines.append(f"{'(the rest)':<26} {rest:9.1f} {rest / total:6.1%}")
    lines.append(f"{'total':<26} {spent:9.1f} {'':6} {sum(count.values()):9d}")
    return "\n".join(lines)


def account(path: Path | None) -> int:
    """acct(2) on PATH, or off with None; the error number, 0 when it worked."""
    libc = ctypes.CDLL(None, use_errno=True)
    arg = None if path is None else os.fsencode(path)
    return 0 if libc.acct(arg) == 0 else ctypes.get_errno()


def run(command: list[str], keep: Path | None) -> tuple[int, bytes]:
    with tempfile.TemporaryDirectory(prefix="cpu-anatomy-") as tmp:
        path = keep or Path(tmp, "pacct")
        path.write_bytes(b"")
        error = account(path)
        if error:
            sys.exit(
                f"cpu_anatomy: process accounting could not start ({os.strerror(error)}): "
                "it needs root and a kernel with BSD process accounting"
            )
        if keep:
            print(
                f"cpu_anatomy: --read {keep} later with --tool-pid {os.getpid()}", file=sys.stderr
            )
        try:
            rc = subprocess.call(command)
        finally:
            account(None)
        return rc, path.read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--keep", type=Path, help="write the accounting records here")
    parser.add_argument("--read", type=Path, help="sort the records of FILE, run nothing")
    parser.add_argument("--top", type=int, default=15, help="kinds shown (default 15)")
    parser.add_argument(
        "--tool-pid",
        type=int,
        help="with --read: the pid this tool had in that run (its record is left out)",
    )
    parser.add_argument("command", nargs="*", help="the command to run, after --")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top {args.top}: give 1 or more")
    if args.keep and not args.keep.parent.is_dir():
        parser.error(f"--keep {args.keep}: no directory {args.keep.parent}")
    if args.read:
        if not args.read.is_file():
            parser.error(f"--read {args.read}: no such file")
        rc, data, tool_pid = 0, args.read.read_bytes(), args.tool_pid
    elif args.command:
        (rc, data), tool_pid = run(args.command, args.keep), os.getpid()
    else:
        parser.error("give a command to run (after --) or --read FILE")
    processes = parse(data, tool_pid)
    if not processes:
        print("cpu_anatomy: no accounting record (nothing ended?)", file=sys.stderr)
        return rc or 1
    span = max(p.end for p in processes) - min(p.end for p in processes)
    print(f"\nCPU by kind of process, {len(processes)} processes ended over {span:.0f} s:")
    print(table(processes, args.top))
    return rc


if __name__ == "__main__":
    sys.exit(main())
