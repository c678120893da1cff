# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time_saved what-if line: estimates from the recorded intervals, labelled as such.

Private to the collection (controller side only).

- Critical path: for each task of a play, the host-run that ended last bounded that task's
  end (with the linear strategy, the next task waited for it). The report lists them and
  names the host that bounded most tasks and the longest of those runs.
- Wall if every async task were synchronous: the play's wall, minus the span of its async
  launches and of its waits, plus, for each launch, the span its hosts would have taken
  running their jobs in the task (each host's work: its launch plus its jobs' measured
  runs beyond it, spread over as many hosts at once as the launch ran). Tasks run between a launch and its wait are assumed unchanged: the
  estimate is the same play with every job waited for where it was launched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import _timing
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_model import (
    HostRun,
    PlayRecord,
    TaskRecord,
)

Span = tuple[float, float]


def _runs(task: TaskRecord, end: float) -> list[Span]:
    return [(run.start, run.end if run.end is not None else end) for run in task.runs]


def critical_path(
    play: PlayRecord, end: float, rel: Callable[[float | None], float | None]
) -> dict[str, Any]:
    """Which host-run ended each task last; the host that did so most often."""
    steps = []
    for task in play.tasks:
        if not task.runs:
            continue
        last = max(task.runs, key=lambda run: run.end if run.end is not None else end)
        stop = last.end if last.end is not None else end
        steps.append(
            {
                "task": task.name,
                "host": last.host,
                "start": rel(last.start),
                "end": rel(stop),
                "seconds": round(stop - last.start, 4),
            }
        )
    if not steps:
        return {"host": None, "tasks_bounded": 0, "tasks": 0, "longest": None, "steps": []}
    host, bounded = Counter(step["host"] for step in steps).most_common(1)[0]
    longest = max(steps, key=lambda step: step["seconds"])
    return {
        "host": host,
        "tasks_bounded": bounded,
        "tasks": len(steps),
        "longest": longest,
        "steps": steps,
    }


def _sync_span(task: TaskRecord, work_of: Callable[[HostRun], list[Span]], end: float) -> float:
    """The span of a launch task had each host run its jobs inside the task."""
    per_host: dict[str, float] = {}
    starts: dict[str, float] = {}
    for run in task.runs:
        starts.setdefault(run.host, run.start)
        work = sum(stop - start for start, stop in work_of(run))
        per_host[run.host] = per_host.get(run.host, 0.0) + work
    if not per_host:
        return 0.0
    shifted = [(starts[host], starts[host] + seconds) for host, seconds in per_host.items()]
    at_once = max(1, _timing.max_running(_runs(task, end)))
    return max(_timing.union_length(shifted), sum(per_host.values()) / at_once)


def wall_if_sync(
    play: PlayRecord, wall: float, work_of: Callable[[HostRun], list[Span]], end: float
) -> float:
    """Estimated wall of the play with every async launch waited for in the task itself."""
    estimate = wall
    for task in play.tasks:
        if task.kind == "wait":
            estimate -= _timing.union_length(_runs(task, end))
        elif task.kind == "launch":
            estimate -= _timing.union_length(_runs(task, end))
            estimate += _sync_span(task, work_of, end)
    return max(0.0, estimate)
