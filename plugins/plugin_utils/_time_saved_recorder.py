# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time_saved callback's logic class: it records events as plain values.

Private to the collection (controller side only). ``CallbackModule`` only turns ansible's
objects into names, ``TaskInfo`` and result dictionaries and forwards them here, so this
class is tested directly, on any ansible-core, without core-private classes.

Serial batches: ansible starts the play again for each batch with the same play and task
ids; a repeated start of the current play is one more batch of the same play record, so the
play's wall runs from its first batch to the end of its last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_model import (
    ASYNC_LAUNCH_ACTIONS,
    ASYNC_STATUS_ACTIONS,
    ASYNC_WAIT_ACTIONS,
    CENSORED,
    END_FROM_JOB_FILE,
    NOT_WAITED,
    HostRun,
    Job,
    PlayRecord,
    TaskInfo,
    TaskRecord,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_results import (
    ResultReaders,
    record_state,
)

FAILED_EVENT = frozenset({"failed", "ignored", "rescued"})


def main_group(groups: Iterable[tuple[str, int]]) -> str:
    """The deepest group a host is in (name, depth pairs), for folding the timeline."""
    named = [(depth, name) for name, depth in groups if name not in ("all", "")]
    if not named:
        return "ungrouped"
    return max(named, key=lambda pair: (pair[0], pair[1]))[1]


NO_RUN = ("skipped", "unreachable")  # statuses of a host run that launched nothing


