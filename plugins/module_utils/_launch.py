# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host side of async_launch: a detached supervisor that runs many jobs in slots.

Private to the collection: no guarantee of a stable interface outside it. Runs on the
managed hosts (standard library and ``_job`` only, Python >= 3.7).

How a launch goes (the same process layout as ansible-core's ``async_wrapper``):

1. The module process forks; the child calls ``setsid`` and forks again: that grandchild is
   the *supervisor*. It closes every inherited descriptor, points its stdio at /dev/null and
   so outlives the connection that started it (local, ssh, ``incus exec``).
2. The supervisor draws one job id per job, ``j<12 digits>.<its own pid>``, starts the jobs
   that fit in ``max_parallel`` slots (each in a process group of its own), writes their job
   files (``running`` records, ``queued`` records for the rest, each with ``_job.PROCESS_KEY``
   naming the supervisor) and only then tells the module, over a pipe, which job ids it drew.
   The module returns them: every job id has its file before anybody can ask for it.
3. The supervisor reads the jobs' output, starts a queued job as soon as a slot frees up,
   kills a job's process group at its ``async`` limit (``Timeout exceeded``, as core) and
   writes each job's result as ``ansible.builtin.command`` returns it. After each end it
   sends one line on the pipe, so a module that waits (``wait: true``) wakes at once.

Everything the supervisor runs is imported before the first fork: ansible-core deletes the
module's payload as soon as the module returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import errno
import json
import os
import random
import select
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.tplabs.async_tasks.plugins.module_utils._job import (
    FAILED,
    PROCESS_KEY,
    QUEUED,
    QUEUED_KEY,
    RESULT_STATES,
    RUNNING,
    TIMEOUT_MSG,
    job_path,
    read_job_file,
    write_job_file,
)

# How long the module waits for the supervisor's first word (a loaded host may be slow to
# fork and start the first jobs; core's async_wrapper waits 2.5 s and then returns blindly).
HANDSHAKE_TIMEOUT = 120.0
READ_CHUNK = 65536
SHELL = "/bin/sh"


@dataclass
class JobSpec:
    """One job as the module received it (already validated on the controller)."""

    name: str
    argv: list[str]
    cmd: Any  # what the result's `cmd` shows: the argv list, or the shell command line
    chdir: str | None = None


def job_specs(jobs: list[dict]) -> list[JobSpec]:
    """Turn the module's `jobs` option into specs: `argv` as given, `shell` through /bin/sh."""
    specs = []
    for job in jobs:
        chdir = os.path.expanduser(job["chdir"]) if job.get("chdir") else None
        if job.get("shell") is not None:
            spec = JobSpec(job["name"], [SHELL, "-c", job["shell"]], job["shell"], chdir)
        else:
            argv = [str(arg) for arg in job["argv"]]
            spec = JobSpec(job["name"], argv, list(argv), chdir)
        specs.append(spec)
    return specs


# -- processes -----------------------------------------------------------------------------


def proc_starttime(pid: int | str = "self", proc: str = "/proc") -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot); None without /proc."""
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
        # The command name (field 2) is in parentheses and may hold spaces or ')'.
        return int(raw[raw.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def identity() -> dict:
    """What ties a job record to this process with certainty (pid reuse included)."""
    return {
        "pid": os.getpid(),
        "starttime": proc_starttime(),
        "pgid": os.getpgid(0),
        "uid": os.getuid(),
    }


def new_jids(count: int, pid: int, rng: random.Random | None = None) -> list[str]:
    """Distinct job ids in core's format, j<12 random digits>.<pid>."""
    rng = rng or random.SystemRandom()
    jids: list[str] = []
    while len(jids) < count:
        jid = f"j{rng.randrange(10**12):012d}.{pid}"
        if jid not in jids:
            jids.append(jid)
    return jids


def _now() -> datetime.datetime:
    return datetime.datetime.now()


def command_result(
    spec: JobSpec, rc: int, out: bytes, err: bytes, start: datetime.datetime, end: datetime.datetime
) -> dict:
    """The result ansible.builtin.command (or shell) returns for the same run."""
    result = {
        "changed": True,
        "cmd": spec.cmd,
        "rc": rc,
        "stdout": out.decode("utf-8", "replace").rstrip("\r\n"),
        "stderr": err.decode("utf-8", "replace").rstrip("\r\n"),
        "start": str(start),
        "end": str(end),
        "delta": str(end - start),
        "msg": "",
    }
    if rc != 0:
        result.update(failed=True, msg="non-zero return code")
    return result


