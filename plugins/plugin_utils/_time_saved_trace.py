# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time_saved run as Chrome trace-event JSON (Perfetto, chrome://tracing), from the report.

Private to the collection (controller side only). The JSON Object Format of the Trace
Event Format: ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``.

- one process (``pid``) per play, named ``N. play name`` by a ``process_name`` metadata event;
- one thread (``tid``) per host for its tasks, named by the host; a host's async jobs go on
  threads of their own (``host jobs``, one per row of overlapping jobs), since slices of one
  thread must nest and a job outlives the tasks after its launch;
- a complete event (``ph: "X"``, ``ts`` and ``dur`` in microseconds since the playbook
  start) per host-task, named by the task (category ``task``, ``launch``, ``poll`` or
  ``wait``: waits are their own slices), and per job, named by the job (category ``job``),
  from its launch to when a wait saw it end, with its real run nested in it (``job_run``)
  when known.
"""

from __future__ import annotations

from typing import Any

# A job track's tid: the host's tid times this, plus the job row (tasks keep the host's tid).
_JOB_TID = 1000


def micro(seconds: float | None) -> int:
    return round((seconds or 0.0) * 1_000_000)


def metadata(name: str, pid: int, args: dict[str, Any], tid: int | None = None) -> dict:
    event: dict[str, Any] = {"name": name, "ph": "M", "pid": pid, "args": args}
    if tid is not None:
        event["tid"] = tid
    return event


def complete(name: str, cat: str, start: float, end: float, pid: int, tid: int, args: dict):
    start_us = micro(start)
    return {
        "name": name,
        "cat": cat,
        "ph": "X",
        "ts": start_us,
        "dur": max(1, micro(end) - start_us),
        "pid": pid,
        "tid": tid,
        "args": args,
    }


def job_label(job: dict[str, Any]) -> str:
    if job.get("name"):
        return f"job {job['name']}"
    if job.get("jid"):
        return f"job {job['jid']}"
    return f"job of {job['task']}"


class Trace:
    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.events: list[dict[str, Any]] = []
        self.hosts: dict[str, int] = {}  # host -> tid
        self.named: set[tuple[int, int]] = set()

    def tid(self, pid: int, host: str, row: int | None = None) -> int:
        base = self.hosts.setdefault(host, len(self.hosts) + 1)
        tid = base if row is None else base * _JOB_TID + row
        if (pid, tid) not in self.named:
            self.named.add((pid, tid))
            name = host if row is None else f"{host} jobs" + (f" ({row + 1})" if row else "")
            self.events.append(metadata("thread_name", pid, {"name": name}, tid))
            self.events.append(metadata("thread_sort_index", pid, {"sort_index": tid}, tid))
        return tid

    def render(self) -> dict[str, Any]:
        end = self.report.get("end") or 0.0
        for pid, play in enumerate(self.report["plays"], start=1):
            self.events.append(metadata("process_name", pid, {"name": f"{pid}. {play['name']}"}))
            self.events.append(metadata("process_sort_index", pid, {"sort_index": pid}))
            for task in play["tasks"]:
                self.task(pid, task)
            self.jobs(pid, play["jobs"], end)
        return {
            "traceEvents": self.events,
            "displayTimeUnit": "ms",
            "otherData": {
                "producer": "tplabs.async_tasks.time_saved",
                "report_version": self.report["version"],
                "playbook": self.report["playbook"],
                "started_at": self.report.get("started_at"),
                "wall": self.report["wall"],
                "baseline": self.report["baseline"],
                "speedup": self.report["speedup"],
            },
        }

    def task(self, pid: int, task: dict[str, Any]) -> None:
        cat = task["kind"] if task["kind"] != "task" else "task"
        for host, entry in task["hosts"].items():
            args = {
                "status": entry["status"],
                "seconds": entry["duration"],
                "baseline": entry["baseline"],
            }
            if entry.get("runs", 1) > 1:
                args["runs"] = entry["runs"]
            tid = self.tid(pid, host)
            self.events.append(
                complete(task["name"], cat, entry["start"], entry["end"], pid, tid, args)
            )

    def jobs(self, pid: int, jobs: list[dict[str, Any]], end: float) -> None:
        rows: dict[str, list[float]] = {}
        for job in sorted(jobs, key=lambda j: j["launched"]):
            stop = job["finished"] if job["finished"] is not None else end
            row_ends = rows.setdefault(job["host"], [])
            row = next((i for i, e in enumerate(row_ends) if e <= job["launched"]), None)
            if row is None:
                row = len(row_ends)
                row_ends.append(stop)
            row_ends[row] = stop
            tid = self.tid(pid, job["host"], row)
            args = {
                "state": job["state"],
                "task": job["task"],
                "baseline": job["baseline"],
                "end_source": job.get("end_source"),
            }
            if job.get("jid"):
                args["jid"] = job["jid"]
            if job.get("waited_by"):
                args["waited_by"] = job["waited_by"]
            name = job_label(job)
            self.events.append(complete(name, "job", job["launched"], stop, pid, tid, args))
            if job.get("own_end") is not None and job.get("own_start") is not None:
                run_start = min(max(job["own_start"], job["launched"]), stop)
                run_end = max(run_start, min(job["own_end"], stop))
                run_args = {"seconds": job.get("own_duration")}
                self.events.append(
                    complete("run", "job_run", run_start, run_end, pid, tid, run_args)
                )


def render_trace(report: dict[str, Any]) -> dict[str, Any]:
    """The trace document (a dict: dump it with json)."""
    return Trace(report).render()
