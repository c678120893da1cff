"""time_saved callback on real ansible-playbook runs (inventories/local.yml, 3 hosts)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ansible_collections.tplabs.async_tasks.plugins.module_utils._job import parse_delta
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._timing import max_running
from tests.helpers import REPO, Run, ansible_env, playbook

pytestmark = pytest.mark.integration

PLAYBOOKS = REPO / "tests" / "integration" / "playbooks"
SCHEMA = json.loads((REPO / "docs" / "schemas" / "time_saved.schema.json").read_text())
HOSTS = ["host1", "host2", "host3"]
# Long enough for the three jobs to overlap whatever the launches cost (1-3 s each on a quiet
# 2-core controller, more under load); the checks below do not depend on the machine's speed.
JOB_SECONDS = 5


def timed(name: str, out: Path, *args: str, **env: str) -> tuple[Run, dict[str, Any]]:
    """Run a playbook with the callback enabled; return the run and its validated report."""
    report = out / f"{name}.json"
    result = playbook(
        PLAYBOOKS / f"time_saved_{name}.yml",
        "-e",
        f"time_saved_sleep={JOB_SECONDS}",
        *args,
        env=ansible_env(
            ANSIBLE_CALLBACKS_ENABLED="tplabs.async_tasks.time_saved",
            ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON=str(report),
            **env,
        ),
        timeout=300,
    )
    assert result.rc == 0, result.output
    data = json.loads(report.read_text())
    jsonschema.validate(data, SCHEMA)
    return result, data


def one_task(report: dict[str, Any], name_start: str) -> dict[str, Any]:
    [play] = report["plays"]
    [task] = [t for t in play["tasks"] if t["name"].startswith(name_start)]
    return task


class _Lanes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.lanes: list[str | None] = []
        self.jobs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "g" and found.get("class") == "lane":
            self.lanes.append(found.get("data-host"))
        if tag == "g" and found.get("class") == "job":
            self.jobs += 1


def test_sequential_run_saves_nothing(tmp_path: Path) -> None:
    """The 3 x JOB_SECONDS work synchronously with forks 1: one host at a time, no gain."""
    _unused, report = timed("sync", tmp_path, "--forks", "1")
    assert report["wall"] >= 3 * JOB_SECONDS  # three jobs, one after another
    # forks 1: a start proves the previous host ended, however late ansible reports it
    assert one_task(report, "Run the job")["max_concurrent_hosts"] == 1
    assert one_task(report, "Run the job")["saved"] == 0.0
    assert report["speedup"] <= 1.0, report


def check_parallel(report: dict[str, Any], waiter: str) -> None:
    """Against the jobs' own runs (their module's start, end and delta, host clock).

    A real sequential run is not compared: its wall depends on the controller's load at
    another moment. The baseline holds every job's own run, plus what the launches and
    waits spent outside them, nothing more.
    """
    [play] = report["plays"]
    jobs = play["jobs"]
    assert sorted(job["host"] for job in jobs) == HOSTS
    assert {job["state"] for job in jobs} == {"finished"}
    assert {job["waited_by"] for job in jobs} == {waiter}
    assert {job["end_source"] for job in jobs} == {"module"}
    for job in jobs:
        # The job's own run is the module's (its reported delta), at least the sleep, and lies
        # inside the job's window from launch to the wait's return: however long a loaded
        # machine takes to launch, start `sleep` or reap it (a run under load: launches of
        # 4.9-6.0 s, a 5 s sleep reported as 6.05 s by the command module).
        assert job["own_duration"] == pytest.approx(parse_delta(job["reported"]["delta"]), abs=1e-3)
        assert job["own_duration"] >= JOB_SECONDS - 0.1, job
        assert job["launched"] <= job["own_start"] < job["own_end"] <= job["finished"], job
        assert job["own_duration"] < job["duration"], job
    own = sum(job["own_duration"] for job in jobs)
    spent = sum(entry["duration"] for task in play["tasks"] for entry in task["hosts"].values())
    assert own <= report["baseline"] <= own + spent + 0.01, (own, spent, report["baseline"])
    runs = [(job["own_start"], job["own_end"]) for job in jobs]
    launch = one_task(report, "Launch the job")
    # "jobs at once" is read from the jobs' own runs: the hosts' view, with the hand-off
    assert launch["max_concurrent_jobs"] == max_running(runs, report["handoff_tolerance"])
    assert report["saved"] == pytest.approx(report["baseline"] - report["wall"], abs=1e-3)


def test_async_wait_run(tmp_path: Path) -> None:
    """The same work launched async and waited for with async_wait."""
    result, parallel = timed("async_wait", tmp_path)
    check_parallel(parallel, "Wait for the job with async_wait")
    assert "TIME SAVED [play: Time saved - async job on every host, then async_wait]" in (
        result.stdout
    )
    assert "speed-up" in result.stdout


def test_async_status_waits_and_html_timeline(tmp_path: Path) -> None:
    """The lab's own pattern (async_status until finished); the timeline has a lane per host."""
    timeline, trace = tmp_path / "timeline.html", tmp_path / "trace.json"
    _unused, parallel = timed(
        "async",
        tmp_path,
        ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TIMELINE=str(timeline),
        ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TRACE=str(trace),
    )
    check_parallel(parallel, "Wait for the job with async_status")
    lanes = _Lanes()
    lanes.feed(timeline.read_text())
    assert lanes.lanes == HOSTS
    assert lanes.jobs == 3
    # the Chrome trace: a slice per host-task and per job, a track per host
    events = json.loads(trace.read_text())["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    assert (
        sorted(e["name"] for e in slices if e["cat"] == "wait")
        == ["Wait for the job with async_status"] * 3
    )
    assert len([e for e in slices if e["cat"] == "job"]) == 3
    threads = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert set(HOSTS) <= threads


