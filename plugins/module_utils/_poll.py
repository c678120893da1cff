# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host side of async_wait: read, wait for and kill many async jobs at once.

Private to the collection: no guarantee of a stable interface outside it. Runs on the
managed hosts with async_job_poll (standard library, ``_job`` and ``_proc`` only,
Python >= 3.7). The guarantees it keeps are in async_job_poll's documentation.
"""

from __future__ import annotations

import contextlib
import math
import os
import time

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job, _proc
from ansible_collections.tplabs.async_tasks.plugins.module_utils._kill import Killer

PROC_SCAN_EVERY = 1.0  # seconds a process table read serves while jobs look alive
MIN_INTERVAL = 0.01
REPLY_MAX_BYTES = 16 * 1024 * 1024  # all the results of one reply together


def wrapper_processes(prefixes, proc: str = "/proc") -> dict | None:
    """Pids of async_wrapper processes per jid prefix (any owner); None without /proc."""
    table = _proc.scan(proc)
    if table is None:
        return None
    return {p: sorted(x.pid for x, _unused in table.wrappers.get(p, [])) for p in prefixes}


def expand_dir(path: str) -> str:
    """``~`` as async_wrapper expands it (HOME of the user the module runs as)."""
    return os.path.abspath(os.path.expanduser(path))


def fallback_dirs(async_dir: str, given: str) -> list:
    """Where a job file may be when it is not in the async dir: where ansible-core's
    ``_remote_expand_user`` puts it when the remote ``echo ~`` prints nothing (the
    connection's working directory, the rest of the path dropped), or the user's default
    async dir when the caller passed such a misexpanded directory."""
    dirs = []
    with contextlib.suppress(OSError):  # a removed working directory
        dirs.append(os.getcwd())
    for home in (os.path.expanduser("~"), _pw_home()):
        if home:
            dirs.append(os.path.join(home, ".ansible_async"))
            if given.startswith("~/"):
                dirs.append(os.path.join(home, given[2:]))
    out = []
    for d in dirs:
        d = os.path.abspath(d)
        if d != async_dir and d not in out:
            out.append(d)
    return out


def _pw_home() -> str | None:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_dir
    except (ImportError, KeyError):
        return None


class Poller(Killer):
    """State of one call: what was seen of each job, and the process table."""

    def __init__(
        self,
        jids: list,
        async_dir: str,
        proc: str = "/proc",
        clock=time.time,
        fallbacks: list | None = None,
        seen: list | None = None,
        result_max_bytes: int = _job.DEFAULT_RESULT_MAX_BYTES,
        max_bytes: int = _job.DEFAULT_MAX_BYTES,
    ) -> None:
        self.jids = list(dict.fromkeys(jids))
        self.async_dir = async_dir
        self.proc = proc
        self.clock = clock
        self.fallbacks = list(fallbacks or [])
        self.seen = set(seen or [])
        self.result_max_bytes = result_max_bytes
        self.max_bytes = max_bytes
        self.jobs: dict = {}
        self.files: dict = {}  # jid -> last JobFile read (a read cache keyed by inode/mtime)
        self.where: dict = {}  # jid -> directory its file was found in
        self.alive_at: dict = {}  # jid -> clock() when its processes were last seen
        self._table = None
        self._table_at = -math.inf
        self.checks = 0
        self.reply_bytes = 0

    # -- reading ------------------------------------------------------------------------

    def table(self, fresh: bool = False):
        now = time.monotonic()
        if fresh or now - self._table_at >= PROC_SCAN_EVERY:
            self._table = _proc.scan(self.proc)
            self._table_at = now
        return self._table

    def locate(self, jid: str) -> _job.JobFile:
        """The job file, in the async dir or (when missing there) a fallback directory."""
        directory = self.where.get(jid, self.async_dir)
        found = _job.read_job_file(
            os.path.join(directory, jid), self.max_bytes, self.files.get(jid)
        )
        if found.kind == "missing" and jid not in self.where:
            for other in self.fallbacks:
                elsewhere = _job.read_job_file(os.path.join(other, jid), self.max_bytes)
                # Only a file of ours (or root's): a fallback may be a shared directory
                # (a working directory in /tmp) where anybody could plant a result.
                if elsewhere.kind != "missing" and elsewhere.uid in (os.geteuid(), 0):
                    self.where[jid] = other
                    found = elsewhere
                    break
        if found.kind != "missing":
            self.files[jid] = found
            self.seen.add(jid)
        return found

    def can_judge(self, uid: int | None, table) -> bool:
        """Whether the job's processes would be visible to us (hidepid hides others')."""
        me = os.geteuid()
        return me == 0 or uid == me or table.sees_other_users(me)

    def identify(self, jid: str, found: _job.JobFile, table) -> _proc.JobProcs:
        record = found.record or {}
        if _job.PROCESS_KEY in record:
            procs = _proc.launch_job(table, jid, record, found.uid)
        else:
            procs = _proc.core_job(table, jid, found.uid, found.mtime)
        named = record.get("ansible_job_id")
        if procs.certain and named is not None and named != jid:
            procs.certain = False
            procs.reason = f"its job file names another job id, {named!r}"
        return procs

    # -- one job ----------------------------------------------------------------------------

    def base(self, jid: str, found: _job.JobFile | None) -> dict:
        entry: dict = {"jid": jid, "path": None if found is None else found.path}
        if jid in self.where:
            entry["found_in"] = self.where[jid]
        return entry

    def inspect(self, jid: str, table, before: _job.JobFile | None = None) -> tuple:
        """(entry, suspect): suspect when the verdict rests on processes being absent, to be
        confirmed on a fresh process table (``before`` is the file read then)."""
        if not _job.is_jid(jid):
            return self.bad_jid(jid), False
        found = self.locate(jid)
        entry = self.base(jid, found)
        if found.kind == "missing":
            return self.missing(jid, entry, found, table, before is not None)
        if found.kind == "corrupt":
            return self.corrupt(jid, entry, found, table), False
        state = _job.record_state(found.record)
        if state not in _job.ACTIVE_STATES:
            return self.ended(entry, found, state), False
        return self.active(jid, entry, found, state, table, before)

    def bad_jid(self, jid: str) -> dict:
        return {
            "jid": jid,
            "path": None,
            "state": _job.UNKNOWN,
            "msg": f"{jid!r} is not a job id ({_job.JID_FORMAT}, at most 18 and 10 digits): "
            "no file was looked up",
        }

    def missing(self, jid, entry, found, table, confirming) -> tuple:
        launcher = None if table is None else table.live(_job.jid_pid(jid))
        if launcher is not None and _job.jid_prefix(jid) in launcher.argv:
            entry.update(state=_job.RUNNING, msg="starting: its launcher runs, no job file yet")
            return entry, False
        if not confirming and table is not None:
            return entry, True
        where = ", ".join([self.async_dir, *self.fallbacks])
        if jid in self.seen:
            why = (
                "its job file was removed after this wait saw it (by another waiter with "
                "cleanup, or async_status mode=cleanup): its result is lost to this wait"
            )
        else:
            why = (
                f"no job file {jid} in {where}: a wrong job id, or its file was already "
                "removed (by another waiter with cleanup, or async_status mode=cleanup)"
            )
        if found.reason:
            why += f" ({found.reason})"
        entry.update(state=_job.UNKNOWN, msg=why)
        return entry, False

    def corrupt(self, jid, entry, found, table) -> dict:
        procs = None
        if table is not None and self.can_judge(found.uid, table):
            procs = _proc.core_job(table, jid, found.uid, found.mtime)
        if procs is not None and procs.alive:
            entry.update(
                state=_job.RUNNING,
                msg=f"its job file cannot be read ({found.reason}) while its processes run",
            )
            return entry
        entry.update(state=_job.CORRUPT, msg=f"job file {found.path}: {found.reason}")
        if found.too_big:
            entry["truncated"] = True
            entry["_keep"] = "too big to read: read it on the host"
        elif found.size is None:
            entry["_keep"] = "it could not be read"
        entry["ended_at"] = found.mtime
        return entry

    def ended(self, entry, found, state) -> dict:
        record = found.record
        result, truncated = _job.shrink_record(record, self.result_budget())
        entry.update(state=state, result=result, ended_at=found.mtime)
        if truncated:
            entry["truncated"] = True
            entry["_keep"] = f"its result ({found.size} bytes) was cut to fit the reply"
        if state == _job.TIMEOUT:
            entry["msg"] = "the job reached its own async limit (Timeout exceeded) and was killed"
        elif state == _job.KILLED:
            entry["msg"] = str(record.get("msg") or "killed by async_wait")
        return entry

    def result_budget(self) -> int:
        return max(1024, min(self.result_max_bytes, REPLY_MAX_BYTES - self.reply_bytes))

    def active(self, jid, entry, found, state, table, before) -> tuple:
        now = self.clock()
        entry.update(state=state, started_at=found.mtime, running_for=max(0.0, now - found.mtime))
        if table is None:
            entry["msg"] = "no process table (/proc): cannot tell whether it still runs"
            return entry, False
        if not self.can_judge(found.uid, table):
            entry["msg"] = (
                f"its processes (uid {found.uid}) are hidden from uid {os.geteuid()} "
                "(hidepid): cannot tell whether it still runs"
            )
            return entry, False
        procs = self.identify(jid, found, table)
        if procs.alive:
            self.alive_at[jid] = now
            if procs.certain:
                entry["pids"] = procs.pids
            elif procs.reason:
                entry["msg"] = f"not tied to its processes with certainty: {procs.reason}"
            return entry, False
        if before is None:
            return entry, True
        if found is not before:
            # Written again since the first look: someone keeps it up; judge it next check.
            entry["msg"] = "its job file changed while its processes looked gone: looking again"
            return entry, False
        entry.update(state=_job.ORPHANED, msg=self.orphan_message(jid, found, table, procs))
        entry.pop("running_for", None)
        return entry, False

    def orphan_message(self, jid, found, table, procs) -> str:
        msg = (
            "orphaned: its job file says it runs, but no process of the job is left (two "
            "reads of the process table) and the file has not changed since "
            f"(written {max(0.0, self.clock() - found.mtime):.1f}s ago)"
        )
        if jid in self.alive_at:
            msg += f"; its processes were seen {self.clock() - self.alive_at[jid]:.1f}s ago"
        if table.btime is not None and found.mtime < table.btime:
            msg += "; the host booted after the file was written"
        if procs.reason:
            msg += f"; {procs.reason}"
        return msg

    # -- every job ----------------------------------------------------------------------

    def pending(self) -> list:
        return [
            j
            for j in self.jids
            if j not in self.jobs or self.jobs[j]["state"] in (_job.RUNNING, _job.QUEUED)
        ]

    def check(self) -> None:
        """Read every pending job once: one process table for all (two when some job
        looks dead, to confirm it on a fresh one)."""
        self.checks += 1
        table = self.table()
        suspects = []
        for jid in self.pending():
            entry, suspect = self.safely(jid, table, None)
            if suspect:
                suspects.append((jid, self.files.get(jid)))
            else:
                self.record(jid, entry)
        if suspects:
            table = self.table(fresh=True)
            for jid, before in suspects:
                before = before or _job.JobFile("", "missing")
                entry, _unused = self.safely(jid, table, before)
                self.record(jid, entry)

    def safely(self, jid: str, table, before) -> tuple:
        """One job's inspection; an unexpected error stays that job's."""
        try:
            return self.inspect(jid, table, before)
        except Exception as err:  # one job must never break the others' wait
            entry = {"jid": jid, "path": None, "state": _job.UNKNOWN, "_keep": "not inspected"}
            entry["msg"] = f"could not inspect the job: {type(err).__name__}: {err}"
            return entry, False

    def record(self, jid: str, entry: dict) -> None:
        previous = self.jobs.get(jid) or {}
        if "started_at" in previous and "started_at" not in entry:
            entry["started_at"] = previous["started_at"]
        if "result" in entry:
            self.reply_bytes += len(str(entry["result"]))
        self.jobs[jid] = entry

    def any_failed(self) -> bool:
        return any(e["state"] in _job.FAILED_STATES for e in self.jobs.values())

    def wait(self, window: float, interval: float, fail_fast: bool) -> None:
        deadline = time.monotonic() + window
        while True:
            self.check()
            if not self.pending() or (fail_fast and self.any_failed()):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(interval, remaining))

    def cleanup(self) -> None:
        for entry in self.jobs.values():
            if entry["state"] not in _job.ENDED_STATES or entry["state"] == _job.UNKNOWN:
                continue  # running, or no job file to remove
            if not entry.get("path"):
                continue
            if entry.get("_keep"):
                entry["erased"] = False
                entry["cleanup_error"] = f"kept: {entry['_keep']}"
                continue
            try:
                os.unlink(entry["path"])
                entry["erased"] = True
            except FileNotFoundError:
                entry["erased"] = False
                entry["cleanup_error"] = (
                    "already removed (by another waiter with cleanup, or async_status mode=cleanup)"
                )
            except OSError as err:
                entry["erased"] = False
                entry["cleanup_error"] = f"cannot remove {entry['path']}: {err.strerror or err}"

    # -- kill -----------------------------------------------------------------------------

    def settle(self, jid: str, note: str) -> dict:
        """What a job is now, on fresh process tables (confirmed when it looks dead)."""
        entry, suspect = self.safely(jid, self.table(fresh=True), None)
        if suspect:
            before = self.files.get(jid) or _job.JobFile("", "missing")
            entry, _unused = self.safely(jid, self.table(fresh=True), before)
        entry["msg"] = f"{note}: {entry.get('msg') or entry['state']}"
        return entry

    def reply_jobs(self) -> list:
        out = []
        for jid in self.jids:
            entry = self.jobs.get(jid)
            if entry is not None:
                out.append({k: v for k, v in entry.items() if not k.startswith("_")})
        return out
