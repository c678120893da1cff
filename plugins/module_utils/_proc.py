# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The process table of a Linux host, read once, and which processes are an async job's.

Private to the collection: no guarantee of a stable interface outside it. Runs on the
managed hosts (shipped by AnsiballZ with async_job_poll): standard library only, Python 3.7+.

How a job is tied to its processes, and why:

- ansible-core's ``async_wrapper`` runs as ``<interpreter> [options] .../async_wrapper.py
  <jid prefix> <limit> <module> <args file> [-preserve_tmp]``. The pid in the job id is the
  first wrapper process, which exits right after the launch. The supervisor (after a
  ``setsid`` and a second fork) and the child that runs the module keep that command line;
  the child and the module's processes are in their own process group, all in the
  supervisor's session, whose leader has exited. A process counts as a wrapper of a job only
  when an argument is the wrapper script and the next one is exactly the job's prefix, its
  owner is the job file's owner, and (for certainty) it started before the job file was
  written. Its session and process groups then give the job's other processes.
- async_launch records its supervisor (pid, start time in clock ticks after boot, process
  group, uid) in the job file (``_job.PROCESS_KEY``): a process with that pid and that start
  time is the supervisor, whatever its command line, and nothing else is.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job

# The wrapper script as core uploads it (async_wrapper.py), or as AnsiballZ would name it.
WRAPPER_SCRIPT_RE = re.compile(r"(?:AnsiballZ_)?async_wrapper(?:\.py)?")
# A job file's mtime and a process start time (btime + ticks) are both rounded: 2 s covers it.
START_SLACK = 2.0
CMDLINE_MAX = 16384
DEAD_STATES = frozenset("ZXx")  # zombie or dead: not running any more, cannot be signalled


@dataclass(frozen=True)
class Process:
    """One line of the process table."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    starttime: int  # clock ticks after boot (field 22 of /proc/<pid>/stat)
    # Owner of /proc/<pid>: the effective uid, except for a process that changed its
    # credentials without an exec (not "dumpable"), shown as root: see ProcTable.uid_of.
    uid: int
    argv: tuple = ()

    @property
    def dead(self) -> bool:
        return self.state in DEAD_STATES


@dataclass(frozen=True)
class WrapperArgs:
    """Where async_wrapper's arguments sit on a command line."""

    prefix: str
    script: str
    module: str
    preserve_tmp: bool


def wrapper_args(argv: tuple) -> WrapperArgs | None:
    """The async_wrapper arguments of a command line, whatever comes before the script.

    ``python3 w.py j1 60 m _``, ``python -X utf8 w.py j1 ...`` (an interpreter shim that does
    ``exec python -X utf8 "$@"``) and ``/bin/sh shim w.py j1 ...`` all qualify; the argument
    after the script must be a job id prefix and the one after it the time limit.
    """
    for index, arg in enumerate(argv[:-3]):
        if not WRAPPER_SCRIPT_RE.fullmatch(os.path.basename(arg)):
            continue
        prefix, limit, module = argv[index + 1 : index + 4]
        if _job.is_jid_prefix(prefix) and limit.isdigit():
            rest = argv[index + 4 :]
            return WrapperArgs(prefix, arg, module, "-preserve_tmp" in rest)
    return None


