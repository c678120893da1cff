# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time_saved report: every figure per run, play, task, host and job, as a plain dict.

Private to the collection (controller side only). Built once from a ``Recorder``; the text
recap, the JSON report, the SVG/HTML timeline and the Chrome trace all render this dict and
nothing else (docs/schemas/time_saved.schema.json describes it).

The model, in one place:

- the *work* of a host-run is what a one-by-one run would spend on it: the run itself, plus,
  for an async launch, its jobs' measured runs beyond the launch; a wait counts only its
  time when none of the jobs it reports on was alive (launched and not yet seen ended).
  Failed and unreachable runs add nothing, jobs that did not end with success nothing
  beyond their launch;
- the *sequential baseline* of a task is the length of its work; of a play, the length of
  every task's work that fell between this play's start and the next play's (so a job
  launched in one play and waited for in the next counts where it ran);
- a task's *saved* time is how much of its work ran beside more of its own work, with the
  hand-off tolerance, from ``_timing`` like every "at once" figure; its *span* is
  baseline - saved;
- a play's *wall* runs from its first task start to its end; saved = baseline - wall.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import _timing
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_model import (
    END_FROM_POLL,
    END_FROM_SEEN,
    LOST_STATUSES,
    REPORT_STATES,
    RUN_STATUSES,
    HostRun,
    Job,
    PlayRecord,
    TaskRecord,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_recorder import (
    Recorder,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_whatif import (
    critical_path,
    wall_if_sync,
)

REPORT_VERSION = 2
# Ansible starts the next host in a freed worker slot a few milliseconds before it reports
# the previous host's result: overlaps shorter than this are a hand-off, not concurrency.
HANDOFF_TOLERANCE = 0.15
Span = tuple[float, float]


def job_lifetime(job: Job, end: float) -> Span:
    """From its launch to when a wait saw it end: what a wait waits for."""
    stop = job.seen if job.seen is not None else (job.end if job.end is not None else end)
    return job.launched, max(job.launched, stop)


def job_window(job: Job, end: float) -> Span:
    """When the job ran, as far as known (to the end of the playbook if it never ended)."""
    stop = job.end if job.end is not None else (job.seen if job.seen is not None else end)
    start = job.start
    if start is None and job.own is not None and job.end is not None:
        start = job.end - job.own
    start = job.launched if start is None else max(job.launched, min(start, stop))
    return start, max(start, stop)


def run_end(run: HostRun, fallback: float) -> float:
    return run.end if run.end is not None else fallback


def owned_jobs(run: HostRun, end: float) -> list[Job]:
    """The jobs this host-run launched (not poll > 0: those ran inside the run itself)."""
    stop = run_end(run, end)
    return [
        job
        for job in run.task.jobs
        if job.host == run.host and job.mode != "poll" and run.start <= job.launched <= stop
    ]


def run_work(run: HostRun, end: float) -> list[Span]:
    """The spans a one-by-one run would spend on this host-run (see the module docstring)."""
    return [span for spans in run_parts(run, end).values() for span in spans]


def run_parts(run: HostRun, end: float) -> dict[int, list[Span]]:
    """The work of a host-run: its own time (key 0), and each job's run beyond it (id(job))."""
    if run.status in LOST_STATUSES:
        return {0: []}
    stop = run_end(run, end)
    kept = _timing.subtract((run.start, stop), [job_lifetime(job, end) for job in run.waited])
    parts: dict[int, list[Span]] = {0: kept}
    for job in owned_jobs(run, end):
        span = job.run_span()
        if span is not None:
            parts[id(job)] = _timing.subtract(span, kept)
    return parts


def length(spans: list[Span]) -> float:
    return sum(e - s for s, e in spans)


class ReportBuilder:
    """Turns a closed Recorder into the report dict (times relative to the playbook start)."""

    def __init__(self, recorder: Recorder, tolerance: float = HANDOFF_TOLERANCE) -> None:
        self.rec = recorder
        self.tolerance = tolerance
        self.end = recorder.end if recorder.end is not None else recorder.clock()
        first = recorder.first_start if recorder.first_start is not None else self.end
        self.origin = recorder.origin if recorder.origin is not None else first
        self.work: dict[int, list[Span]] = {}  # id(task record) -> its work spans
        self.job_extra: dict[int, float] = {}  # id(job) -> its run beyond its launch

    def rel(self, value: float | None) -> float | None:
        return None if value is None else round(value - self.origin, 4)

    def build(self) -> dict[str, Any]:
        for play in self.rec.plays:
            for task in play.tasks:
                spans: list[Span] = []
                for run in task.runs:
                    for key, part in run_parts(run, self.end).items():
                        spans += part
                        if key:
                            self.job_extra[key] = length(part)
                self.work[id(task)] = spans
        plays = [self.play(index, play) for index, play in enumerate(self.rec.plays)]
        first = self.rec.first_start
        wall = 0.0 if first is None else max(0.0, self.end - first)
        baseline = sum(play["baseline"] for play in plays)
        jobs = [job for play in plays for job in play["jobs"]]
        epoch = self.rec.epoch
        started = datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat() if epoch else None
        sync = wall - sum(p["wall"] - p["what_if"]["wall_if_sync"] for p in plays)
        return {
            "version": REPORT_VERSION,
            "playbook": ", ".join(self.rec.playbooks) or "playbook",
            "started_at": started,
            "started_at_epoch": epoch,
            "clock": "monotonic seconds since the playbook start",
            "wall_from": "first task start",
            "wall_to": "end of playbook",
            "start": self.rel(first),
            "end": self.rel(self.end),
            **figures(wall, baseline),
            "failed_time": round(sum(p["failed_time"] for p in plays), 4),
            "skipped_time": round(sum(p["skipped_time"] for p in plays), 4),
            "job_states": count_states(jobs),
            "handoff_tolerance": self.tolerance,
            "host_groups": dict(self.rec.host_groups),
            "what_if": {"wall_if_sync": round(max(0.0, sync), 4), "estimate": True},
            "plays": plays,
        }

    def window(self, index: int) -> Span:
        """The part of the run attributed to a play: from its opening to the next one's."""
        plays = self.rec.plays
        start = plays[index].opened if index else float("-inf")
        end = plays[index + 1].opened if index + 1 < len(plays) else float("inf")
        return start, end

    def play(self, index: int, play: PlayRecord) -> dict[str, Any]:
        play_end = play.end if play.end is not None else self.end
        start, stop = self.window(index)
        baseline = sum(
            _timing.length_within(self.work[id(task)], start, stop)
            for other in self.rec.plays
            for task in other.tasks
        )
        tasks = [self.task(task) for task in play.tasks]
        jobs = [self.job(job) for task in play.tasks for job in task.jobs]
        runs = [run for task in play.tasks for run in task.runs]
        wall = 0.0 if play.start is None else max(0.0, play_end - play.start)
        lost = sum((self.duration(r) for r in runs if r.status in LOST_STATUSES), 0.0)
        skipped = sum((self.duration(r) for r in runs if r.status == "skipped"), 0.0)
        path = critical_path(play, self.end, self.rel)
        return {
            "name": play.name,
            "start": self.rel(play.start),
            "end": self.rel(play_end),
            "batches": play.batches,
            **figures(wall, baseline),
            "failed_time": round(lost, 4),
            "skipped_time": round(skipped, 4),
            "hosts": self.hosts(runs),
            "tasks": tasks,
            "jobs": jobs,
            "job_states": count_states(jobs),
            "what_if": {
                "wall_if_sync": round(wall_if_sync(play, wall, self.run_work, self.end), 4),
                "estimate": True,
                "critical_path": path,
            },
        }

    def run_work(self, run: HostRun) -> list[Span]:
        return run_work(run, self.end)

    def duration(self, run: HostRun) -> float:
        return max(0.0, run_end(run, self.end) - run.start)

    def hosts(self, runs: list[HostRun]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for run in runs:
            entry = out.setdefault(run.host, {**dict.fromkeys(RUN_STATUSES, 0), "busy": 0.0})
            entry.setdefault("baseline", 0.0)
            if run.status in entry:
                entry[run.status] += 1
            entry["busy"] = round(entry["busy"] + self.duration(run), 4)
            entry["baseline"] = round(entry["baseline"] + length(run_work(run, self.end)), 4)
        return out

    def task(self, task: TaskRecord) -> dict[str, Any]:
        work = self.work[id(task)]
        baseline = length(work)
        saved = _timing.overlap_seconds(work, self.tolerance)
        runs = [(run.start, run_end(run, self.end)) for run in task.runs]
        windows = [job_window(job, self.end) for job in task.jobs]
        hosts: dict[str, Any] = {}
        for run in task.runs:
            self.host_entry(hosts, run, task.no_log)
        starts = [s for s, _e in runs + windows]
        ends = [e for _s, e in runs + windows]
        return {
            "name": task.name,
            "action": task.action,
            "kind": task.kind,
            "async": task.kind in ("launch", "poll"),
            "no_log": task.no_log,
            "start": self.rel(min(starts)) if starts else None,
            "end": self.rel(max(ends)) if ends else None,
            "span": round(baseline - saved, 4),
            "baseline": round(baseline, 4),
            "saved": round(saved, 4),
            "hosts": hosts,
            "max_concurrent_hosts": _timing.max_running(runs, self.tolerance),
            "max_concurrent_jobs": _timing.max_running(windows, self.tolerance)
            if windows
            else None,
            "jobs": len(windows),
        }

    def host_entry(self, hosts: dict[str, Any], run: HostRun, no_log: bool) -> None:
        duration = self.duration(run)
        entry = hosts.setdefault(run.host, {"status": run.status, "start": self.rel(run.start)})
        entry["runs"] = entry.get("runs", 0) + 1
        entry["status"] = run.status
        entry["end"] = self.rel(run_end(run, self.end))
        entry["duration"] = round(duration + entry.get("duration", 0.0), 4)
        counted = length(run_work(run, self.end))
        entry["baseline"] = round(counted + entry.get("baseline", 0.0), 4)
        if run.item_ends and not no_log:
            entry["items"] = len(run.item_ends)

    def job(self, job: Job) -> dict[str, Any]:
        seen = job.seen
        measured = job.end_source not in (None, END_FROM_SEEN, END_FROM_POLL)
        own_end = job.end if measured else None
        own_start = job.start
        if own_start is None and own_end is not None and job.own is not None:
            own_start = max(job.launched, own_end - job.own)
        out: dict[str, Any] = {
            "host": job.host,
            "jid": None if job.hidden else job.jid,
            "name": None if job.hidden else job.name,
            "task": job.task.name,
            "mode": job.mode,
            "launched": self.rel(job.launched),
            "launch_end": self.rel(job.launch_end),
            "finished": self.rel(seen),
            "duration": round((seen if seen is not None else self.end) - job.launched, 4),
            "own_duration": None if job.own is None else round(job.own, 4),
            "own_start": self.rel(own_start) if own_end is not None else None,
            "own_end": self.rel(own_end),
            "end_source": job.end_source,
            "end_bounds": self.end_bounds(job, measured),
            "baseline": round(self.job_extra.get(id(job), 0.0), 4),
            "state": job.state,
            "meaning": REPORT_STATES.get(job.state, ""),
            "waited_by": job.waited_by,
            "polls": job.polls,
        }
        if job.msg:
            out["msg"] = job.msg
        if job.reported and not job.hidden:
            out["reported"] = job.reported
        if job.item is not None and not job.hidden:
            out["item"] = job.item
        return out

    def end_bounds(self, job: Job, measured: bool) -> list[float | None] | None:
        """Without a measured end: after the last check that saw it running, by the wait."""
        if measured or job.seen is None:
            return None
        low = max(v for v in (job.last_running, job.launch_end, job.launched) if v is not None)
        return [self.rel(min(low, job.seen)), self.rel(job.seen)]


def figures(wall: float, baseline: float) -> dict[str, float]:
    return {
        "wall": round(wall, 4),
        "baseline": round(baseline, 4),
        "saved": round(baseline - wall, 4),
        "speedup": round(baseline / wall, 4) if wall > 0 else 1.0,
    }


def count_states(jobs: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["state"]] = counts.get(job["state"], 0) + 1
    return dict(sorted(counts.items()))


def build_report(recorder: Recorder, tolerance: float = HANDOFF_TOLERANCE) -> dict[str, Any]:
    return ReportBuilder(recorder, tolerance).build()
