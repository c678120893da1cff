# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time_saved timeline as SVG (a Gantt chart), rendered from the report dict alone.

Private to the collection (controller side only). One lane per host: its tasks on top,
its async jobs below. Above ``fold_above`` hosts, hosts are folded by group: one summary
lane per group, whose bars say how many of the group's hosts ran each task and how many
jobs ran at once (the per-host figures stay in the JSON report and the HTML table).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import _timing

TASK_COLOURS = {
    "ok": "#43a047",
    "changed": "#f5a623",
    "failed": "#d32f2f",
    "ignored": "#ef9a9a",
    "rescued": "#ef9a9a",
    "unreachable": "#6d1b1b",
    "skipped": "#b0b0b0",
    "running": "#9e9e9e",
}
JOB_COLOURS = {
    "finished": "#1e88e5",
    "failed": "#d32f2f",
    "timeout": "#8e24aa",
    "killed": "#6a1b9a",
    "kill_failed": "#c2185b",
    "orphaned": "#795548",
    "corrupt": "#795548",
    "unknown": "#bdbdbd",
    "censored": "#bdbdbd",
    "not_waited": "#90a4ae",
    "running": "#90a4ae",
    "queued": "#b0bec5",
}
# Worst first: the colour a folded bar takes when its hosts ended differently.
_SEVERITY = ("unreachable", "failed", "rescued", "ignored", "changed", "ok", "skipped", "running")
SVG_NS = "http://www.w3.org/2000/svg"
FOLD_ABOVE = 50
WIDTH, LEFT, RIGHT, TOP = 1300, 150, 30, 134
TASK_H, JOB_H, GAP, PAD = 22, 12, 3, 8


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def nice_step(span: float, target: int = 12) -> float:
    raw = max(span, 0.001) / target
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if step >= raw:
            return float(step)
    return 3600.0 * (int(raw // 3600) + 1)


def job_stop(job: dict[str, Any], end: float) -> float:
    return job["finished"] if job["finished"] is not None else end


@dataclass
class Lane:
    """One lane: a host, or a group of hosts when folded."""

    key: str
    label: str
    hosts: list[str]
    bars: list[dict[str, Any]] = field(default_factory=list)  # task bars
    jobs: list[dict[str, Any]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # sub-row of each job

    @property
    def height(self) -> int:
        rows = (max(self.rows) + 1) if self.rows else 0
        return PAD * 2 + TASK_H + rows * (JOB_H + GAP)


def hosts_in_order(report: dict[str, Any]) -> list[str]:
    hosts: dict[str, None] = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            hosts.update(dict.fromkeys(task["hosts"]))
        hosts.update(dict.fromkeys(job["host"] for job in play["jobs"]))
    return list(hosts)


def job_rows(jobs: list[dict[str, Any]], end: float) -> list[int]:
    """Sub-row of each job so that overlapping jobs of one lane don't hide each other."""
    row_ends: list[float] = []
    rows = []
    for job in jobs:
        for index, row_end in enumerate(row_ends):
            if row_end <= job["launched"]:
                row_ends[index] = job_stop(job, end)
                rows.append(index)
                break
        else:
            row_ends.append(job_stop(job, end))
            rows.append(len(row_ends) - 1)
    return rows


def host_lanes(report: dict[str, Any], hosts: list[str]) -> list[Lane]:
    lanes = {host: Lane(host, host, [host]) for host in hosts}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, entry in task["hosts"].items():
                lanes[host].bars.append({"task": task, "entry": entry, "count": 1})
        for job in play["jobs"]:
            lanes[job["host"]].jobs.append(job)
    return list(lanes.values())


def group_lanes(report: dict[str, Any], hosts: list[str]) -> list[Lane]:
    """Folded: per group, one bar per task from its first start to its last end there."""
    groups = report.get("host_groups") or {}
    lanes: dict[str, Lane] = {}
    for host in hosts:
        group = groups.get(host) or "ungrouped"
        lanes.setdefault(group, Lane(group, group, [])).hosts.append(host)
    for lane in lanes.values():
        members = set(lane.hosts)
        lane.label = f"{lane.key} ({len(lane.hosts)})"
        for play in report["plays"]:
            for task in play["tasks"]:
                entries = [e for h, e in task["hosts"].items() if h in members]
                if entries:
                    lane.bars.append(folded_bar(task, entries))
            lane.jobs += [job for job in play["jobs"] if job["host"] in members]
    return list(lanes.values())


def folded_bar(task: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = {entry["status"] for entry in entries}
    status = next((s for s in _SEVERITY if s in statuses), "ok")
    spans = [(entry["start"], entry["end"]) for entry in entries]
    entry = {
        "status": status,
        "start": min(s for s, _e in spans),
        "end": max(e for _s, e in spans),
        "duration": sum(e["duration"] for e in entries),
        "baseline": sum(e["baseline"] for e in entries),
        "at_once": _timing.max_running(spans),
    }
    return {"task": task, "entry": entry, "count": len(entries)}


class Svg:
    """Builds the SVG text lane by lane."""

    def __init__(self, report: dict[str, Any], lanes: list[Lane], folded: bool) -> None:
        self.report = report
        self.lanes = lanes
        self.folded = folded
        self.end = max(report.get("end") or 0.0, 0.001)
        self.scale = (WIDTH - LEFT - RIGHT) / self.end
        self.out: list[str] = []

    def x(self, value: float | None) -> float:
        return LEFT + (value or 0.0) * self.scale

    def render(self, standalone: bool) -> str:
        for lane in self.lanes:
            if not self.folded:
                lane.jobs.sort(key=lambda job: job["launched"])
                lane.rows = job_rows(lane.jobs, self.end)
            else:
                lane.rows = [0] if lane.jobs else []
        plays = [play for play in self.report["plays"] if play["start"] is not None]
        lanes_bottom = TOP + sum(lane.height for lane in self.lanes)
        height = lanes_bottom + 44 + 18 * len(plays)
        ns = f' xmlns="{SVG_NS}"' if standalone else ""
        self.out.append(
            f'<svg{ns} viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
            f'font-family="DejaVu Sans, Arial, sans-serif" font-size="12" role="img">'
        )
        self.head(height)
        self.axis(lanes_bottom)
        y = TOP
        for index, lane in enumerate(self.lanes):
            self.lane(lane, y, index)
            y += lane.height
        self.play_marks(plays, lanes_bottom)
        self.out.append(
            f'<text x="12" y="{height - 14}" fill="#607d8b" font-size="11">'
            f"tplabs.async_tasks.time_saved, report version {self.report['version']}; "
            f"{esc(self.report.get('started_at') or '')}</text></svg>"
        )
        text = "\n".join(self.out)
        if standalone:
            return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"
        return text

    def head(self, height: int) -> None:
        report = self.report
        title = (
            f"{report['playbook']}: wall {fmt(report['wall'])}, sequential baseline "
            f"{fmt(report['baseline'])}, saved {fmt(report['saved'])}, "
            f"speed-up {report['speedup']:.2f}x"
        )
        self.out.append(
            f"<title>{esc(title)}</title><defs>"
            '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="white" '
            'stroke-width="2" stroke-opacity="0.55"/></pattern></defs>'
            f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>'
            f'<text x="12" y="24" font-size="17" font-weight="bold">{esc(title)}</text>'
        )
        self.legend()
        what = (
            f"Folded: {sum(len(lane.hosts) for lane in self.lanes)} hosts in {len(self.lanes)} "
            "groups; each bar spans the group's hosts, hover it for how many ran it."
            if self.folded
            else "Top bar of each host lane: its tasks (lighter: waits). Bars below: its async "
            "jobs, from their launch to when a wait saw them end, solid where their real run is known."
        )
        self.out.append(
            f'<text x="12" y="68" fill="#455a64">{esc(what)}</text>'
            '<text x="12" y="84" fill="#455a64">Axis: seconds since the playbook start. Dashed '
            "lines: play starts. Hover a bar for its name and times.</text>"
        )

    def legend(self) -> None:
        items = [
            ("task ok", TASK_COLOURS["ok"], "task"),
            ("changed", TASK_COLOURS["changed"], "task"),
            ("failed", TASK_COLOURS["failed"], "task"),
            ("rescued/ignored", TASK_COLOURS["rescued"], "task"),
            ("skipped", TASK_COLOURS["skipped"], "task"),
            ("wait", TASK_COLOURS["ok"], "wait"),
            ("job finished", JOB_COLOURS["finished"], "job"),
            ("job failed", JOB_COLOURS["failed"], "job"),
            ("timeout/killed", JOB_COLOURS["timeout"], "job"),
            ("not waited/running", JOB_COLOURS["not_waited"], "job"),
            ("launch/poll lag", JOB_COLOURS["finished"], "lag"),
        ]
        lx = 12
        for label, colour, kind in items:
            if kind == "job":
                self.out.append(
                    f'<rect x="{lx}" y="38" width="22" height="10" fill="{colour}" '
                    'stroke="#263238" stroke-width="0.8"/>'
                    f'<rect x="{lx}" y="38" width="22" height="10" fill="url(#hatch)"/>'
                )
            elif kind == "lag":
                self.out.append(
                    f'<rect x="{lx}" y="38" width="22" height="10" fill="{colour}" '
                    'fill-opacity="0.3" stroke="#263238" stroke-width="0.8"/>'
                )
            else:
                opacity = ' fill-opacity="0.45"' if kind == "wait" else ""
                self.out.append(
                    f'<rect x="{lx}" y="36" width="22" height="14" fill="{colour}"{opacity}/>'
                )
            self.out.append(f'<text x="{lx + 27}" y="47">{esc(label)}</text>')
            lx += 34 + 7 * len(label)

    def axis(self, lanes_bottom: int) -> None:
        axis_y = TOP - 8
        step = nice_step(self.end)
        tick = 0.0
        while tick <= self.end + 1e-9:
            tx = self.x(tick)
            self.out.append(
                f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{lanes_bottom}" '
                f'stroke="#e0e0e0" stroke-width="1"/><text x="{tx:.1f}" y="{axis_y - 4}" '
                f'text-anchor="middle">{tick:g} s</text>'
            )
            tick = round(tick + step, 6)

    def lane(self, lane: Lane, y: int, index: int) -> None:
        fill = "#f7f9fa" if index % 2 == 0 else "#eef2f4"
        kind = "group" if self.folded else "lane"
        attr = "data-group" if self.folded else "data-host"
        self.out.append(
            f'<g class="{kind}" {attr}="{esc(lane.key)}">'
            f'<rect x="0" y="{y}" width="{WIDTH}" height="{lane.height}" fill="{fill}"/>'
            f'<text x="12" y="{y + PAD + 15}" font-weight="bold">{esc(lane.label)}</text>'
        )
        if lane.jobs:
            self.out.append(f'<text x="12" y="{y + PAD + TASK_H + 12}" fill="#546e7a">jobs</text>')
        for task_span in lane.bars:
            self.task_bar(lane, task_span, y + PAD)
        if self.folded:
            self.job_summary(lane, y + PAD + TASK_H + GAP)
        else:
            for job, row in zip(lane.jobs, lane.rows, strict=True):
                self.job_bar(lane.key, job, y + PAD + TASK_H + GAP + row * (JOB_H + GAP))
        self.out.append("</g>")

    def task_bar(self, lane: Lane, task_span: dict[str, Any], ty: int) -> None:
        task, entry = task_span["task"], task_span["entry"]
        bx = self.x(entry["start"])
        bw = max(1.5, self.x(entry["end"]) - bx)
        colour = TASK_COLOURS.get(entry["status"], "#9e9e9e")
        opacity = ' fill-opacity="0.45"' if task["kind"] == "wait" else ""
        kind = {"launch": ", async launch", "wait": ", wait"}.get(task["kind"], "")
        if self.folded:
            who = f"{lane.key}: {task['name']} on {task_span['count']} hosts, at most {entry['at_once']} at once"
        else:
            who = f"{lane.key}: {task['name']} ({entry['status']}{kind})"
        tip = (
            f"{who}\nstart {entry['start']:.2f} s, end {entry['end']:.2f} s, "
            f"{entry['duration']:.2f} s; counted in baseline {entry['baseline']:.2f} s"
        )
        self.out.append(
            f'<rect class="task" x="{bx:.1f}" y="{ty}" width="{bw:.1f}" height="{TASK_H}" '
            f'fill="{colour}"{opacity} stroke="#ffffff" stroke-width="0.5">'
            f"<title>{esc(tip)}</title></rect>"
        )
        fits = int((bw - 8) / 6.6)
        if fits >= 6:
            label = task["name"]
            if len(label) > fits:
                label = label[: fits - 1] + "\u2026"
            self.out.append(
                f'<text x="{bx + 4:.1f}" y="{ty + 15}" font-size="11" fill="#1b1b1b" '
                f'pointer-events="none">{esc(label)}</text>'
            )

    def job_bar(self, host: str, job: dict[str, Any], jy: int) -> None:
        jx = self.x(job["launched"])
        jw = max(1.5, self.x(job_stop(job, self.end)) - jx)
        colour = JOB_COLOURS.get(job["state"], "#90a4ae")
        dash = ' stroke-dasharray="4 2"' if job["finished"] is None else ""
        seen = (
            f"seen ended {job['finished']:.2f} s"
            if job["finished"] is not None
            else "no wait saw it end"
        )
        own = f"; it ran {job['own_duration']:.2f} s" if job.get("own_duration") else ""
        label = job.get("name") or job.get("jid") or ""
        item = f" [{job['item']}]" if job.get("item") else ""
        tip = (
            f"{host}: job {label} of {job['task']}{item}: {job['state'].replace('_', ' ')}\n"
            f"launched {job['launched']:.2f} s, {seen} ({job['duration']:.2f} s{own})"
        )
        if job.get("own_end") is not None:
            tip += f"\nits real run: {job['own_start']:.2f} s to {job['own_end']:.2f} s"
            sx = self.x(job["own_start"])
            sw = max(1.5, self.x(job["own_end"]) - sx)
        else:
            sx, sw = jx, jw
        self.out.append(
            f'<g class="job"><rect x="{jx:.1f}" y="{jy}" width="{jw:.1f}" height="{JOB_H}" '
            f'fill="{colour}" fill-opacity="0.3" stroke="#263238" stroke-width="0.8"{dash}>'
            f'<title>{esc(tip)}</title></rect><rect x="{sx:.1f}" y="{jy}" width="{sw:.1f}" '
            f'height="{JOB_H}" fill="{colour}" pointer-events="none"/><rect x="{sx:.1f}" '
            f'y="{jy}" width="{sw:.1f}" height="{JOB_H}" fill="url(#hatch)" '
            'pointer-events="none"/></g>'
        )

    def job_summary(self, lane: Lane, jy: int) -> None:
        """Folded: per launch task, one bar over the group's jobs, first launch to last end."""
        by_task: dict[str, list[dict[str, Any]]] = {}
        for job in lane.jobs:
            by_task.setdefault(job["task"], []).append(job)
        for task, jobs in by_task.items():
            spans = [(job["launched"], job_stop(job, self.end)) for job in jobs]
            start, stop = min(s for s, _e in spans), max(e for _s, e in spans)
            states: dict[str, int] = {}
            for job in jobs:
                states[job["state"]] = states.get(job["state"], 0) + 1
            worst = "finished" if set(states) == {"finished"} else max(states, key=states.get)
            tip = (
                f"{lane.key}: {len(jobs)} jobs of {task}, at most "
                f"{_timing.max_running(spans)} at once; "
                + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            )
            jx = self.x(start)
            width = max(1.5, self.x(stop) - jx)
            self.out.append(
                f'<g class="job"><rect x="{jx:.1f}" y="{jy}" width="{width:.1f}" '
                f'height="{JOB_H}" fill="{JOB_COLOURS.get(worst, "#90a4ae")}" fill-opacity="0.6" '
                f'stroke="#263238" stroke-width="0.8"><title>{esc(tip)}</title></rect></g>'
            )

    def play_marks(self, plays: list[dict[str, Any]], lanes_bottom: int) -> None:
        axis_y = TOP - 8
        for number, play in enumerate(plays, start=1):
            px = self.x(play["start"])
            following = plays[number] if number < len(plays) else None
            stop = self.x(following["start"]) if following else WIDTH - RIGHT
            fits = max(2, int((stop - px - 8) / 6.6))
            label = f"{number}. {play['name']}"
            if len(label) > fits:
                label = label[: fits - 1] + "\u2026"
            self.out.append(
                f'<line x1="{px:.1f}" y1="{axis_y - 34}" x2="{px:.1f}" y2="{lanes_bottom}" '
                'stroke="#37474f" stroke-width="1" stroke-dasharray="3 3"/>'
                f'<text x="{px + 4:.1f}" y="{axis_y - 22}" fill="#37474f" font-weight="bold">'
                f"{esc(label)}<title>{esc(play['name'])}</title></text>"
                f'<text x="12" y="{lanes_bottom + 20 + 18 * (number - 1)}" fill="#37474f">'
                f"{number}. {esc(play['name'])}: wall {fmt(play['wall'])}, baseline "
                f"{fmt(play['baseline'])}, saved {fmt(play['saved'])}, "
                f"speed-up {play['speedup']:.2f}x</text>"
            )


def render_svg(
    report: dict[str, Any], standalone: bool = True, fold_above: int = FOLD_ABOVE
) -> str:
    """The timeline; hosts folded by group when there are more than ``fold_above``."""
    hosts = hosts_in_order(report)
    folded = 0 < fold_above < len(hosts)
    lanes = group_lanes(report, hosts) if folded else host_lanes(report, hosts)
    return Svg(report, lanes, folded).render(standalone)
