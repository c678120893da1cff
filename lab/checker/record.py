# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the recorder callback saw of a run: tasks, results, background jobs, waits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WAIT_ACTIONS = {
    "ansible.builtin.async_status": "async_status",
    "ansible.legacy.async_status": "async_status",
    "async_status": "async_status",
    "tplabs.async_tasks.async_wait": "async_wait",
    "async_wait": "async_wait",
}
LAUNCH_ACTIONS = {"tplabs.async_tasks.async_launch", "async_launch"}
FINAL = {"ok", "failed", "ignored", "skipped", "unreachable"}


def number(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass
class Task:
    uuid: str
    name: str
    action: str
    async_val: int
    poll: int
    throttle: int
    failed_when: list[str]
    loop: bool
    play: int

    @property
    def background(self) -> bool:
        """A core async launch that does not wait (async > 0, poll 0)."""
        return self.async_val > 0 and self.poll == 0

    @property
    def waiter(self) -> str:
        """async_status or async_wait, or async_launch (which can wait for its own jobs)."""
        return WAIT_ACTIONS.get(self.action) or (
            "async_launch" if self.action in LAUNCH_ACTIONS else ""
        )

    @property
    def title(self) -> str:
        """The task's name without its role prefix ("role : name")."""
        return self.name.split(" : ", 1)[-1]


@dataclass
class Result:
    task: Task
    host: str
    status: str
    at: float
    result: dict[str, Any]
    started_at: float | None = None

    @property
    def failed(self) -> bool:
        return self.status in {"failed", "unreachable"}


@dataclass
class Job:
    """One background job a task launched on a host."""

    host: str
    jid: str
    task: Task
    launched_at: float  # controller time when the launch task returned for this host
    result: dict[str, Any] = field(default_factory=dict)


def _failed_when(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _templated(task: Task, fields: dict[str, Any]) -> None:
    """The values the worker templated (a loop's own result may still hold the template)."""
    for key, attr in (("async_val", "async_val"), ("poll", "poll"), ("throttle", "throttle")):
        try:
            setattr(task, attr, int(fields[key]))
        except (KeyError, TypeError, ValueError):
            continue


class Record:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.tasks: dict[str, Task] = {}
        for t in doc.get("tasks", []):
            self.tasks[t["uuid"]] = Task(
                uuid=t["uuid"],
                name=t.get("name") or "",
                action=t.get("action") or "",
                async_val=number(t.get("async")),
                poll=number(t.get("poll"), 15),
                throttle=number(t.get("throttle")),
                failed_when=_failed_when(t.get("failed_when")),
                loop=bool(t.get("loop")),
                play=number(t.get("play")),
            )
        self.results: list[Result] = []
        # when each loop item's launch returned, by (host, jid): a launch's items only (a
        # looped async_status's items carry the same jids, and come back later)
        self.item_times: dict[tuple[str, str], float] = {}
        starts: dict[tuple[str, str], float] = {}
        for r in doc.get("results", []):
            task = self.tasks.get(r["task"])
            if task is None:
                continue
            _templated(task, r.get("fields") or {})
            jid = (r.get("result") or {}).get("ansible_job_id")
            launch = task.async_val > 0 or task.action in LAUNCH_ACTIONS
            if launch and r["status"].startswith("item_") and isinstance(jid, str):
                self.item_times.setdefault((r["host"], jid), r["at"])
            if r["status"] == "start":
                starts[(r["task"], r["host"])] = r["at"]
            elif r["status"] in FINAL:
                started = starts.pop((r["task"], r["host"]), None)
                self.results.append(
                    Result(task, r["host"], r["status"], r["at"], r.get("result") or {}, started)
                )

    @property
    def complete(self) -> bool:
        return "stats" in self.doc

    @property
    def ended(self) -> float | None:
        return self.doc.get("ended")

    def stats(self, host: str) -> dict[str, int]:
        return self.doc.get("stats", {}).get(host, {})

    def jobs(self) -> list[Job]:
        """Every job a core async task launched, per host (loop items included)."""
        jobs = []
        for res in self.results:
            if res.task.async_val <= 0 and res.task.action not in LAUNCH_ACTIONS:
                continue
            parts = (
                res.result.get("results")
                if isinstance(res.result.get("results"), list)
                else [res.result]
            )
            for part in parts:
                jids = [part.get("ansible_job_id")] + [
                    j.get("jid") for j in part.get("jobs") or [] if isinstance(j, dict)
                ]
                for jid in jids:
                    if isinstance(jid, str) and jid:
                        at = self.item_times.get((res.host, jid), res.at)
                        jobs.append(Job(res.host, jid, res.task, at, part))
        return jobs

    def background_jobs(self) -> list[Job]:
        return [j for j in self.jobs() if j.task.background]

    def waits(self) -> list[Result]:
        """Results of the tasks that waited for jobs (async_status, async_wait)."""
        return [r for r in self.results if r.task.waiter and r.status != "skipped"]

    def task_results(self, task: Task) -> list[Result]:
        return [r for r in self.results if r.task.uuid == task.uuid]

    def wait_reports(self, host: str, jid: str) -> list[dict[str, Any]]:
        """What the waits (async_status, async_wait) reported about one job, in order."""
        seen = []
        for res in self.waits():
            if res.host != host:
                continue
            about = {"waiter": res.task.waiter, "task": res.task.title, "status": res.status}
            parts = (
                res.result.get("results")
                if isinstance(res.result.get("results"), list)
                else [res.result]
            )
            for part in parts:
                if part.get("ansible_job_id") == jid:
                    seen.append({**about, **part})
                for job in part.get("jobs") or []:
                    if isinstance(job, dict) and job.get("jid") == jid:
                        seen.append({**about, **job})
        return seen