def test_throttle_with_poll_runs_two_at_once(tmp_path: Path) -> None:
    _unused, report = timed("throttle_poll", tmp_path)
    task = one_task(report, "Run the job with async and poll")
    assert task["max_concurrent_hosts"] == 2
    # never more than throttle; as many as the jobs' own runs overlap (2 unless, under load,
    # a host's launch took longer than the other host's job ran)
    runs = [(job["own_start"], job["own_end"]) for job in report["plays"][0]["jobs"]]
    assert task["max_concurrent_jobs"] == max_running(runs, report["handoff_tolerance"]) <= 2
    assert [job["mode"] for job in report["plays"][0]["jobs"]] == ["poll"] * 3


def test_throttle_with_poll_0_launches_two_but_runs_three_jobs(tmp_path: Path) -> None:
    svg = tmp_path / "timeline.svg"
    _unused, report = timed(
        "throttle_bg", tmp_path, ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TIMELINE=str(svg)
    )
    task = one_task(report, "Launch the job in the background")
    assert task["max_concurrent_hosts"] == 2  # throttle paced the launches
    # the jobs ran as many at once as their own runs say: 3 unless the controller took
    # longer to launch the third than the first took to run
    runs = [(job["own_start"], job["own_end"]) for job in report["plays"][0]["jobs"]]
    assert task["max_concurrent_jobs"] == max_running(runs, report["handoff_tolerance"])
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    lanes = root.findall("{http://www.w3.org/2000/svg}g[@class='lane']")
    assert [lane.get("data-host") for lane in lanes] == HOSTS


def test_beside_json_stdout_and_unwritable_path(tmp_path: Path) -> None:
    """The json stdout stays parsable (recap on stderr); a bad path is only a warning."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = playbook(
        PLAYBOOKS / "time_saved_sync.yml",
        "-e",
        "time_saved_sleep=0",
        env=ansible_env(
            ANSIBLE_CALLBACKS_ENABLED="tplabs.async_tasks.time_saved",
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
            ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON=str(blocker / "report.json"),
        ),
        timeout=120,
    )
    assert result.rc == 0, result.output
    document = json.loads(result.stdout)
    assert document["stats"]["host1"]["changed"] == 1
    assert "TIME SAVED [play: Time saved - synchronous job on every host]" in result.stderr
    assert "could not write the JSON report" in result.stderr