def start_failure(spec: JobSpec, error: OSError, chdir_failed: bool) -> dict:
    """What command returns when it cannot run at all (rc is the errno, as core's)."""
    # Core says "Error executing command." and leaves the reason in an exception that
    # async_status does not show: the reason is part of the message here.
    what = (
        "Unable to change directory before execution" if chdir_failed else "Error executing command"
    )
    msg = f"{what}: {error}"
    return {
        "changed": False,
        "cmd": spec.cmd,
        "rc": error.errno or 2,
        "stdout": "",
        "stderr": "",
        "failed": True,
        "msg": msg,
    }


# -- the supervisor ------------------------------------------------------------------------


@dataclass
class Job:
    spec: JobSpec
    jid: str
    path: str
    limit: float
    proc: subprocess.Popen | None = None
    fds: dict = field(default_factory=dict)  # fd -> the job's output buffer it fills
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    deadline: float = 0.0
    start: datetime.datetime | None = None
    started_at: float | None = None
    timed_out: bool = False
    record_at: float | None = None  # killed from outside: when to record its end ourselves
    result: dict | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid


PR_SET_PDEATHSIG = 1
try:  # Linux: a job's process dies with its supervisor (nobody else could record its end)
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _PRCTL = _LIBC.prctl
except (AttributeError, OSError):
    _PRCTL = None


def _job_child(parent: int) -> Callable[[], None]:
    """What the job's process does before exec: a process group of its own (killed whole at
    its limit, as core's module child), and death with the supervisor where Linux allows."""

    def setup() -> None:
        os.setpgid(0, 0)
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the supervisor died before prctl took effect
                os._exit(1)

    return setup


# A job killed by one of these, not by its own limit, was most likely killed by async_wait
# (on_timeout: kill), which writes the job's `killed` record once it sees the processes
# gone: the supervisor leaves it that long before it records the end itself.
OUTSIDE_KILLS = frozenset({signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP})
OUTSIDE_KILL_GRACE = 10.0
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN})


