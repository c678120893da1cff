# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time_saved text recap, rendered from the report dict alone.

Private to the collection (controller side only). ``recap`` returns lines tagged with a
colour role (``ok``, ``warn``, ``error`` or None) and banners; the callback prints them with
its display, so this module needs no ansible import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_model import (
    REPORT_STATES,
)

# States whose jobs ran as they should: not worth a line of their own.
_QUIET_STATES = frozenset({"finished", "skipped"})


@dataclass(frozen=True)
class Line:
    text: str
    colour: str | None = None  # ok | warn | error
    banner: bool = False


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def recap(report: dict[str, Any], top: int = 5, width: int = 80) -> list[Line]:
    """A block per play, then one for the playbook when it has several plays."""
    if report.get("start") is None:  # nothing ran (no hosts matched)
        return []
    lines: list[Line] = []
    for play in report["plays"]:
        lines += block(f"TIME SAVED [play: {play['name']}]", play, "end of play", top, width)
    if len(report["plays"]) != 1:
        title = f"TIME SAVED [playbook: {report['playbook']}]"
        lines += block(title, report, "end of playbook", top, width)
    return lines


def merged_hosts(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    hosts: dict[str, dict[str, Any]] = {}
    for play in report["plays"]:
        for name, counts in play["hosts"].items():
            target = hosts.setdefault(name, dict.fromkeys(counts, 0))
            for key, value in counts.items():
                target[key] = target.get(key, 0) + value
    return hosts


def block(title: str, figures: dict[str, Any], until: str, top: int, width: int) -> list[Line]:
    lines = [Line(title, banner=True)]
    saved = figures["saved"]
    lines.append(
        Line(
            f"wall {fmt(figures['wall'])} (first task start to {until}), "
            f"sequential baseline {fmt(figures['baseline'])}"
        )
    )
    colour = "ok" if saved > 0 else "warn"
    lines.append(Line(f"time saved {fmt(saved)}, speed-up {figures['speedup']:.2f}x", colour))
    if figures.get("batches", 1) > 1:
        lines.append(Line(f"serial: {figures['batches']} batches, one wall from first to last"))
    tasks = figures.get("tasks")
    if tasks is None:  # the playbook block
        tasks = [task for play in figures["plays"] for task in play["tasks"]]
        hosts = merged_hosts(figures)
    else:
        hosts = figures["hosts"]
    lines += host_lines(figures, hosts)
    lines += job_lines(figures)
    lines += what_if_lines(figures)
    lines += top_tasks(tasks, top, width)
    return lines


def host_lines(figures: dict[str, Any], hosts: dict[str, dict[str, Any]]) -> list[Line]:
    bad = [h for h in hosts.values() if h.get("failed") or h.get("unreachable")]
    line = f"hosts {len(hosts)}: {len(hosts) - len(bad)} ok"
    if bad:
        failed = sum(1 for h in hosts.values() if h.get("failed"))
        unreachable = sum(1 for h in hosts.values() if h.get("unreachable"))
        line += f", {failed} with failures, {unreachable} unreachable"
    states = figures.get("job_states") or {}
    if states:
        line += "; jobs " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in states.items())
    lines = [Line(line)]
    forgiven = [
        f"{n} {kind}"
        for kind in ("rescued", "ignored")
        if (n := sum(h.get(kind, 0) for h in hosts.values()))
    ]
    if forgiven:
        lines.append(
            Line(
                "failures " + " and ".join(forgiven) + " (ansible does not count them as "
                "failures: their time counts as work)"
            )
        )
    skipped = sum(h.get("skipped", 0) for h in hosts.values())
    if skipped:
        lines.append(
            Line(
                f"skipped host-tasks {skipped} took {fmt(figures.get('skipped_time', 0.0))} "
                "(counted in the baseline: a one-by-one run skips them too)"
            )
        )
    if figures.get("failed_time"):
        lines.append(
            Line(
                f"time on failed/unreachable hosts {fmt(figures['failed_time'])} "
                "(not counted in the baseline)",
                "error",
            )
        )
    return lines


def job_lines(figures: dict[str, Any]) -> list[Line]:
    lines = []
    for state, count in (figures.get("job_states") or {}).items():
        if state in _QUIET_STATES:
            continue
        if state == "running":
            meaning = "still running at the end of the playbook"
        else:
            meaning = REPORT_STATES.get(state, state)
        lines.append(
            Line(
                f"{count} job(s) {state.replace('_', ' ')}: {meaning}; only their launch counts",
                "warn",
            )
        )
    jobs = (
        figures["jobs"] if "jobs" in figures else [j for p in figures["plays"] for j in p["jobs"]]
    )
    bounded = sum(1 for job in jobs if job.get("end_bounds") and job["state"] == "finished")
    if bounded:
        lines.append(
            Line(
                f"{bounded} job end(s) known only as bounds (no module times, no job file, "
                "no async_wait ended_ago): their runs count up to when a wait saw them end"
            )
        )
    return lines


def what_if_lines(figures: dict[str, Any]) -> list[Line]:
    what_if = figures.get("what_if") or {}
    lines = []
    if "wall_if_sync" in what_if and abs(what_if["wall_if_sync"] - figures["wall"]) > 0.005:
        lines.append(
            Line(
                f"what-if (estimate): every async task synchronous, wall about "
                f"{fmt(what_if['wall_if_sync'])}"
            )
        )
    path = what_if.get("critical_path")
    if path and path.get("longest"):
        longest = path["longest"]
        lines.append(
            Line(
                f"critical path (estimate): {path['host']} ended last in {path['tasks_bounded']} "
                f"of {path['tasks']} tasks; longest: {longest['task']!r} on {longest['host']} "
                f"{fmt(longest['seconds'])}"
            )
        )
    return lines


def top_tasks(tasks: list[dict[str, Any]], top: int, width: int) -> list[Line]:
    if not top:
        return []
    ranked = sorted((t for t in tasks if t["saved"] > 0.005), key=lambda t: -t["saved"])[:top]
    if not ranked:
        return [Line("no task saved time: nothing ran in parallel long enough to show")]
    header = f"{'saved':>9} {'baseline':>9} {'span':>9} {'hosts':>5} {'jobs':>5}  "
    room = max(10, width - len(header) - 1)
    lines = [Line(header + "task")]
    for task in ranked:
        jobs = task["max_concurrent_jobs"]
        name = task["name"]
        if len(name) > room:
            name = name[: room - 1] + "~"
        lines.append(
            Line(
                f"{fmt(task['saved']):>9} {fmt(task['baseline']):>9} {fmt(task['span']):>9} "
                f"{task['max_concurrent_hosts']:>5} {'-' if jobs is None else jobs:>5}  {name}"
            )
        )
    lines.append(
        Line("(hosts/jobs: most hosts running the task / most of its jobs running at once)")
    )
    return lines