def _read(path: str, size: int) -> tuple[bytes, int]:
    """Content (up to size bytes) and owner uid of a /proc file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return os.read(fd, size), os.fstat(fd).st_uid
    finally:
        os.close(fd)


def parse_stat(raw: bytes) -> tuple:
    """(state, ppid, pgid, sid, starttime) of a /proc/<pid>/stat line."""
    # The command name is in parentheses and may hold spaces or parentheses itself.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (
        fields[0].decode("ascii", "replace"),
        int(fields[1]),
        int(fields[2]),
        int(fields[3]),
        int(fields[19]),
    )


def boot_time(proc: str = "/proc") -> float | None:
    """Epoch second the kernel booted (moves with the wall clock when the clock is set)."""
    try:
        with open(os.path.join(proc, "stat"), "rb") as handle:
            for line in handle:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK")) or 100
    except (ValueError, OSError, AttributeError):
        return 100


@dataclass
class ProcTable:
    """One read of the whole process table, indexed for every job at once."""

    processes: dict
    btime: float | None
    hz: int = 100
    own_pid: int = 0
    taken_at: float = 0.0  # time.monotonic() when the scan started
    by_sid: dict = field(default_factory=dict)
    by_pgid: dict = field(default_factory=dict)
    children: dict = field(default_factory=dict)
    wrappers: dict = field(default_factory=dict)  # jid prefix -> [(Process, WrapperArgs)]
    uids: frozenset = frozenset()
    proc: str = "/proc"
    _status_uids: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for proc in self.processes.values():
            if proc.dead:
                continue
            self.by_sid.setdefault(proc.sid, []).append(proc)
            self.by_pgid.setdefault(proc.pgid, []).append(proc)
            self.children.setdefault(proc.ppid, []).append(proc)
            args = wrapper_args(proc.argv)
            if args is not None:
                self.wrappers.setdefault(args.prefix, []).append((proc, args))
        self.uids = frozenset(p.uid for p in self.processes.values())

    def live(self, pid: int, starttime: int | None = None) -> Process | None:
        """The process with this pid (and start time), unless it is gone or a zombie."""
        proc = self.processes.get(pid)
        if proc is None or proc.dead or (starttime is not None and proc.starttime != starttime):
            return None
        return proc

    def started_at(self, proc: Process) -> float | None:
        """Epoch start time of a process, on today's wall clock."""
        if self.btime is None:
            return None
        return self.btime + proc.starttime / self.hz

    def descendants(self, pids) -> set:
        seen: set = set()
        todo = list(pids)
        while todo:
            pid = todo.pop()
            for child in self.children.get(pid, ()):
                if child.pid not in seen:
                    seen.add(child.pid)
                    todo.append(child.pid)
        return seen

    def uid_of(self, proc: Process) -> int:
        """The effective uid of a process. /proc shows a process that changed its
        credentials without an exec as root's: for those, /proc/<pid>/status says."""
        if proc.uid != 0:
            return proc.uid
        if proc.pid not in self._status_uids:
            uid = proc.uid
            try:
                with open(os.path.join(self.proc, str(proc.pid), "status"), "rb") as handle:
                    for line in handle:
                        if line.startswith(b"Uid:"):
                            uid = int(line.split()[2])
                            break
            except (OSError, ValueError, IndexError):
                pass
            self._status_uids[proc.pid] = uid
        return self._status_uids[proc.pid]

    def sees_other_users(self, uid: int) -> bool:
        """Whether processes of users other than ``uid`` are visible (no hidepid)."""
        if any(other not in (uid, 0) for other in self.uids):
            return True
        return any(
            self.uid_of(p) != uid
            for p in self.processes.values()
            if p.uid == 0 and p.pid != self.own_pid and not p.dead
        )


def scan(proc: str = "/proc") -> ProcTable | None:
    """Read every process once; None when there is no usable process table.

    An empty or foreign ``/proc`` (not mounted, a chroot) is told from a real one by our
    own process, which must be in it.
    """
    started = time.monotonic()
    try:
        entries = os.listdir(proc)
    except OSError:
        return None
    own = os.getpid()
    if str(own) not in entries:
        return None
    processes = {}
    for entry in entries:
        if not entry.isdigit():
            continue
        base = os.path.join(proc, entry)
        try:
            raw, uid = _read(os.path.join(base, "stat"), 4096)
            state, ppid, pgid, sid, starttime = parse_stat(raw)
            cmdline, _unused = _read(os.path.join(base, "cmdline"), CMDLINE_MAX)
        except (OSError, ValueError, IndexError):
            continue  # gone while we read, or unreadable: not a process we can judge
        argv = tuple(os.fsdecode(a) for a in cmdline.split(b"\0")[:-1]) if cmdline else ()
        processes[int(entry)] = Process(int(entry), ppid, pgid, sid, state, starttime, uid, argv)
    return ProcTable(processes, boot_time(proc), clock_ticks(), own, started, proc=proc)