class Supervisor:
    """Runs the jobs of one launch within max_parallel slots; single-threaded (selectors)."""

    def __init__(
        self,
        specs: list[JobSpec],
        async_dir: str,
        limit: float,
        max_parallel: int,
        notify_fd: int | None = None,
    ) -> None:
        self.me = identity()
        self.jobs = [
            Job(spec, jid, job_path(async_dir, jid), limit)
            for spec, jid in zip(specs, new_jids(len(specs), self.me["pid"]))
        ]
        self.slots = max_parallel if max_parallel > 0 else max(1, len(specs))
        self.queue: list[Job] = list(self.jobs)
        self.running: list[Job] = []
        self.dying: list[Job] = []
        self.notify_fd = notify_fd
        self.held: list[dict] | None = []
        self.launching = True
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)

    # records and messages

    def _record(self, job: Job, queued: bool) -> dict:
        record: dict = {"started": True, "finished": False, "ansible_job_id": job.jid}
        if queued:
            record[QUEUED_KEY] = True
        process = dict(self.me)
        if job.proc is not None:
            # Beyond the shared contract: the job's own process group, so that one job of a
            # launch can be stopped without stopping the others.
            process["job"] = {
                "pid": job.pid,
                "pgid": job.pid,
                "starttime": proc_starttime(job.pid),
            }
        record[PROCESS_KEY] = process
        return record

    def _write(self, job: Job, record: dict) -> None:
        if self.launching:
            write_job_file(job.path, record)  # a launch that cannot record its jobs fails
            return
        # Later there is nobody to tell: the waiter reports a missing or stale file.
        with contextlib.suppress(OSError):
            write_job_file(job.path, record)

    def notify(self, message: dict) -> None:
        """Tell the module; job ends before the launch's own answer wait for it (hold)."""
        if self.held is not None and "end" in message:
            self.held.append(message)
            return
        if self.notify_fd is None:
            return
        try:
            os.write(self.notify_fd, (json.dumps(message) + "\n").encode())
        except OSError:
            # The module returned (EPIPE) or does not read (EAGAIN): it reads the files.
            self.close_notify()

    def release(self) -> None:
        """After the launch's answer: send the job ends held until then."""
        held, self.held = self.held or [], None
        for message in held:
            self.notify(message)

    def close_notify(self) -> None:
        if self.notify_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.notify_fd)
            self.notify_fd = None

    # the jobs

    def _spawn(self, job: Job) -> None:
        chdir = job.spec.chdir
        job.start, job.started_at = _now(), time.time()
        if chdir is not None and not os.path.isdir(chdir):
            error = OSError(errno.ENOENT, os.strerror(errno.ENOENT), chdir)
            self._finish(job, start_failure(job.spec, error, chdir_failed=True))
            return
        try:
            job.proc = subprocess.Popen(
                job.spec.argv,
                cwd=chdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                preexec_fn=_job_child(os.getpid()),  # single-threaded here: safe
            )
        except OSError as error:
            if error.errno in OUT_OF_RESOURCES and self.running:
                # Out of descriptors or processes: run no more at once than now (the host's
                # own limit, below max_parallel); the job waits for a running one to end.
                self.slots = len(self.running)
                self.queue.insert(0, job)
                return
            self._finish(job, start_failure(job.spec, error, chdir_failed=False))
            return
        job.deadline = time.monotonic() + job.limit
        for pipe, buffer in ((job.proc.stdout, job.out), (job.proc.stderr, job.err)):
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            job.fds[fd] = buffer
            self.selector.register(fd, selectors.EVENT_READ, job)
        self.running.append(job)
        self._write(job, self._record(job, queued=False))

    def _fill_slots(self) -> None:
        while self.queue and len(self.running) < self.slots and not self.stopping:
            job = self.queue.pop(0)
            if self.launching or not self._withdrawn(job):
                self._spawn(job)

    def _withdrawn(self, job: Job) -> bool:
        """A queued job whose record a waiter replaced (killed it) is never started."""
        found = read_job_file(job.path)
        if found.kind == "record" and found.state == QUEUED:
            return False
        if found.kind == "missing":
            return False  # removed by hand: run it and write its result as promised
        self.notify({"end": job.jid, "started_at": None, "ended_at": time.time()})
        return True

    def _read(self, fd: int, job: Job) -> None:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            job.fds[fd].extend(chunk)
        else:
            self._close_fd(fd, job)

    def _close_fd(self, fd: int, job: Job) -> None:
        self.selector.unregister(fd)
        del job.fds[fd]
        for pipe in (job.proc.stdout, job.proc.stderr):
            if pipe is not None and not pipe.closed and pipe.fileno() == fd:
                pipe.close()

    def _reap(self) -> None:
        for job in list(self.running):
            if job.proc.poll() is None:
                continue
            if job.fds and not job.timed_out:
                continue  # output still coming (from the job's own children)
            for fd in list(job.fds):
                self._close_fd(fd, job)
            self.running.remove(job)
            if job.timed_out:
                self._finish(job, {"msg": TIMEOUT_MSG, "failed": True, "child_pid": job.pid})
                continue
            rc = job.proc.returncode
            job.result = command_result(
                job.spec, rc, bytes(job.out), bytes(job.err), job.start, _now()
            )
            if rc < 0 and -rc in OUTSIDE_KILLS:
                job.record_at = time.monotonic() + OUTSIDE_KILL_GRACE
                self.dying.append(job)
            else:
                self._finish(job, job.result)

    def _settle_dying(self, now: float) -> None:
        """Record the end of jobs killed from outside, unless their killer already did
        (their file no longer holds the running record)."""
        for job in list(self.dying):
            if now < job.record_at:
                continue
            self.dying.remove(job)
            found = read_job_file(job.path)
            if found.kind == "record" and found.state == RUNNING:
                self._finish(job, job.result)
            else:  # recorded killed, and maybe already cleaned up, by its killer: leave it
                self.notify({"end": job.jid, "started_at": job.started_at, "ended_at": time.time()})

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        for job in self.running:
            if not job.timed_out and now >= job.deadline:
                job.timed_out = True
                _killpg(job.pid)

    def _finish(self, job: Job, record: dict) -> None:
        self._write(job, record)
        self.notify({"end": job.jid, "started_at": job.started_at, "ended_at": time.time()})

    def _select_timeout(self) -> float:
        if any(job.timed_out for job in self.running):
            return 0.05  # a killed job: reap it soon even if no SIGCHLD wakes us
        deadlines = [job.deadline for job in self.running]
        deadlines += [job.record_at for job in self.dying]
        if not deadlines:
            return 1.0
        return max(0.0, min(1.0, min(deadlines) - time.monotonic()))

    # the launch

    def start(self) -> list[dict]:
        """Start what fits in the slots and write every record; the jobs as the module returns them.

        A record that cannot be written fails the whole launch: nothing is left running
        that nobody could ever wait for.
        """
        try:
            self._fill_slots()
            for job in self.queue:
                self._write(job, self._record(job, queued=True))
        except BaseException:
            for job in self.running:
                _killpg(job.pid)
            raise
        self.launching = False
        views = []
        for job in self.jobs:
            if job in self.queue:
                state = QUEUED
            elif job in self.running:
                state = RUNNING
            else:
                state = FAILED  # it could not start: its record says why
            views.append({"jid": job.jid, "name": job.spec.name, "state": state})
        return views

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum != signal.SIGCHLD:
            self.stopping = True

    def install_signals(self) -> None:
        signal.set_wakeup_fd(self._wake_w)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def run(self) -> None:
        """Until every job ended; on SIGTERM, kill every running job and leave."""
        while self.queue or self.running or self.dying:
            if self.stopping:
                for job in self.running:
                    _killpg(job.pid)
                break
            self._fill_slots()
            for key, _mask in self.selector.select(self._select_timeout()):
                if key.data is None:
                    _drain(self._wake_r)
                else:
                    self._read(key.fd, key.data)
            self._enforce_limits()
            self._reap()
            self._settle_dying(time.monotonic())
        self.close_notify()


