# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kill half of async_job_poll: stop jobs' processes and see them gone.

Private to the collection: no guarantee of a stable interface outside it. Runs on the
managed hosts (standard library, ``_job`` and ``_proc`` only, Python >= 3.7). ``Killer``
is a part of ``_poll.Poller`` (it uses the poller's reads and verdicts).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import sys
import time

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job, _proc

# -- signals: every job at once, seen gone -------------------------------------------------


def remaining(table: _proc.ProcTable, found: _proc.JobProcs) -> list:
    """The job's processes still running in a later table (same pid and start time, or new
    members of its own sessions and groups)."""
    left = {pid for pid, start in found.starttimes.items() if table.live(pid, start)}
    for sid in found.sids:
        left |= {p.pid for p in table.by_sid.get(sid, ())}
    for pgid in found.groups:
        left |= {p.pid for p in table.by_pgid.get(pgid, ())}
    return sorted(left)


def send(table: _proc.ProcTable, found: _proc.JobProcs, sig: int) -> list:
    """Signal a job's groups (and its processes in shared groups one by one).

    Returns the errors as (errno, text). A vanished group or process is not an error.
    """
    errors = []
    groups = set(found.groups)
    for sid in found.sids:  # groups made since the job was tied to its processes
        groups |= {p.pgid for p in table.by_sid.get(sid, ())}
    for pgid in sorted(groups):
        members = table.by_pgid.get(pgid, ())
        if _proc.forbidden_group(pgid, table) or not members:
            continue
        if any(p.sid not in found.sids and p.pid not in found.starttimes for p in members):
            continue  # a process not of the job joined the group: never signal it whole
        try:
            os.killpg(pgid, sig)
        except OSError as err:
            if err.errno != errno.ESRCH:
                errors.append((err.errno, f"signal {sig} to process group {pgid}: {err.strerror}"))
    for pid in found.loose:
        if table.live(pid, found.starttimes.get(pid)) is None:
            continue
        try:
            os.kill(pid, sig)
        except OSError as err:
            if err.errno != errno.ESRCH:
                errors.append((err.errno, f"signal {sig} to pid {pid}: {err.strerror}"))
    return errors


SIGNALS = ((signal.SIGTERM, 2.0), (signal.SIGKILL, 3.0))


def kill_all(
    jobs: dict, table: _proc.ProcTable, proc: str = "/proc", signals=SIGNALS, pause: float = 0.05
) -> tuple:
    """Stop the processes of every job (jid -> certain JobProcs), and see them gone.

    SIGTERM to each job's groups, then one table scan per round for all the jobs until
    they are gone or the grace time ends; then SIGKILL to what is left, and the same.
    Each round first stops every process it signals (SIGSTOP) and continues them after
    (SIGCONT): a job's processes sit in several groups (core's async_wrapper moves its child
    to a group of its own only after forking it), which are signalled one after the other,
    and a process still running between two of those calls could see another die and act
    on it (async_wrapper then writes "the module's output is not JSON" as the job's
    result). Stopped, each takes its signal when continued, before running again.
    The cost is O(jobs + processes) per round. Returns (left, errors): jid -> the pids
    still running, and jid -> [(errno, text)] of the signals that failed.
    """
    left = {jid: list(found.pids) for jid, found in jobs.items()}
    errors: dict = {jid: [] for jid in jobs}
    for sig, grace in signals:
        todo = [jid for jid in jobs if left[jid]]
        if not todo:
            break
        try:
            for jid in todo:  # what these two fail on, the signal itself says
                send(table, jobs[jid], signal.SIGSTOP)
            for jid in todo:
                errors[jid].extend(send(table, jobs[jid], sig))
        finally:
            for jid in todo:
                send(table, jobs[jid], signal.SIGCONT)
        deadline = time.monotonic() + grace
        while True:
            fresh = _proc.scan(proc)
            if fresh is None:
                return left, errors  # the table went away: nothing can be verified
            table = fresh
            for jid in todo:
                left[jid] = remaining(table, jobs[jid])
            if not any(left[jid] for jid in todo) or time.monotonic() >= deadline:
                break
            time.sleep(pause)
    return left, errors


class Killer:
    """Kill every job still running: ``killed`` only once its processes are seen gone."""

    def kill(self) -> None:
        """Kill every job that still runs; ``killed`` only once its processes are gone."""
        self.checks += 1
        table = self.table(fresh=True)
        targets: dict = {}
        suspects = []
        for jid in self.jids:
            entry, suspect = self.safely(jid, table, None)
            if suspect:
                suspects.append((jid, self.files.get(jid) or _job.JobFile("", "missing")))
                continue
            if entry["state"] in (_job.RUNNING, _job.QUEUED):
                entry, target = self.kill_target(jid, entry, table)
                if target is not None:
                    targets[jid] = target
            self.record(jid, entry)
        if suspects:  # nothing of them runs: confirm on a fresh table, signal nothing
            fresh = self.table(fresh=True)
            for jid, before in suspects:
                self.record(jid, self.safely(jid, fresh, before)[0])
        if targets:
            # Supervisors first: a stopped supervisor starts no queued job when a slot frees.
            order = sorted(targets, key=lambda j: not targets[j][0].whole_launch)
            procs = {jid: targets[jid][0] for jid in order}
            left, errors = kill_all(procs, table, self.proc)
            self.await_supervisors(targets, left)
            for jid, (found, before) in targets.items():
                self.record(jid, self.after_kill(jid, found, before, left[jid], errors[jid]))

    def await_supervisors(self, targets: dict, left: dict, grace: float = 2.0) -> None:
        """An async_launch job killed alone is reaped by its supervisor, which then writes
        the job's result: give it a moment (all such jobs at once), so that the kill is
        recorded in that result rather than overwritten by it."""
        waiting = {
            jid: before
            for jid, (found, before) in targets.items()
            if found.supervisor is not None and not found.whole_launch and not left[jid]
        }
        deadline = time.monotonic() + grace
        while waiting and time.monotonic() < deadline:
            for jid, before in list(waiting.items()):
                if _job.read_job_file(before.path, self.max_bytes, before) is not before:
                    del waiting[jid]
            if waiting:
                time.sleep(0.05)

    def kill_target(self, jid: str, entry: dict, table) -> tuple:
        """(entry, (JobProcs, JobFile)) for a job to signal, or (kill_failed entry, None)."""
        found = self.files.get(jid)
        reason = entry.get("msg") or ""
        target = None
        if table is None or found is None or found.kind != "record":
            reason = reason or "its job file cannot be read"
        else:
            procs = self.identify(jid, found, table)
            if not procs.certain and procs.supervisor is not None:
                procs, reason = self.queued_target(jid, found, procs.supervisor, table)
            me = os.geteuid()
            if procs is None:
                pass
            elif not procs.certain:
                reason = f"not tied to its processes with certainty: {procs.reason}"
            elif me != 0 and any(uid != me for uid in procs.uids):
                reason = (
                    f"not ours: its processes run as uid {procs.uids}, this wait as uid {me} "
                    "(wait as the job's user, or as root)"
                )
            else:
                target = (procs, found)
        if target is not None:
            return entry, target
        entry.update(state=_job.KILL_FAILED, msg=f"not killed, nothing signalled: {reason}")
        return entry, None

    def queued_target(self, jid: str, found: _job.JobFile, supervisor, table) -> tuple:
        """An async_launch job without a process of its own (queued): its supervisor is
        stopped only when every unfinished job of its launch is being killed."""
        others = []
        directory = os.path.dirname(found.path)
        suffix = f".{supervisor.pid}"
        try:
            names = [n for n in os.listdir(directory) if n.endswith(suffix) and _job.is_jid(n)]
        except OSError as err:
            return None, f"cannot list {directory}: {err.strerror or err}"
        for name in names:
            other = _job.read_job_file(os.path.join(directory, name), self.max_bytes)
            info = (other.record or {}).get(_job.PROCESS_KEY)
            same = isinstance(info, dict) and info.get("starttime") == supervisor.starttime
            if same and other.state in _job.ACTIVE_STATES and name not in self.jids:
                others.append(name)
        if others:
            return None, (
                f"queued in the launch of supervisor {supervisor.pid}, which also runs "
                f"{len(others)} unfinished job(s) not to be killed ({', '.join(sorted(others)[:5])})"
            )
        return _proc.supervisor_target(table, supervisor), ""

    def after_kill(self, jid, procs, before, left, errors) -> dict:
        if left:
            why = "; ".join(sorted({text for _unused, text in errors})) or (
                "still running after SIGTERM and SIGKILL"
            )
            entry = self.base(jid, before)
            entry.update(
                state=_job.KILL_FAILED,
                msg=f"not killed: process(es) {left} still run ({why}); job file left as it was",
                started_at=before.mtime,
                pids=left,
            )
            return entry
        now = self.clock()
        found = _job.read_job_file(before.path, self.max_bytes, before)
        record = {
            "started": True,
            "finished": True,
            "failed": True,
            _job.KILLED_MARK: True,
            "ansible_job_id": jid,
            "msg": "killed by tplabs.async_tasks.async_wait after the wait timed out",
            "killed_pids": procs.pids,
        }
        if found is not before and found.kind != "missing":
            own = found.record if found.kind == "record" else None
            if not (own and procs.supervisor is not None and _died_of_our_signal(own)):
                return self.settle(jid, "its processes are gone, and its job file changed")
            # Its supervisor recorded the end our signal caused: keep that result, marked.
            record = dict(own, **{k: v for k, v in record.items() if k != "started"})
            before = found
        entry = self.base(jid, before)
        entry.update(state=_job.KILLED, started_at=before.mtime, ended_at=now, result=record)
        entry["msg"] = record["msg"]
        if found.kind == "missing":
            entry["msg"] += "; its job file was removed meanwhile and is not written again"
            entry["_keep"] = "removed by someone else"
        else:
            try:
                _job.write_job_file(before.path, record, before.mode or 0o600, _owner(before))
            except OSError as err:
                entry["msg"] += f"; the kill record could not be written: {err}"
                entry["_keep"] = "no kill record"
        removed, problems = remove_launch_tmpdirs(procs.tmpdirs, before.uid)
        if removed:
            entry["launch_tmp_removed"] = removed
        if problems:
            entry["launch_tmp_error"] = "; ".join(problems)
        return entry


def _died_of_our_signal(record: dict) -> bool:
    """A result whose command ended on SIGTERM or SIGKILL (rc -15 or -9, as Popen says)."""
    rc = record.get("rc")
    return rc in (-int(signal.SIGTERM), -int(signal.SIGKILL)) and not record.get(_job.KILLED_MARK)


def _owner(found: _job.JobFile) -> tuple | None:
    if found.uid is None or found.gid is None:
        return None
    return found.uid, found.gid


def remove_launch_tmpdirs(dirs: list, owner: int | None) -> tuple:
    """Remove a killed job's launch temp dirs (its module and arguments: secrets).

    Only a real directory (not a link) owned by the job's owner, named by the wrapper's
    command line as async_wrapper would remove it at the end of the job.
    """
    removed, problems = [], []
    for directory in dirs:
        try:
            info = os.lstat(directory)
        except FileNotFoundError:
            continue
        except OSError as err:
            problems.append(f"{directory}: {err.strerror or err}")
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner:
            problems.append(f"{directory}: not a directory of uid {owner}, kept")
            continue
        errors = _rmtree(directory)
        if errors:
            problems.append("; ".join(errors[:3]))
        else:
            removed.append(directory)
    return removed, problems


def _rmtree(directory: str) -> list:
    """shutil.rmtree (which never follows links), its errors collected."""
    errors: list = []

    def note(_func, path, exc) -> None:
        # onexc (3.12+) passes the exception, onerror (before) an exc_info tuple
        errors.append(f"{path}: {exc[1] if isinstance(exc, tuple) else exc}")

    if sys.version_info >= (3, 12):
        shutil.rmtree(directory, onexc=note)
    else:
        shutil.rmtree(directory, onerror=note)
    return errors