# -- tying a job to its processes ----------------------------------------------------------


@dataclass
class JobProcs:
    """What the process table says of one job."""

    alive: bool = False  # processes that look like the job's are running
    certain: bool = False  # tied to the job with certainty: safe to signal
    pids: list = field(default_factory=list)  # the job's processes (when certain)
    starttimes: dict = field(default_factory=dict)  # pid -> start time, to notice pid reuse
    groups: list = field(default_factory=list)  # process groups wholly the job's
    loose: list = field(default_factory=list)  # job processes in groups shared with others
    sids: list = field(default_factory=list)  # sessions wholly the job's
    candidates: list = field(default_factory=list)  # look-alike pids when not certain
    ignored: list = field(default_factory=list)  # look-alikes of other owners
    reason: str = ""  # why not certain, or what was found
    tmpdirs: list = field(default_factory=list)  # launch temp dirs named by the wrappers
    uids: list = field(default_factory=list)  # owners of the job's processes
    supervisor: Process | None = None  # an async_launch job's supervisor, when it runs
    whole_launch: bool = False  # a supervisor stopped with every unfinished job of its launch


def forbidden_group(pgid: int, table: ProcTable) -> bool:
    own = table.processes.get(table.own_pid)
    if pgid <= 1:
        return True
    return own is not None and pgid in (own.pgid, own.sid)


def _collect(
    table: ProcTable, roots: list, sid: int | None, found: JobProcs, pgid: int | None = None
) -> None:
    """The roots, their descendants and the members of the session (or group) that is
    wholly theirs; then which of their process groups may be signalled as a whole."""
    members = {p.pid for p in roots} | table.descendants([p.pid for p in roots])
    if sid is not None:
        members |= {p.pid for p in table.by_sid.get(sid, ())}
        found.sids = [sid]
    if pgid is not None:
        members |= {p.pid for p in table.by_pgid.get(pgid, ())}
    procs = [table.processes[pid] for pid in sorted(members)]
    found.pids = [p.pid for p in procs]
    found.starttimes = {p.pid: p.starttime for p in procs}
    found.uids = sorted({table.uid_of(p) for p in procs})
    for pgid in sorted({p.pgid for p in procs}):
        group = table.by_pgid.get(pgid, ())
        if not forbidden_group(pgid, table) and all(p.pid in members for p in group):
            found.groups.append(pgid)
        else:
            found.loose.extend(p.pid for p in procs if p.pgid == pgid)


def _own_session(table: ProcTable, sid: int, wrappers: set) -> str:
    """Why the session is not wholly the job's ('' when it is)."""
    own = table.processes.get(table.own_pid)
    if sid <= 1 or (own is not None and sid == own.sid):
        return f"their session {sid} is not one of the job's own"
    leader = table.live(sid)
    if leader is not None and leader.pid not in wrappers:
        return f"their session {sid} is led by pid {sid}, which is not a wrapper of this job"
    return ""


def core_job(table: ProcTable, jid: str, owner: int | None, written_at: float | None) -> JobProcs:
    """The processes of a job launched by core's async_wrapper."""
    found = JobProcs()
    prefix = _job.jid_prefix(jid)
    looks = table.wrappers.get(prefix, [])
    found.ignored = sorted(p.pid for p, _unused in looks if table.uid_of(p) != owner)
    mine = [(p, a) for p, a in looks if table.uid_of(p) == owner]
    if not mine:
        if found.ignored:
            found.reason = (
                f"process(es) {found.ignored} carry this job's wrapper command line but do not "
                f"belong to the job file's owner (uid {owner}): ignored"
            )
        return found
    found.alive = True
    found.candidates = sorted(p.pid for p, _unused in mine)
    problems = []
    late = []
    for proc, _unused in mine:
        start = table.started_at(proc)
        if start is None or written_at is None or start > written_at + START_SLACK:
            late.append(proc.pid)
    if late:
        problems.append(
            f"process(es) {late} started after the job file was written "
            "(a clock step, a restored snapshot or a copied file?)"
        )
    sids = sorted({p.sid for p, _unused in mine})
    if len(sids) > 1:
        problems.append(f"the look-alike processes are in {len(sids)} sessions {sids}")
    else:
        why = _own_session(table, sids[0], {p.pid for p, _unused in mine})
        if why:
            problems.append(why)
    if problems:
        found.reason = "; ".join(problems)
        return found
    _collect(table, [p for p, _unused in mine], sids[0], found)
    found.certain = True
    found.tmpdirs = sorted({d for d in (_launch_tmpdir(a) for _unused, a in mine) if d})
    return found


