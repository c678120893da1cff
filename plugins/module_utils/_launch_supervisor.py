# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""async_launch's supervisor: runs the jobs of one launch within max_parallel slots.

Private to the collection: no guarantee of a stable interface outside it. Runs on the
managed hosts (standard library and ``_job`` only, Python >= 3.7), in the detached process
that ``_launch.launch`` starts; one thread, one ``selectors`` loop woken by SIGCHLD.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import errno
import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.tplabs.async_tasks.plugins.module_utils._job import (
    FAILED,
    PROCESS_JOB_KEY,
    PROCESS_KEY,
    QUEUED,
    QUEUED_KEY,
    RUNNING,
    TIMEOUT_MSG,
    job_path,
    read_job_file,
    write_job_file,
)
from ansible_collections.tplabs.async_tasks.plugins.module_utils._launch_jobs import (
    JobSpec,
    _now,
    command_result,
    identity,
    new_jids,
    proc_starttime,
    start_failure,
)

READ_CHUNK = 65536


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


# A job killed by one of these, not by its own limit, may have been killed by async_wait
# (on_timeout: kill). async_job_poll then gives the supervisor a moment to record the end
# (it keeps that result, output so far included, and marks it killed), else writes its own
# `killed` record. The supervisor records the end only while the file still holds its
# running record, so it never overwrites the killer's record or brings back a file that
# cleanup removed; it can wait OUTSIDE_KILL_GRACE seconds first (0: at once).
OUTSIDE_KILLS = frozenset({signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP})
OUTSIDE_KILL_GRACE = 0.0
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
            process[PROCESS_JOB_KEY] = {
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
        data = (json.dumps(message) + "\n").encode()
        try:
            while data:  # a write a signal interrupted may have written only part of it
                data = data[os.write(self.notify_fd, data) :]
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
