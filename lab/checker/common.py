# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every step's grader shares: the context, the grade, the jobs as the hosts saw them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hosts import Hosts, HostView
from .messages import both
from .record import Job
from .run import REPO, Run, run

# The collection's shared code, loaded once at start (load_shared): Ansible's collection
# loader, set up later in this process by the host look-ups, drops every module imported as
# ansible_collections.* before it, so the checker keeps the modules themselves.
_SHARED: dict[str, Any] = {}


def load_shared() -> None:
    from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job
    from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import _timing

    _SHARED.update(job=_job, timing=_timing)


def job_model() -> Any:
    """The collection's job model (states, jid parts): never redefined here."""
    return _SHARED["job"]


def max_running(spans: list[tuple[float, float]]) -> int:
    """The collection's one definition of jobs running at once."""
    return _SHARED["timing"].max_running(spans)


@dataclass
class Grade:
    measured: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)

    def see(self, english: str, french: str, **fields: Any) -> None:
        self.measured.append(both(english, french, **fields))

    def lack(self, what: tuple[str, str], hint: tuple[str, str], **fields: Any) -> None:
        self.missing.append((both(*what, **fields), both(*hint, **fields)))

    @property
    def passed(self) -> bool:
        return not self.missing


@dataclass
class Context:
    step: str
    inventory: Path
    file: Path | None
    quiet: bool = False
    _hosts: Hosts | None = None

    @property
    def reference(self) -> bool:
        return self.file is None

    @property
    def hosts(self) -> Hosts:
        if self._hosts is None:
            self._hosts = Hosts(str(self.inventory))
        return self._hosts

    def playbook(self, path: Path, extra: dict[str, Any], *args: str) -> Run:
        argv = [
            "ansible-playbook",
            "-i",
            str(self.inventory),
            str(path),
            "-e",
            json.dumps(extra),
            *args,
        ]
        return self.command(argv)

    def command(self, argv: list[str]) -> Run:
        if not self.quiet:
            print(
                both("Running: {c}", "Lancement : {c}", c=" ".join(_short(a) for a in argv)),
                flush=True,
            )
        return run(argv, quiet=self.quiet)


def _short(arg: str) -> str:
    text = arg if len(arg) < 120 else arg[:117] + "..."
    return text.replace(str(REPO) + "/", "")


@dataclass
class JobSeen:
    """A job as its host's job file showed it when the checker looked."""

    job: Job
    view: HostView
    offset: float  # host clock minus controller clock (0 when they are the same clock)

    @property
    def info(self) -> dict[str, Any]:
        return self.view.jobs.get(self.job.jid, {})

    @property
    def record(self) -> dict[str, Any]:
        return self.info.get("record") or {}

    @property
    def state(self) -> str:
        model = job_model()
        if not self.info.get("exists"):
            return model.UNKNOWN
        if not self.record:
            return model.CORRUPT
        return model.record_state(self.record)

    @property
    def alive(self) -> bool:
        return bool(self.info.get("pids"))

    @property
    def span(self) -> tuple[float, float] | None:
        start, end = self.info.get("start"), self.info.get("end")
        return (start, end) if start is not None and end is not None else None

    def host_time(self, controller_time: float) -> float:
        return controller_time + self.offset


def look(
    ctx: Context,
    jobs: list[Job],
    files: list[str] | None = None,
    run: Run | None = None,
    touch: list[str] | None = None,
) -> tuple[list[JobSeen], dict[str, HostView]]:
    """One probe of every host that has jobs (or of the given files' hosts)."""
    model = job_model()
    jobs = sorted(jobs, key=lambda j: (j.host, j.launched_at))
    hosts = sorted({j.host for j in jobs}) or ctx.hosts.names()
    wanted = {h: {j.jid: model.jid_prefix(j.jid) for j in jobs if j.host == h} for h in hosts}
    before = time.time()
    views = ctx.hosts.probe(hosts, jobs=wanted, files=files, touch=touch)
    after = time.time()
    seen = []
    for job in jobs:
        view = views[job.host]
        same_clock = before - 0.5 <= view.now <= after + 0.5
        offset = 0.0 if same_clock else view.now - (before + after) / 2
        if run is not None and not view.jobs.get(job.jid, {}).get("exists"):
            returned(view, job, run)
        seen.append(JobSeen(job, view, offset))
    return seen, views


def returned(view: HostView, job: Job, run: Run) -> None:
    """A job file a wait deleted (async_wait cleans up): the record it read on the host instead."""
    from datetime import datetime

    for report in reversed(run.record.wait_reports(job.host, job.jid)):
        record = report.get("result")
        if not isinstance(record, dict):
            continue
        info: dict[str, Any] = {
            "exists": True,
            "record": record,
            "path": "(read by the wait)",
            "pids": [],
        }
        for key in ("start", "end"):
            try:
                info[key] = datetime.strptime(record[key], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            except (KeyError, TypeError, ValueError):
                info[key] = None
        view.jobs[job.jid] = info
        return


def wait_until_ended(ctx: Context, jobs: list[Job], limit: float) -> list[JobSeen]:
    """Probe until every job's file says it ended (or `limit` seconds have passed)."""
    model = job_model()
    deadline = time.monotonic() + limit
    while True:
        seen, _ = look(ctx, jobs)
        if all(s.state in model.ENDED_STATES for s in seen) or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def by_host(items: list[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for item in items:
        grouped.setdefault(item.job.host if hasattr(item, "job") else item.host, []).append(item)
    return grouped


def seconds(value: float) -> str:
    return f"{value:.1f}"