class Recorder(ResultReaders):
    """Every time the report needs, recorded on one clock (monotonic by default)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self.playbooks: list[str] = []
        self.origin: float | None = None  # clock value at the playbook start
        self.epoch: float | None = None  # wall clock at the same instant
        self.first_start: float | None = None
        self.end: float | None = None
        self.plays: list[PlayRecord] = []
        self.host_groups: dict[str, str] = {}
        self.open: dict[tuple[str, str], HostRun] = {}
        self.jobs: dict[tuple[str, str], Job] = {}
        self.hidden: dict[str, list[Job]] = {}  # no_log launches: job id unknown
        self.censored_waits: dict[str, float] = {}  # last no_log wait per host
        self.async_done: dict[tuple[str, str], float] = {}
        self.polls: dict[tuple[str, str], int] = {}
        self.last_poll: dict[tuple[str, str], float] = {}
        self.forks = 0  # ansible's forks, when known: the most worker slots at once
        self.handoffs: list[float] = []  # starts that prove an open run had ended

    # -- clock --------------------------------------------------------------------------

    def _stamp(self) -> float:
        stamp = self.clock()
        if self.origin is None:
            self.origin = stamp
            self.epoch = self.wall_clock()
        return stamp

    def from_epoch(self, epoch: float) -> float | None:
        """A wall-clock time (epoch seconds) on the recorder's clock."""
        if self.origin is None or self.epoch is None:
            return None
        return self.origin + (epoch - self.epoch)

    # -- playbook and plays --------------------------------------------------------------

    def playbook_start(self, name: str) -> None:
        self._stamp()
        self.playbooks.append(name or "playbook")

    def play_start(self, key: str, name: str) -> None:
        stamp = self._stamp()
        # every result of the last play (or batch) was handled before this: a run still
        # open never got one, and must not count as holding a worker slot
        self.open.clear()
        self.handoffs.clear()
        current = self.plays[-1] if self.plays else None
        if current is not None and current.key == key:
            current.batches += 1  # serial: the next batch of the same play
            return
        if current is not None and current.end is None:
            current.end = stamp
        self.plays.append(PlayRecord(key=key, name=name or "play", opened=stamp))

    def _play(self, stamp: float) -> PlayRecord:
        if not self.plays:
            self.plays.append(PlayRecord(key="", name="play", opened=stamp))
        return self.plays[-1]

    def _task(self, info: TaskInfo, stamp: float) -> TaskRecord:
        play = self._play(stamp)
        record = play.by_uuid.get(info.uuid)
        if record is None:
            record = TaskRecord(
                uuid=info.uuid,
                name=info.name,
                action=info.action,
                play=play,
                no_log=info.no_log,
                async_val=info.async_val,
            )
            play.by_uuid[info.uuid] = record
            play.tasks.append(record)
        return record

    # -- runner events ---------------------------------------------------------------------

    def task_start(self, host: str, info: TaskInfo, groups: Iterable[tuple[str, int]] = ()) -> None:
        stamp = self._stamp()
        self._note_handoff(info, stamp)
        self._begin(host, info, stamp)
        if host not in self.host_groups:
            self.host_groups[host] = main_group(groups)

    def _begin(self, host: str, info: TaskInfo, stamp: float) -> HostRun:
        record = self._task(info, stamp)
        run = HostRun(task=record, host=host, start=stamp)
        record.runs.append(run)
        self.open[(host, info.uuid)] = run
        if record.play.start is None:
            record.play.start = stamp
        if self.first_start is None:
            self.first_start = stamp
        return run

    def _note_handoff(self, info: TaskInfo, stamp: float) -> None:
        """A start while every worker slot is taken proves that an open run has ended.

        Ansible starts a host in a worker slot as soon as the slot's process has exited,
        then reports that process's result when its main loop gets back to results: under
        load, seconds later. With ``forks`` (and the task's ``throttle``) known, a start
        beyond the limit means that many open runs had already ended: their ends are the
        starts recorded here, matched in order to the next results.
        """
        ended = 0
        if self.forks > 0:
            ended = len(self.open) - (self.forks - 1)
        if info.throttle > 0:
            mine = sum(1 for run in self.open.values() if run.task.uuid == info.uuid)
            ended = max(ended, mine - (info.throttle - 1))
        while len(self.handoffs) < ended:
            self.handoffs.append(stamp)

    def _handed_off(self, run: HostRun, stamp: float) -> float:
        """The run's end: the first pending hand-off, if its slot was freed before this."""
        while self.handoffs and self.handoffs[0] < run.start:
            self.handoffs.pop(0)  # cannot be this run's: it was not running yet
        return min(stamp, self.handoffs.pop(0)) if self.handoffs else stamp

    def item_end(self, host: str, uuid: str) -> None:
        run = self.open.get((host, uuid))
        if run is not None:
            if run.item_ends is None:
                run.item_ends = []
            run.item_ends.append(self._stamp())

    def task_end(
        self,
        host: str,
        info: TaskInfo,
        status: str,
        data: Mapping[str, Any],
        ignore_errors: bool = False,
    ) -> None:
        """A host's result for a task: ok, changed, failed, skipped or unreachable."""
        stamp = self._stamp()
        run = self.open.pop((host, info.uuid), None)
        if run is None:  # a result without a start (meta tasks, strategy skips)
            run = self._begin(host, info, stamp)
            del self.open[(host, info.uuid)]
        else:
            stamp = self._handed_off(run, stamp)
        if status == "failed" and ignore_errors:
            status = "ignored"
        elif status == "failed" and info.rescuable:
            status = "rescued"
        run.end = stamp
        run.status = status
        record = run.task
        record.no_log = record.no_log or info.no_log
        if info.name and info.name != record.name:
            record.name = info.name
        self._read_result(run, info, data, stamp, status in FAILED_EVENT)

    def _read_result(
        self, run: HostRun, info: TaskInfo, data: Mapping[str, Any], stamp: float, failed: bool
    ) -> None:
        record = run.task
        censored = record.no_log or "censored" in data
        if info.action in ASYNC_STATUS_ACTIONS or info.action in ASYNC_WAIT_ACTIONS:
            record.kind = "wait"
            if censored:
                self.censored_waits[run.host] = stamp
            elif info.action in ASYNC_WAIT_ACTIONS:
                self.read_async_wait(run, data, stamp)
            else:
                self.read_async_status(run, data, stamp, failed)
        elif info.action in ASYNC_LAUNCH_ACTIONS:
            record.kind = "launch"
            if not censored:
                self.read_async_launch(run, info, data, stamp)
        elif (info.async_val or info.async_templated) and run.status not in NO_RUN:
            self.read_launch(run, info, data, stamp, failed)

    def retry(self, host: str, info: TaskInfo, data: Mapping[str, Any]) -> None:
        """An ``until`` retry: an async_status retry saw its job still running."""
        if info.action not in ASYNC_STATUS_ACTIONS or "censored" in data:
            return
        jid = data.get("ansible_job_id")
        job = self.jobs.get((host, str(jid))) if jid else None
        if job is not None and not _job.flag(data.get("finished")):
            job.last_running = self._stamp()

    def async_poll(self, host: str, data: Mapping[str, Any]) -> None:
        """poll > 0: the worker polled its job and saw it still running."""
        jid = data.get("ansible_job_id")
        if jid:
            key = (host, str(jid))
            self.polls[key] = self.polls.get(key, 0) + 1
            self.last_poll[key] = self._stamp()

    def async_end(self, host: str, data: Mapping[str, Any]) -> None:
        """poll > 0: the worker's poll saw its job ended (before the task result)."""
        inner = data.get("async_result")
        jid = data.get("ansible_job_id") or (inner.get("ansible_job_id") if inner else None)
        if jid:
            self.async_done[(host, str(jid))] = self._stamp()

    # -- end of the playbook -------------------------------------------------------------------

    def close(
        self,
        failures: Mapping[str, int] | None = None,
        rescued: Mapping[str, int] | None = None,
    ) -> None:
        """The playbook ended: settle what only the end can tell.

        ``failures`` and ``rescued`` are ansible's own per-host counts (its recap): a host
        with no failure there had every failure rescued, one with no rescue had none.
        """
        stamp = self._stamp()
        self.end = stamp
        if self.plays and self.plays[-1].end is None:
            self.plays[-1].end = stamp
        if failures is not None and rescued is not None:
            self._reconcile(failures, rescued)
        for play in self.plays:
            for task in play.tasks:
                for job in task.jobs:
                    if job.state in _job.ACTIVE_STATES:
                        self._settle_unwaited(job, stamp)

    def _reconcile(self, failures: Mapping[str, int], rescued: Mapping[str, int]) -> None:
        for play in self.plays:
            for task in play.tasks:
                for run in task.runs:
                    if run.status == "failed" and not failures.get(run.host):
                        run.status = "rescued"
                    elif run.status == "rescued" and not rescued.get(run.host):
                        run.status = "failed"

    def _settle_unwaited(self, job: Job, stamp: float) -> None:
        """A job no wait saw end: its job file tells, when the controller can read it."""
        found = self.read_local_job_file(job)
        if found is not None and found.kind == "record" and found.record is not None:
            state = record_state(found.record)
            if state in _job.ENDED_STATES:
                job.state = state
                self.module_times(job, found.record, stamp)
                if job.end is None and found.mtime is not None:
                    job.end = self.from_epoch(found.mtime)
                    job.end_source = END_FROM_JOB_FILE
                job.msg = "never waited for: its job file says how it ended"
            else:
                job.state = state
                job.msg = "still running at the end of the playbook (its job file says so)"
            return
        if job.state == _job.KILL_FAILED:
            return
        waited = self.censored_waits.get(job.host)
        if waited is not None and waited >= job.launched:
            job.state = CENSORED
            job.msg = "a no_log wait may have seen it end"
            return
        job.state = NOT_WAITED
        job.msg = "never waited for: whether it ended is unknown to the controller"
        if job.limit and job.launched + job.limit <= stamp:
            job.msg += f"; its async limit ({job.limit:g} s) ended it by the end at the latest"
