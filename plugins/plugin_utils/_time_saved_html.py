# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time_saved HTML page: the SVG timeline and tables of figures, no network needed.

Private to the collection (controller side only). Rendered from the report dict alone.
When the timeline folds hosts by group, each group gets a closed ``<details>`` with one
row per host, so that a run on hundreds of hosts stays small and quick to open.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_svg import (
    FOLD_ABOVE,
    esc,
    fmt,
    hosts_in_order,
    render_svg,
)

_STYLE = (
    "body{font-family:DejaVu Sans,Arial,sans-serif;margin:16px;color:#1b1b1b}"
    "svg{max-width:100%;height:auto}table{border-collapse:collapse;margin-top:16px}"
    "td,th{border:1px solid #cfd8dc;padding:3px 8px;text-align:right}"
    "td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}"
    "th{background:#eceff1}details{margin-top:6px}"
)


def task_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for play in report["plays"]:
        for task in play["tasks"]:
            jobs = task["max_concurrent_jobs"]
            rows.append(
                "<tr>"
                f"<td>{esc(play['name'])}</td><td>{esc(task['name'])}</td>"
                f"<td>{esc(task['kind'])}</td>"
                f"<td>{task['baseline']:.2f}</td><td>{task['span']:.2f}</td>"
                f"<td>{task['saved']:.2f}</td><td>{task['max_concurrent_hosts']}</td>"
                f"<td>{'-' if jobs is None else jobs}</td></tr>"
            )
    return rows


def host_tables(report: dict[str, Any]) -> str:
    """Folded runs: per group, a closed table of its hosts' figures."""
    totals: dict[str, dict[str, float]] = {}
    for play in report["plays"]:
        for host, counts in play["hosts"].items():
            entry = totals.setdefault(host, {"busy": 0.0, "baseline": 0.0, "bad": 0, "tasks": 0})
            entry["busy"] += counts["busy"]
            entry["baseline"] += counts["baseline"]
            entry["bad"] += counts["failed"] + counts["unreachable"]
            entry["tasks"] += sum(counts[k] for k in counts if k not in ("busy", "baseline"))
    groups: dict[str, list[str]] = {}
    for host in hosts_in_order(report):
        groups.setdefault((report.get("host_groups") or {}).get(host) or "ungrouped", []).append(
            host
        )
    parts = []
    for group, hosts in groups.items():
        rows = "".join(
            f"<tr><td>{esc(h)}</td><td>{totals.get(h, {}).get('tasks', 0)}</td>"
            f"<td>{totals.get(h, {}).get('busy', 0.0):.2f}</td>"
            f"<td>{totals.get(h, {}).get('baseline', 0.0):.2f}</td>"
            f"<td>{totals.get(h, {}).get('bad', 0)}</td></tr>"
            for h in hosts
        )
        parts.append(
            f'<details class="group" data-group="{esc(group)}"><summary>{esc(group)}: '
            f"{len(hosts)} hosts</summary><table><thead><tr><th>host</th><th>host-tasks</th>"
            "<th>busy s</th><th>baseline s</th><th>failed/unreachable</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></details>"
        )
    return "\n".join(parts)


def render_html(report: dict[str, Any], fold_above: int = FOLD_ABOVE) -> str:
    summary = (
        f"wall {fmt(report['wall'])} (first task start to end of playbook), sequential "
        f"baseline {fmt(report['baseline'])}, time saved {fmt(report['saved'])}, "
        f"speed-up {report['speedup']:.2f}x"
    )
    what_if = report.get("what_if") or {}
    if "wall_if_sync" in what_if:
        summary += (
            f"; estimate: wall {fmt(what_if['wall_if_sync'])} with every async task synchronous"
        )
    folded = 0 < fold_above < len(hosts_in_order(report))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>time saved: {esc(report['playbook'])}</title>"
        f"<style>{_STYLE}</style></head><body>\n"
        f"{render_svg(report, standalone=False, fold_above=fold_above)}\n"
        f"<p>{esc(summary)}</p>\n"
        + (host_tables(report) + "\n" if folded else "")
        + "<p>baseline: what the task's hosts would have taken one after another (an async "
        "launch counts itself and its jobs' runs beyond it; a wait counts nothing while its "
        "jobs run, as they are counted on their launch). saved: how much of that work ran "
        "beside more of it. span = baseline - saved.</p>\n"
        "<table><thead><tr><th>play</th><th>task</th><th>kind</th><th>baseline s</th>"
        "<th>span s</th><th>saved s</th><th>max hosts at once</th><th>max jobs at once</th>"
        "</tr></thead><tbody>\n"
        + "\n".join(task_rows(report))
        + "\n</tbody></table>\n</body></html>\n"
    )
