"""time_saved renderers (text, SVG, HTML, Chrome trace) from a schema-valid report fixture.

``time_saved_report.json`` is a version-2 report (two plays, three hosts, finished, killed and
never-waited jobs, a failed and an unreachable host, names to escape). The renderers read
nothing else: no event is replayed here. The folded timeline is checked on a synthetic
100 hosts x 50 tasks report.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_html import render_html
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_svg import render_svg
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_text import recap
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_trace import (
    render_trace,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
SCHEMA = json.loads((REPO / "docs/schemas/time_saved.schema.json").read_text())
SVG = "{http://www.w3.org/2000/svg}"

# The Trace Event Format (the JSON Object Format) as Perfetto and chrome://tracing read it:
# complete events need ts and dur in microseconds, metadata events name processes/threads.
TRACE_SCHEMA = {
    "type": "object",
    "required": ["traceEvents", "displayTimeUnit"],
    "properties": {
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "otherData": {"type": "object"},
        "traceEvents": {
            "type": "array",
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["name", "cat", "ph", "ts", "dur", "pid", "tid", "args"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "cat": {"type": "string"},
                            "ph": {"const": "X"},
                            "ts": {"type": "integer", "minimum": 0},
                            "dur": {"type": "integer", "minimum": 1},
                            "pid": {"type": "integer", "minimum": 1},
                            "tid": {"type": "integer", "minimum": 1},
                            "args": {"type": "object"},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["name", "ph", "pid", "args"],
                        "properties": {
                            "name": {
                                "enum": [
                                    "process_name",
                                    "process_sort_index",
                                    "thread_name",
                                    "thread_sort_index",
                                ]
                            },
                            "ph": {"const": "M"},
                            "pid": {"type": "integer", "minimum": 1},
                            "tid": {"type": "integer", "minimum": 1},
                            "args": {"type": "object"},
                        },
                    },
                ]
            },
        },
    },
}


@pytest.fixture
def report() -> dict[str, Any]:
    data = json.loads((HERE / "time_saved_report.json").read_text())
    jsonschema.validate(data, SCHEMA)
    return data


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def having(self, key: str, value: str) -> list[dict[str, str | None]]:
        return [attrs for _tag, attrs in self.tags if attrs.get(key) == value]


def test_text_recap(report: dict[str, Any]) -> None:
    lines = recap(report, top=5, width=100)
    banners = [line.text for line in lines if line.banner]
    assert banners == [
        "TIME SAVED [play: Launch <&> and wait]",
        "TIME SAVED [play: Failures, a killed job and one never waited for]",
        "TIME SAVED [playbook: site.yml]",
    ]
    text = [line.text for line in lines]
    first = report["plays"][0]
    assert f"time saved {first['saved']:.2f} s, speed-up {first['speedup']:.2f}x" in text
    assert "hosts 3: 1 ok, 1 with failures, 1 unreachable; jobs 1 killed, 1 not waited" in text
    colours = {line.text: line.colour for line in lines}
    assert (
        colours["time on failed/unreachable hosts 2.50 s (not counted in the baseline)"] == "error"
    )
    assert any(t.startswith("1 job(s) killed: killed by async_wait") for t in text)
    assert any(t.startswith("1 job(s) not waited: never waited for") for t in text)
    assert any(t.startswith("what-if (estimate):") for t in text)
    assert any(t.startswith("critical path (estimate): host3") for t in text)
    assert not [line for line in recap(report, top=0) if "baseline      span" in line.text]


def test_text_recap_of_an_empty_run(report: dict[str, Any]) -> None:
    report = dict(report, start=None, plays=[])
    assert recap(report) == []


def test_svg_lanes_bars_and_escaping(report: dict[str, Any]) -> None:
    text = render_svg(report)
    root = ET.fromstring(text.split("\n", 1)[1])
    assert root.tag == f"{SVG}svg"
    lanes = root.findall(f"{SVG}g[@class='lane']")
    assert [lane.get("data-host") for lane in lanes] == ["host1", "host2", "host3"]
    jobs = root.findall(f".//{SVG}g[@class='job']")
    assert len(jobs) == sum(len(play["jobs"]) for play in report["plays"])
    tasks = root.findall(f".//{SVG}rect[@class='task']")
    assert len(tasks) == sum(len(t["hosts"]) for p in report["plays"] for t in p["tasks"])
    assert "Launch the job &lt;&amp;&gt;" in text
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any("killed" in title and "j200.2" in title for title in titles)


def test_html_page_needs_no_network(report: dict[str, Any]) -> None:
    text = render_html(report)
    tags = Tags()
    tags.feed(text)
    assert len(tags.having("class", "lane")) == 3
    assert not [a for _t, a in tags.tags if any(k in a for k in ("src", "href"))]
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    rows = [tag for tag, _a in tags.tags if tag == "tr"]
    tasks = sum(len(play["tasks"]) for play in report["plays"])
    assert len(rows) == tasks + 1  # one header row
    assert "estimate: wall" in text


def test_no_log_job_shows_no_id(report: dict[str, Any]) -> None:
    hidden = copy.deepcopy(report)
    job = hidden["plays"][0]["jobs"][0]
    secret = job["jid"]
    job.update(jid=None, name=None)
    job.pop("reported", None)
    for text in (render_svg(hidden), render_html(hidden), json.dumps(render_trace(hidden))):
        assert secret not in text


def slices_nest(events: list[dict[str, Any]]) -> bool:
    """Complete events of one thread either nest or follow each other (trace-viewer's rule)."""
    by_thread: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for event in events:
        if event["ph"] == "X":
            by_thread.setdefault((event["pid"], event["tid"]), []).append(
                (event["ts"], event["ts"] + event["dur"])
            )
    for spans in by_thread.values():
        open_ends: list[int] = []
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            while open_ends and open_ends[-1] <= start:
                open_ends.pop()
            if open_ends and end > open_ends[-1]:
                return False
            open_ends.append(end)
    return True


def test_chrome_trace_structure(report: dict[str, Any]) -> None:
    trace = render_trace(report)
    jsonschema.validate(trace, TRACE_SCHEMA)
    json.dumps(trace)  # plain JSON
    events = trace["traceEvents"]
    processes = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert processes == {
        1: "1. Launch <&> and wait",
        2: "2. Failures, a killed job and one never waited for",
    }
    threads = {
        (e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"
    }
    assert threads[(1, 1)] == "host1" and threads[(1, 1000)] == "host1 jobs"
    slices = [e for e in events if e["ph"] == "X"]
    host_tasks = sum(len(t["hosts"]) for p in report["plays"] for t in p["tasks"])
    assert len([e for e in slices if e["cat"] in ("task", "launch", "poll", "wait")]) == host_tasks
    assert len([e for e in slices if e["cat"] == "job"]) == 5
    assert {e["name"] for e in slices if e["cat"] == "wait"} == {
        "Wait with async_status",
        "Wait with async_wait",
    }
    killed = [e for e in slices if e["cat"] == "job" and e["args"]["state"] == "killed"]
    assert killed[0]["name"] == "job j200.2"
    first = report["plays"][0]["tasks"][0]["hosts"]["host1"]
    [launch] = [e for e in slices if e["pid"] == 1 and e["tid"] == 1 and e["cat"] == "launch"]
    assert launch["ts"] == round(first["start"] * 1e6)
    assert launch["dur"] == round(first["end"] * 1e6) - launch["ts"]
    assert slices_nest(events)


def big_report(hosts: int, tasks: int, groups: int = 4) -> dict[str, Any]:
    """A schema-valid report of ``hosts`` x ``tasks`` host-tasks, 2 s each, all hosts at once."""
    names = [f"node{n:03d}" for n in range(hosts)]
    task_list = []
    for index in range(tasks):
        start = index * 2.0
        entries = {
            h: {
                "status": "ok",
                "start": start,
                "end": start + 1.9,
                "duration": 1.9,
                "baseline": 1.9,
                "runs": 1,
            }
            for h in names
        }
        task_list.append(
            {
                "name": f"Task number {index}",
                "action": "ansible.builtin.command",
                "kind": "task",
                "async": False,
                "no_log": False,
                "start": start,
                "end": start + 1.9,
                "span": 1.9,
                "baseline": 1.9 * hosts,
                "saved": 1.9 * (hosts - 1),
                "hosts": entries,
                "max_concurrent_hosts": hosts,
                "max_concurrent_jobs": None,
                "jobs": 0,
            }
        )
    counts = dict.fromkeys(("ok", "changed", "failed", "ignored", "rescued", "skipped"), 0)
    host_rows = {
        h: {**counts, "unreachable": 0, "ok": tasks, "busy": 1.9 * tasks, "baseline": 1.9 * tasks}
        for h in names
    }
    wall = tasks * 2.0
    figures = {"wall": wall, "baseline": 1.9 * tasks * hosts, "saved": 1.9 * tasks * hosts - wall}
    figures["speedup"] = figures["baseline"] / wall
    what_if = {"wall_if_sync": wall, "estimate": True}
    play = {
        "name": "Big play",
        "start": 0.0,
        "end": wall,
        "batches": 1,
        **figures,
        "failed_time": 0.0,
        "skipped_time": 0.0,
        "hosts": host_rows,
        "tasks": task_list,
        "jobs": [],
        "job_states": {},
        "what_if": what_if,
    }
    report = {
        "version": 2,
        "playbook": "big.yml",
        "started_at": None,
        "start": 0.0,
        "end": wall,
        **figures,
        "failed_time": 0.0,
        "job_states": {},
        "host_groups": {h: f"group{n % groups}" for n, h in enumerate(names)},
        "what_if": what_if,
        "plays": [play],
    }
    jsonschema.validate(report, SCHEMA)
    return report


def test_timeline_folds_hosts_by_group_above_the_limit() -> None:
    report = big_report(100, 50)
    folded = render_html(report)
    tags = Tags()
    tags.feed(folded)
    assert not tags.having("class", "lane")  # no lane per host
    groups = [a["data-group"] for a in tags.having("class", "group") if "data-group" in a]
    # one summary lane per group in the SVG, one closed host table per group below it
    assert sorted(set(groups)) == ["group0", "group1", "group2", "group3"]
    assert len([g for _t, g in tags.tags if g.get("class") == "group"]) == 8
    assert "group0 (25)" in folded
    assert "on 25 hosts, at most 25 at once" in folded
    assert len(tags.having("class", "task")) == 4 * 50  # a bar per group and task
    # the size budget: folded, a few bytes per host-task; per host, a few hundred
    host_tasks = 100 * 50
    unfolded = render_html(report, fold_above=0)
    assert len(folded.encode()) / host_tasks < 40, len(folded)
    assert len(unfolded.encode()) / host_tasks < 700, len(unfolded)
    ET.fromstring(render_svg(report).split("\n", 1)[1])  # the folded SVG parses


def test_timeline_does_not_fold_at_or_below_the_limit(report: dict[str, Any]) -> None:
    big = big_report(50, 2)
    tags = Tags()
    tags.feed(render_html(big))
    assert len(tags.having("class", "lane")) == 50
    tags = Tags()
    tags.feed(render_html(report, fold_above=2))
    assert len(tags.having("class", "group")) == 2  # one group "lab": a lane and a table
