# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the time_saved callback reads async launches and waits from task results.

Private to the collection (controller side only). A mixin of ``Recorder``: it turns
launch results (core's ``async``, async_launch) into jobs, and wait results
(async_status, ``poll > 0``, async_wait, async_launch ``wait: true``) into each job's
state and the best known time of its real start and end:

1. the module's own ``start``/``end``/``delta`` (command, shell), when the host's clock
   agrees with the controller's;
2. async_wait's ``ended_ago`` (host clock, so no skew; it includes async_wrapper's time to
   write the result) and ``elapsed``;
3. the job file's modification time, when the controller can read the file (local hosts);
4. else only bounds: after the last check that saw it running, before the wait saw it end.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_model import (
    END_FROM_JOB_FILE,
    END_FROM_MODULE,
    END_FROM_POLL,
    END_FROM_SEEN,
    END_FROM_WAIT,
    REPORT_STATES,
    HostRun,
    Job,
    TaskInfo,
    item_label,
)

# A host's clock must agree with the controller's within this for its stamps to be used.
CLOCK_SLACK = 1.0
# A job file read back for its time only: a small cap, its output is never kept.
JOB_FILE_MAX_BYTES = 4 * 1024 * 1024
_STAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def seconds(value: Any) -> float | None:
    """A non-negative number of seconds, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value >= 0 else None


def job_id_of(data: Mapping[str, Any]) -> str | None:
    inner = data.get("async_result")
    jid = data.get("ansible_job_id") or (inner.get("ansible_job_id") if inner else None)
    return str(jid) if jid else None


def record_state(record: Mapping[str, Any]) -> str:
    """A job record's state; a module skipped in check mode ended ``skipped``."""
    if _job.flag(record.get("skipped")) and not _job.flag(record.get("failed")):
        return _job.SKIPPED
    return _job.record_state(dict(record))