def _killpg(pgid: int | None) -> None:
    if pgid is None or pgid <= 1:
        return
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass


# -- detaching -------------------------------------------------------------------------------


def _close_inherited(keep: int) -> None:
    """Close every descriptor but stdio (pointed at /dev/null) and `keep`."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _supervise(specs: list[JobSpec], async_dir: str, limit: float, slots: int, notify: int) -> None:
    """The supervisor's life; never returns into the module's code (nor its clean-up)."""
    code = 0
    try:
        _close_inherited(keep=notify)
        supervisor = Supervisor(specs, async_dir, limit, slots, notify)
        supervisor.install_signals()
        try:
            jobs = supervisor.start()
        except Exception as error:
            supervisor.notify({"ok": False, "msg": f"cannot start the jobs: {error}"})
            raise
        supervisor.notify({"ok": True, "jobs": jobs, "supervisor": supervisor.me})
        # From now on the module may stop reading: never block on the pipe again.
        if supervisor.notify_fd is not None:
            os.set_blocking(supervisor.notify_fd, False)
        supervisor.release()
        supervisor.run()
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def launch(
    specs: list[JobSpec], async_dir: str, limit: float, slots: int
) -> tuple[LineReader, dict]:
    """Detach a supervisor for the jobs: its pipe, and its first message (``ok`` or not)."""
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first == 0:  # the intermediate process: a new session, the supervisor, then leave
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork() == 0:
                _supervise(specs, async_dir, limit, slots, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(first, 0)
    reader = LineReader(read_fd)
    message = reader.next_message(HANDSHAKE_TIMEOUT)
    if message is None:
        # No word from the supervisor: stop whatever it started (its group is `first`).
        with contextlib.suppress(OSError):
            os.killpg(first, signal.SIGTERM)
        message = {"ok": False, "msg": f"the supervisor did not answer in {HANDSHAKE_TIMEOUT:g}s"}
    return reader, message


class LineReader:
    """JSON lines from the supervisor's pipe, with a timeout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.eof = False

    def next_message(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if self.eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self.fd, READ_CHUNK)
            if not chunk:
                self.eof = True
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line.decode("utf-8", "replace"))
        except ValueError:
            return {}
        return message if isinstance(message, dict) else {}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


# -- waiting on the host (wait: true) ------------------------------------------------------


def view(async_dir: str, jid: str, ends: dict, now: float, cleanup: bool) -> dict:
    """One job as async_job_poll reports it (contract of async_wait), from its file."""
    path = job_path(async_dir, jid)
    found = read_job_file(path)
    entry: dict = {"jid": jid, "path": path, "state": found.state}
    end = ends.get(jid) or {}
    if end.get("started_at") is not None:
        entry["started_at"] = end["started_at"]
    if found.kind == "record" and found.state in RESULT_STATES:
        entry["result"] = found.record
        entry["ended_at"] = end.get("ended_at", found.mtime)
        if cleanup:
            try:
                os.unlink(path)
                entry["erased"] = True
            except OSError as error:
                entry["cleanup_error"] = str(error)
    elif found.state in ("running", "queued") and found.mtime is not None:
        entry.setdefault("started_at", found.mtime)
        entry["running_for"] = max(0.0, now - entry["started_at"])
    elif found.reason:
        entry["msg"] = found.reason
    return entry


def wait_for_ends(reader: LineReader, jids: list[str], window: float) -> dict:
    """Wait up to `window` seconds for the supervisor's end messages; {jid: message}."""
    ends: dict[str, dict] = {}
    deadline = time.monotonic() + window
    pending = set(jids)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        message = reader.next_message(remaining)
        if message is None:
            break  # the window passed, or the supervisor is gone (EOF)
        jid = message.get("end")
        if isinstance(jid, str):
            ends[jid] = message
            pending.discard(jid)
    return ends