def _launch_tmpdir(args: WrapperArgs) -> str | None:
    """The launch's temp dir, when core would remove it itself (see async_wrapper)."""
    directory = os.path.dirname(args.module)
    if args.preserve_tmp or "-tmp-" not in directory or not os.path.isabs(directory):
        return None
    if os.path.dirname(args.script) != directory:
        return None
    return directory


def _ints(info: object, keys: tuple) -> tuple | None:
    if not isinstance(info, dict):
        return None
    values = tuple(info.get(k) for k in keys)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return values
    return None


def launch_job(table: ProcTable, jid: str, record: dict, owner: int | None) -> JobProcs:
    """The processes of an async_launch job, from what its record names.

    The record names the supervisor (which runs every job of the launch, so it is never
    signalled for one job) and, once the job started, the job's own process and group.
    """
    found = JobProcs()
    info = record.get(_job.PROCESS_KEY)
    sup = _ints(info, ("pid", "starttime", "pgid", "uid"))
    if sup is None:
        found.alive = True  # cannot tell: never call it orphaned on a record we cannot read
        found.reason = f"its record's {_job.PROCESS_KEY} is not {{pid, starttime, pgid, uid}}"
        return found
    pid, start, _pgid, uid = sup
    if pid != _job.jid_pid(jid) or (owner is not None and uid != owner):
        found.alive = True
        found.reason = (
            f"its record names supervisor pid {pid} of uid {uid}; the job id says pid "
            f"{_job.jid_pid(jid)} and the job file belongs to uid {owner}"
        )
        return found
    supervisor = table.live(pid, start)
    if supervisor is not None and table.uid_of(supervisor) != uid:
        supervisor = None  # the same pid and start time under another owner: not ours
    found.supervisor = supervisor
    job = _ints(info.get("job"), ("pid", "pgid", "starttime"))
    proc = None if job is None else table.live(job[0], job[2])
    if proc is None or table.uid_of(proc) != uid:
        if supervisor is not None:
            found.alive = True  # queued, or ended and about to be recorded by its supervisor
            found.candidates = [pid]
            found.reason = (
                f"no process of its own yet or any more; its launch's supervisor {pid} runs "
                "other jobs too and is never signalled for one of them"
            )
        return found
    found.alive = True
    found.candidates = [proc.pid]
    if proc.pgid != job[1]:
        found.reason = f"its process {proc.pid} is in process group {proc.pgid}, not {job[1]}"
        return found
    _collect(table, [proc], None, found, pgid=proc.pid if proc.pgid == proc.pid else None)
    found.certain = True
    return found


def supervisor_target(table: ProcTable, supervisor: Process) -> JobProcs:
    """An async_launch supervisor alone, to be stopped when every unfinished job of its
    launch is to be killed (on SIGTERM it kills its running jobs and starts no other)."""
    found = JobProcs(alive=True, certain=True, pids=[supervisor.pid], whole_launch=True)
    found.starttimes = {supervisor.pid: supervisor.starttime}
    found.loose = [supervisor.pid]
    found.uids = [table.uid_of(supervisor)]
    if supervisor.pid <= 1 or supervisor.pid == table.own_pid:
        found.certain = False
        found.reason = f"pid {supervisor.pid} is never signalled"
    return found
