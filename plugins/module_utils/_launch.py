# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
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

This file detaches the supervisor and carries the pipe (``launch``, ``wait_for_ends``, and
``view``, a job as async_job_poll reports it); ``_launch_supervisor`` runs the jobs;
``_launch_jobs`` holds the job specs, ids and results they share.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time

from ansible_collections.tplabs.async_tasks.plugins.module_utils._job import (
    RESULT_STATES,
    job_path,
    read_job_file,
)
from ansible_collections.tplabs.async_tasks.plugins.module_utils._launch_jobs import JobSpec
from ansible_collections.tplabs.async_tasks.plugins.module_utils._launch_supervisor import (
    READ_CHUNK,
    Supervisor,
)

# How long the module waits for the supervisor's first word (a loaded host may be slow to
# fork and start the first jobs; core's async_wrapper waits 2.5 s and then returns blindly).
HANDSHAKE_TIMEOUT = 120.0


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
            ready, _unused, _unused = select.select([self.fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self.fd, READ_CHUNK)
            if not chunk:
                self.eof = True
            self.buffer += chunk
        line, _unused, self.buffer = self.buffer.partition(b"\n")
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