class ResultReaders:
    """Result readers of ``Recorder`` (which owns the attributes used here)."""

    jobs: dict[tuple[str, str], Job]
    hidden: dict[str, list[Job]]
    async_done: dict[tuple[str, str], float]
    polls: dict[tuple[str, str], int]
    last_poll: dict[tuple[str, str], float]

    def from_epoch(self, epoch: float) -> float | None:  # pragma: no cover - Recorder's
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def pieces(run: HostRun, data: Mapping[str, Any], stamp: float) -> Iterator[tuple]:
        """(item data, item start, item end) for a result, one per loop item."""
        items = data.get("results")
        if not isinstance(items, list):
            yield data, run.start, stamp
            return
        ends = run.item_ends or []
        previous = run.start
        for index, item in enumerate(items):
            end = ends[index] if index < len(ends) else stamp
            if isinstance(item, dict):
                yield item, previous, end
            previous = end

    def host_stamp(self, text: Any) -> float | None:
        """A module's ``start``/``end`` (host local time) on the recorder's clock."""
        if not isinstance(text, str):
            return None
        try:
            epoch = datetime.strptime(text, _STAMP_FORMAT).timestamp()
        except (ValueError, OverflowError, OSError):
            return None
        return self.from_epoch(epoch)

    def read_local_job_file(self, job: Job) -> _job.JobFile | None:
        """The job's file when the controller can read it (the host is this machine)."""
        path = job.results_file
        if not path or not path.startswith("/") or not job.jid or not path.endswith(job.jid):
            return None
        found = _job.read_job_file(path, JOB_FILE_MAX_BYTES)
        return None if found.kind == "missing" else found

    # -- launches ------------------------------------------------------------------------

    def read_launch(
        self, run: HostRun, info: TaskInfo, data: Mapping[str, Any], stamp: float, failed: bool
    ) -> None:
        """A core async launch (``async`` > 0): ``poll: 0`` starts jobs, ``poll: N`` runs them."""
        record = run.task
        kind = "poll" if info.poll else "launch"
        hidden = record.no_log or "censored" in data
        if info.async_val:
            record.kind = kind
            if hidden:
                self._hidden_launch(run, info, data, stamp, failed)
                return
        elif hidden:  # a templated async: only a job id in the result shows a launch
            return
        for item, start, end in self.pieces(run, data, stamp):
            jid = job_id_of(item)
            if not jid or item.get("skipped"):
                continue
            record.kind = kind
            # core strips `failed` from the top of a result: the event says it
            item_failed = bool(item.get("failed")) or (item is data and failed)
            polled = bool(info.poll) or "async_result" in item
            if item_failed and not polled:
                continue  # the launch itself failed: no job runs
            job = Job(
                run.host,
                jid,
                record,
                start,
                end,
                item=item_label(item),
                limit=info.async_val or None,
                results_file=item.get("results_file"),
            )
            if polled:
                inner = item.get("async_result")
                self._polled(job, inner if isinstance(inner, dict) else item, item_failed, end)
            self.jobs[(run.host, jid)] = job
            record.jobs.append(job)

    def _polled(self, job: Job, data: Mapping[str, Any], failed: bool, end: float) -> None:
        job.mode = "poll"
        key = (job.host, job.jid or "")
        job.polls = self.polls.pop(key, 0)
        job.last_running = self.last_poll.pop(key, None)
        job.waited_by = job.task.name
        seen = self.async_done.pop(key, end)
        self.job_ended(job, data, failed, seen)
        if job.end_source == END_FROM_SEEN:
            job.end_source = END_FROM_POLL  # the worker's own poll: within one poll interval

    def _hidden_launch(
        self, run: HostRun, info: TaskInfo, data: Mapping[str, Any], stamp: float, failed: bool
    ) -> None:
        """no_log: the job id is censored; keep jobs a wait can be matched to by time."""
        if failed and not info.poll:
            return
        for _item, start, end in self.pieces(run, data, stamp):
            job = Job(run.host, None, run.task, start, end, hidden=True, limit=info.async_val)
            if info.poll:
                job.mode = "poll"
                job.state = _job.FAILED if failed else _job.FINISHED
                job.seen = end
                job.waited_by = run.task.name
            else:
                self.hidden.setdefault(run.host, []).append(job)
            run.task.jobs.append(job)

    def read_async_launch(
        self, run: HostRun, info: TaskInfo, data: Mapping[str, Any], stamp: float
    ) -> None:
        """tplabs.async_tasks.async_launch: its ``jobs``, and with ``wait: true`` their ends."""
        for item, start, end in self.pieces(run, data, stamp):
            for entry in item.get("jobs") or []:
                if not isinstance(entry, dict) or not _job.is_jid(entry.get("jid")):
                    continue
                if entry.get("state") in (_job.SKIPPED, _job.LAUNCH_FAILED):
                    continue
                waited = entry.get("state") not in (_job.QUEUED, _job.RUNNING)
                # with wait: true the task also waited: its launch part is not known apart
                job = Job(
                    run.host,
                    entry["jid"],
                    run.task,
                    start,
                    start if waited else end,
                    mode="async_launch",
                    name=str(entry["name"]) if entry.get("name") is not None else None,
                    limit=info.async_val or None,
                    state=_job.QUEUED if entry.get("state") == _job.QUEUED else _job.RUNNING,
                )
                self.jobs[(run.host, job.jid or "")] = job
                run.task.jobs.append(job)
                if waited:
                    run.waited.append(job)
                    self.wait_entry(job, entry, end, run.task.name)

    # -- waits ---------------------------------------------------------------------------

    def read_async_status(
        self, run: HostRun, data: Mapping[str, Any], stamp: float, failed: bool
    ) -> None:
        for item, _start, end in self.pieces(run, data, stamp):
            jid = item.get("ansible_job_id")
            if not jid:
                continue
            job = self.job_for(run, str(jid), self.module_start(item), end)
            if job is None:
                continue
            run.waited.append(job)
            if job.results_file is None and isinstance(item.get("results_file"), str):
                job.results_file = item["results_file"]
            if job.seen is not None:
                continue  # an earlier wait already saw it end
            if not _job.flag(item.get("finished")):
                job.last_running = end
                continue
            job.waited_by = run.task.name
            item_failed = bool(item.get("failed")) or (item is data and failed)
            self.job_ended(job, item, item_failed, end)

    def read_async_wait(self, run: HostRun, data: Mapping[str, Any], stamp: float) -> None:
        for item, _start, end in self.pieces(run, data, stamp):
            for entry in item.get("jobs") or []:
                if not isinstance(entry, dict) or not _job.is_jid(entry.get("jid")):
                    continue
                job = self.job_for(run, entry["jid"], self.wait_start(entry, end), end)
                if job is None:
                    continue
                run.waited.append(job)
                self.wait_entry(job, entry, end, run.task.name)

    def wait_entry(self, job: Job, entry: Mapping[str, Any], stamp: float, waiter: str) -> None:
        """One job of an async_wait (or async_launch ``wait: true``) result."""
        state = entry.get("state")
        if state not in REPORT_STATES:
            state = _job.FAILED if entry.get("failed") else _job.RUNNING
            if entry.get("finished") and not entry.get("failed"):
                state = _job.FINISHED
        if state in (_job.QUEUED, _job.RUNNING):
            job.last_running = stamp
            if job.state in _job.ACTIVE_STATES:
                job.state = state
            return
        if job.seen is not None:
            return  # an earlier wait already saw it end
        job.state = state
        job.waited_by = waiter
        job.msg = str(entry.get("msg") or "")[:300]
        if state == _job.KILL_FAILED:
            job.last_running = stamp  # it may still run
            return
        job.seen = stamp
        inner = entry.get("result")
        if isinstance(inner, dict):
            self.module_times(job, inner, stamp)
        elapsed = seconds(entry.get("elapsed"))
        if elapsed is not None and job.own is None:
            job.own = elapsed
        ago = seconds(entry.get("ended_ago"))
        if ago is not None and job.end_source != END_FROM_MODULE:
            job.end = stamp - ago
            job.end_source = END_FROM_WAIT
            if job.own is not None:
                job.start = max(job.launched, job.end - job.own)
        self._settle_end(job)

    def job_ended(self, job: Job, data: Mapping[str, Any], failed: bool, seen: float) -> None:
        """An async_status-like result (the job file's record) says the job ended."""
        msg = str(data.get("msg") or "")
        if _job.flag(data.get("skipped")) and not failed:
            job.state = _job.SKIPPED
        elif data.get(_job.KILLED_MARK) is True:
            job.state = _job.KILLED
        elif "did not complete within the requested time" in msg or msg == _job.TIMEOUT_MSG:
            job.state = _job.TIMEOUT
        elif failed or _job.flag(data.get("failed")) or data.get("failed_when_result"):
            job.state = _job.FAILED
        else:
            job.state = _job.FINISHED
        job.msg = msg[:300] if job.state != _job.FINISHED else ""
        job.seen = seen
        self.module_times(job, data, seen)
        self._settle_end(job)

    def _settle_end(self, job: Job) -> None:
        """No measured end yet: the job file's, else the moment a wait saw it (a bound)."""
        if job.end is not None:
            return
        found = self.read_local_job_file(job)
        ended = found is not None and found.record is not None and record_state(found.record)
        if found is not None and found.mtime is not None and ended in _job.ENDED_STATES:
            end = self.from_epoch(found.mtime)
            if end is not None and self._plausible(job, end, job.seen):
                job.end = end
                job.end_source = END_FROM_JOB_FILE
                return
        job.end = job.seen
        job.end_source = END_FROM_SEEN

    def module_times(self, job: Job, data: Mapping[str, Any], until: float) -> None:
        """The module's own start/end/delta (command, shell), when its clock agrees."""
        reported = {k: data[k] for k in ("start", "end", "delta") if isinstance(data.get(k), str)}
        if not reported:
            return
        job.reported = reported
        delta = _job.parse_delta(reported.get("delta"))
        if delta is not None:
            job.own = delta
        start, end = self.host_stamp(reported.get("start")), self.host_stamp(reported.get("end"))
        if start is None or end is None or not self._plausible(job, end, until, start):
            return  # another timezone or a skewed host clock: don't place it
        job.start = max(job.launched, start)
        job.end = end
        job.end_source = END_FROM_MODULE

    @staticmethod
    def _plausible(job: Job, end: float, until: float | None, start: float | None = None) -> bool:
        first = start if start is not None else end
        last = until if until is not None else end
        return job.launched - CLOCK_SLACK <= first and end <= last + CLOCK_SLACK

    # -- matching waits to launches ----------------------------------------------------------

    def module_start(self, data: Mapping[str, Any]) -> float | None:
        inner = data.get("async_result")
        source = inner if isinstance(inner, dict) else data
        return self.host_stamp(source.get("start"))

    @staticmethod
    def wait_start(entry: Mapping[str, Any], stamp: float) -> float | None:
        """When an async_wait job started, from its ended_ago and elapsed (host clock)."""
        ago, elapsed = seconds(entry.get("ended_ago")), seconds(entry.get("elapsed"))
        if ago is None or elapsed is None:
            return None
        return stamp - ago - elapsed

    def job_for(self, run: HostRun, jid: str, started: float | None, stamp: float) -> Job | None:
        """The job a wait reports on: by job id, else a no_log launch of this host by time.

        A no_log launch hides its job id. The wait's job is the no_log launch of this host
        that started last before the job itself started. Without the job's start time, a
        single candidate is taken; between several, none is: the report says so.
        """
        job = self.jobs.get((run.host, jid))
        if job is not None:
            return job
        candidates = self.hidden.get(run.host) or []
        if not candidates:
            return None  # launched outside this run of ansible-playbook
        if started is not None:
            before = [j for j in candidates if j.launched <= started + 0.1 and j.launched <= stamp]
            job = max(before, key=lambda j: j.launched) if before else None
        elif len(candidates) == 1:
            job = candidates[0]
        if job is None:
            return None
        candidates.remove(job)
        self.jobs[(run.host, jid)] = job
        return job
