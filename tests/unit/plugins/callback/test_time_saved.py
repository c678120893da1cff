"""time_saved callback: exact figures for constructed timelines on a patched clock.

Results are real `_RawTaskResult` objects turned into what callbacks receive by core's own
`as_callback_task_result()` (so no_log censoring is core's), for real `Host` and `Task`.
"""

from __future__ import annotations

import json
import os
import warnings
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import jsonschema
import pytest
from ansible.executor.stats import AggregateStats
from ansible.executor.task_result import _RawTaskResult
from ansible.inventory.host import Host
from ansible.playbook.task import Task
from ansible.utils.display import Display

from ansible_collections.tplabs.async_tasks.plugins.callback import time_saved

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[4] / "docs/schemas/time_saved.schema.json").read_text()
)
HOSTS = [Host(name) for name in ("host1", "host2", "host3")]
H1, H2, H3 = HOSTS


class Clock:
    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


def task(name: str, action: str = "ansible.builtin.command", **keywords: Any) -> Task:
    data: dict[str, Any] = {"name": name, "action": action, "args": {}}
    for key in ("async", "poll", "no_log", "throttle", "loop"):
        if key in keywords:
            data[key] = keywords.pop(key)
    assert not keywords, keywords
    return Task.load(data)


class Run:
    """Drives a CallbackModule the way the strategy does, at chosen clock values."""

    def __init__(self, clock: Clock, top: int = 5) -> None:
        self.clock = clock
        self.display = MagicMock(Display)
        self.display.verbosity = 0
        self.display.columns = 100
        self.cb = time_saved.CallbackModule(display=self.display)
        self.cb._top = top
        playbook = MagicMock()
        playbook._file_name = "/x/site.yml"
        self.at(0.0)
        self.cb.v2_playbook_on_start(playbook)

    def at(self, value: float) -> Run:
        self.clock.value = value
        return self

    def play(self, at: float, name: str = "Play") -> None:
        play = MagicMock()
        play.get_name.return_value = name
        self.at(at).cb.v2_playbook_on_play_start(play)

    def start(self, at: float, tsk: Task, host: Host) -> None:
        self.at(at).cb.v2_runner_on_start(host, tsk)

    def result(self, tsk: Task, host: Host, data: dict[str, Any]):
        raw = _RawTaskResult(host=host, task=tsk, return_data=data, task_fields=tsk.dump_attrs())
        return raw.as_callback_task_result()

    def ok(self, at: float, tsk: Task, host: Host, **data: Any) -> None:
        self.at(at).cb.v2_runner_on_ok(self.result(tsk, host, data))

    def failed(self, at: float, tsk: Task, host: Host, **data: Any) -> None:
        data.setdefault("failed", True)
        self.at(at).cb.v2_runner_on_failed(self.result(tsk, host, data))

    def skipped(self, at: float, tsk: Task, host: Host) -> None:
        self.at(at).cb.v2_runner_on_skipped(self.result(tsk, host, {"skipped": True}))

    def unreachable(self, at: float, tsk: Task, host: Host) -> None:
        self.at(at).cb.v2_runner_on_unreachable(self.result(tsk, host, {"unreachable": True}))

    def item(self, at: float, tsk: Task, host: Host, **data: Any) -> None:
        self.at(at).cb.v2_runner_item_on_ok(self.result(tsk, host, data))

    def async_ok(self, at: float, tsk: Task, host: Host, **data: Any) -> None:
        self.at(at).cb.v2_runner_on_async_ok(self.result(tsk, host, data))

    def async_poll(self, at: float, tsk: Task, host: Host, **data: Any) -> None:
        self.at(at).cb.v2_runner_on_async_poll(self.result(tsk, host, data))

    def stats(self, at: float) -> dict[str, Any]:
        self.at(at).cb.v2_playbook_on_stats(AggregateStats())
        return self.cb.build_report()

    def lines(self) -> list[str]:
        return [str(c.args[0]) for c in self.display.display.call_args_list]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time_saved, "now", fake)
    return fake


def launched(jid: str) -> dict[str, Any]:
    return {"ansible_job_id": jid, "started": True, "finished": False, "changed": True}


def status(jid: str, finished: bool, delta: str = "0:00:05.000000", **extra: Any):
    data = {"ansible_job_id": jid, "started": True, "finished": finished, "changed": finished}
    if finished:
        data.update(start="2026-11-27 10:00:00.000000", end="2026-11-27 10:00:05.000000")
        data.update(delta=delta, rc=0, stdout="done")
    data.update(extra)
    return data


def only(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["plays"]) == 1
    jsonschema.validate(report, SCHEMA)
    return report["plays"][0]


def test_sync_forks_1_is_its_own_baseline(clock: Clock) -> None:
    """forks=1: hosts one after another; a hand-off of 0.05 s is not concurrency."""
    run = Run(clock)
    run.play(0.0)
    sleep = task("Sleep")
    run.start(1.0, sleep, H1)
    run.start(6.0, sleep, H2)
    run.ok(6.05, sleep, H1, changed=True)
    run.start(11.0, sleep, H3)
    run.ok(11.05, sleep, H2, changed=True)
    run.ok(16.0, sleep, H3, changed=True)
    play = only(run.stats(16.5))
    assert play["wall"] == pytest.approx(15.5)
    assert play["baseline"] == pytest.approx(15.1)
    assert play["saved"] == pytest.approx(-0.4)
    [tsk] = play["tasks"]
    assert tsk["max_concurrent_hosts"] == 1
    assert tsk["max_concurrent_jobs"] is None
    assert tsk["async"] is False
    assert tsk["hosts"]["host2"] == {
        "status": "changed",
        "start": 6.0,
        "end": 11.05,
        "duration": 5.05,
        "baseline": 5.05,
        "runs": 1,
    }
    assert play["hosts"]["host1"]["changed"] == 1


def test_async_launch_and_async_status_wait(clock: Clock) -> None:
    """Baseline = launch + job's own run per host; the wait adds nothing while jobs run."""
    run = Run(clock)
    run.play(0.0)
    launch = task("Launch", **{"async": 60, "poll": 0})
    wait = task("Wait", "ansible.builtin.async_status")
    for index, host in enumerate(HOSTS):
        run.start(index * 0.1, launch, host)
    for index, host in enumerate(HOSTS):
        run.ok(0.5 + index * 0.1, launch, host, **launched(f"j{index}"))
    for index, host in enumerate(HOSTS):
        run.start(1.0 + index * 0.01, wait, host)
    run.ok(6.0, wait, H1, **status("j0", True))
    run.ok(6.5, wait, H2, **status("j1", True))
    run.ok(7.0, wait, H3, **status("j2", True, delta="0:00:07.000000"))
    report = run.stats(7.5)
    play = only(report)
    # jobs: the module's own run 5 s (not the 0.5 s launch), host3's capped by what was seen
    assert [job["baseline"] for job in play["jobs"]] == [5.0, 5.0, 6.8]
    assert [job["own_duration"] for job in play["jobs"]] == [5.0, 5.0, 7.0]
    assert [job["state"] for job in play["jobs"]] == ["finished"] * 3
    assert play["jobs"][0]["waited_by"] == "Wait"
    assert play["jobs"][0]["reported"]["delta"] == "0:00:05.000000"
    assert play["baseline"] == pytest.approx(16.8)
    assert play["wall"] == pytest.approx(7.5)
    assert play["saved"] == pytest.approx(9.3)
    assert play["speedup"] == pytest.approx(16.8 / 7.5, abs=1e-4)
    launch_out, wait_out = play["tasks"]
    assert launch_out["kind"] == "launch" and launch_out["async"] is True
    assert launch_out["max_concurrent_hosts"] == 3
    assert launch_out["max_concurrent_jobs"] == 3
    assert wait_out["kind"] == "wait" and wait_out["baseline"] == 0.0
    assert report["job_states"] == {"finished": 3}
    lines = run.lines()
    assert "time saved 9.30 s, speed-up 2.24x" in lines
    assert any(line.endswith("  Launch") and "    3     3" in line for line in lines)
    run.display.banner.assert_any_call("TIME SAVED [play: Play]")


def test_loop_launch_and_loop_wait_use_item_times(clock: Clock) -> None:
    run = Run(clock)
    run.play(0.0)
    launch = task("Launch loop", **{"async": 60, "poll": 0, "loop": [1, 2]})
    wait = task("Wait loop", "ansible.builtin.async_status", loop=["a", "b"])
    run.start(0.0, launch, H1)
    run.item(0.4, launch, H1, item=1, **launched("ja"))
    run.item(1.0, launch, H1, item=2, **launched("jb"))
    results = [
        {"item": 1, "ansible_loop_var": "item", **launched("ja")},
        {"item": 2, "ansible_loop_var": "item", **launched("jb")},
    ]
    run.ok(1.1, launch, H1, changed=True, results=results)
    run.start(1.2, wait, H1)
    done_a = status("ja", True, delta="0:00:02.000000")
    done_b = status("jb", True, delta="0:00:03.000000")
    run.item(3.0, wait, H1, **done_a)
    run.item(5.0, wait, H1, **done_b)
    run.ok(5.1, wait, H1, changed=True, results=[done_a, done_b])
    play = only(run.stats(6.0))
    job_a, job_b = play["jobs"]
    assert (job_a["launched"], job_a["launch_end"], job_a["finished"]) == (0.0, 0.4, 3.0)
    assert (job_b["launched"], job_b["launch_end"], job_b["finished"]) == (0.4, 1.0, 5.0)
    assert job_a["item"] == "1" and job_b["item"] == "2"
    # own runs from the item results: 2 s and 3 s
    assert job_a["baseline"] == pytest.approx(2.0)
    assert job_b["baseline"] == pytest.approx(3.0)
    launch_out, wait_out = play["tasks"]
    assert launch_out["max_concurrent_jobs"] == 2
    assert launch_out["hosts"]["host1"]["items"] == 2
    # launch run 1.1 s = items 0.4 + 0.6 + 0.1 of loop overhead, each item replaced by its job
    assert launch_out["baseline"] == pytest.approx(5.1)
    # the wait: 3.9 s, all but its last 0.1 s while one of its jobs was running
    assert wait_out["baseline"] == pytest.approx(0.1)
    assert play["baseline"] == pytest.approx(5.2)


@pytest.mark.parametrize(
    ("poll", "expected_jobs"),
    [pytest.param(0, 3, id="poll-0-jobs-run-together"), pytest.param(5, 2, id="poll-5")],
)
def test_throttle_two(clock: Clock, poll: int, expected_jobs: int) -> None:
    """throttle: 2 limits launches; with poll 0 the jobs still all run together."""
    run = Run(clock)
    run.play(0.0)
    tsk = task("Throttled", **{"async": 30, "poll": poll, "throttle": 2})
    wait = task("Wait", "ansible.builtin.async_status")
    if poll == 0:
        run.start(0.0, tsk, H1)
        run.start(0.01, tsk, H2)
        run.start(0.5, tsk, H3)  # slot of host1 handed over just before its result
        run.ok(0.52, tsk, H1, **launched("j1"))
        run.ok(0.53, tsk, H2, **launched("j2"))
        run.ok(1.0, tsk, H3, **launched("j3"))
        for host in HOSTS:
            run.start(1.1, wait, host)
        for host, jid in zip(HOSTS, ("j1", "j2", "j3"), strict=True):
            run.ok(6.0, wait, host, **status(jid, True))
    else:
        run.start(0.0, tsk, H1)
        run.start(0.01, tsk, H2)
        run.async_poll(5.0, tsk, H1, ansible_job_id="j1", started=True, finished=False)
        run.async_ok(5.49, tsk, H1, **status("j1", True))
        run.start(5.5, tsk, H3)
        run.ok(5.52, tsk, H1, **status("j1", True))
        run.async_ok(5.5, tsk, H2, **status("j2", True))
        run.ok(5.53, tsk, H2, **status("j2", True))
        run.async_ok(10.6, tsk, H3, **status("j3", True))
        run.ok(10.6, tsk, H3, **status("j3", True))
    play = only(run.stats(11.0))
    throttled = play["tasks"][0]
    assert throttled["max_concurrent_hosts"] == 2
    assert throttled["max_concurrent_jobs"] == expected_jobs
    if poll:
        assert throttled["kind"] == "poll"
        assert [job["mode"] for job in play["jobs"]] == ["poll"] * 3
        assert play["jobs"][0]["polls"] == 1
        assert play["jobs"][0]["finished"] == 5.49  # the worker's own async_ok time
        # the task ran the job: the host times are the baseline
        assert play["baseline"] == pytest.approx(5.52 + 5.52 + 5.1)


def test_failure_and_unreachable_are_not_saved_time(clock: Clock) -> None:
    run = Run(clock)
    run.play(0.0)
    tsk = task("Work")
    for host in HOSTS:
        run.start(0.0, tsk, host)
    run.ok(2.0, tsk, H1)
    run.failed(3.0, tsk, H2, msg="boom", rc=1)
    run.unreachable(4.0, tsk, H3)
    play = only(run.stats(4.0))
    assert play["baseline"] == pytest.approx(2.0)
    assert play["failed_time"] == pytest.approx(7.0)
    assert play["saved"] == pytest.approx(-2.0)
    assert play["hosts"]["host2"]["failed"] == 1
    assert play["hosts"]["host3"]["unreachable"] == 1
    assert play["tasks"][0]["hosts"]["host2"]["status"] == "failed"
    lines = run.lines()
    assert "hosts 3: 1 ok, 1 with failures, 1 unreachable" in lines
    assert any("time on failed/unreachable hosts 7.00 s" in line for line in lines)


def test_skipped_host_counts_as_skipped(clock: Clock) -> None:
    run = Run(clock)
    run.play(0.0)
    tsk = task("Maybe")
    run.start(0.0, tsk, H1)
    run.start(0.0, tsk, H2)
    run.skipped(0.1, tsk, H1)
    run.ok(3.0, tsk, H2)
    play = only(run.stats(3.0))
    assert play["hosts"]["host1"]["skipped"] == 1
    assert play["tasks"][0]["hosts"]["host1"]["baseline"] == 0.0
    assert play["baseline"] == pytest.approx(3.0)


def test_job_never_waited_for_is_running_at_end(clock: Clock) -> None:
    run = Run(clock)
    run.play(0.0)
    launch = task("Fire and forget", **{"async": 600, "poll": 0})
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("jforget"))
    report = run.stats(2.0)
    play = only(report)
    [job] = play["jobs"]
    assert job["state"] == "running_at_end"
    assert job["finished"] is None
    assert job["duration"] == pytest.approx(2.0)
    assert job["baseline"] == pytest.approx(0.5)  # only its launch: its full run is unknown
    assert play["baseline"] == pytest.approx(0.5)
    assert report["job_states"] == {"running_at_end": 1}
    assert any("still running at end of play" in line for line in run.lines())


def test_async_wait_results_match_jobs_by_jid(clock: Clock) -> None:
    """tplabs.async_tasks.async_wait result shape from DEVELOPING.md, built by hand."""
    run = Run(clock)
    run.play(0.0)
    launch = task("Launch", **{"async": 60, "poll": 0})
    wait = task("Wait all", "tplabs.async_tasks.async_wait")
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("w1"))
    run.start(0.0, launch, H2)
    run.ok(0.5, launch, H2, **launched("w2"))
    run.start(0.6, wait, H1)
    run.start(0.6, wait, H2)
    job_ok = {"jid": "w1", "finished": True, "failed": False, "state": "finished", "elapsed": 4.0}
    job_ok["result"] = {"rc": 0, "delta": "0:00:03.500000", "start": "s", "end": "e"}
    job_late = {"jid": "w2", "finished": False, "failed": True, "state": "timeout", "elapsed": 9}
    job_gone = {"jid": "w3", "finished": False, "failed": True, "state": "launch_failed"}
    run.ok(5.0, wait, H1, jobs=[job_ok], finished=1, failed=False, pending=0, elapsed=4.4)
    run.failed(9.0, wait, H2, jobs=[job_late, job_gone], finished=0, pending=1, msg="timeout")
    play = only(run.stats(9.0))
    first, second = play["jobs"]
    # the command's own delta wins over async_wait's elapsed (which includes the wrapper)
    assert (first["state"], first["finished"], first["own_duration"]) == ("finished", 5.0, 3.5)
    assert first["baseline"] == pytest.approx(3.5)
    assert first["reported"] == {"start": "s", "end": "e", "delta": "0:00:03.500000"}
    assert (second["state"], second["finished"]) == ("timeout", 9.0)
    assert second["baseline"] == pytest.approx(0.5)  # a timed-out job is not saved time
    assert play["baseline"] == pytest.approx(4.0)
    assert play["job_states"] == {"finished": 1, "timeout": 1}


def test_poll_timeout_is_a_timeout(clock: Clock) -> None:
    run = Run(clock)
    run.play(0.0)
    tsk = task("Too slow", **{"async": 2, "poll": 1})
    run.start(0.0, tsk, H1)
    inner = {"ansible_job_id": "jt", "started": True, "finished": False}
    data = {"msg": "async task did not complete within the requested time - 2s"}
    run.at(2.2).cb.v2_runner_on_async_failed(
        run.result(tsk, H1, {"failed": True, "async_result": inner, **data})
    )
    run.failed(2.3, tsk, H1, async_result=inner, **data)
    play = only(run.stats(2.5))
    [job] = play["jobs"]
    assert (job["state"], job["finished"], job["mode"]) == ("timeout", 2.2, "poll")
    assert play["baseline"] == 0.0 and play["failed_time"] == pytest.approx(2.3)


def test_no_log_keeps_names_only(clock: Clock, tmp_path: Path) -> None:
    run = Run(clock)
    run.cb._output_json = str(tmp_path / "r.json")
    run.cb._output_timeline = str(tmp_path / "t.html")
    run.play(0.0)
    secret = "s3cr3t-value"
    launch = task("Launch secret", no_log=True, loop=[secret], **{"async": 60, "poll": 0})
    wait = task("Wait for it", "ansible.builtin.async_status")
    run.start(0.0, launch, H1)
    run.item(0.5, launch, H1, item=secret, _ansible_no_log=True, **launched("jsecret"))
    results = [{"item": secret, "_ansible_no_log": True, **launched("jsecret")}]
    run.ok(0.6, launch, H1, changed=True, results=results, stdout=secret)
    run.start(0.7, wait, H1)
    run.ok(4.0, wait, H1, **status("jsecret", True, delta="0:00:03.000000"))
    report = run.stats(4.5)
    play = only(report)
    [job] = play["jobs"]
    # core censors the job id of a no_log launch; the wait's jid is matched to it by order
    assert job["task"] == "Launch secret"
    assert job["jid"] is None and "item" not in job and "reported" not in job
    assert job["own_duration"] is None
    assert (job["state"], job["finished"]) == ("finished", 4.0)
    assert play["tasks"][0]["no_log"] is True
    for path in (tmp_path / "r.json", tmp_path / "t.html"):
        text = path.read_text()
        assert "Launch secret" in text
        assert secret not in text and "jsecret" not in text


def test_outputs_written_atomically_and_parse(clock: Clock, tmp_path: Path) -> None:
    run = Run(clock)
    out = tmp_path / "sub" / "report.json"
    run.cb._output_json = str(out)
    run.cb._output_timeline = str(tmp_path / "timeline.svg")
    run.play(0.0, "First")
    tsk = task("Launch", **{"async": 60, "poll": 0})
    run.start(0.0, tsk, H1)
    run.start(0.0, tsk, H2)
    run.ok(0.5, tsk, H1, **launched("a1"))
    run.ok(0.5, tsk, H2, **launched("a2"))
    run.play(1.0, "Second")
    wait = task("Wait", "ansible.builtin.async_status")
    run.start(1.0, wait, H1)
    run.ok(3.0, wait, H1, **status("a1", True))
    run.stats(4.0)
    report = json.loads(out.read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["version"] == 1 and report["playbook"] == "site.yml"
    assert [play["name"] for play in report["plays"]] == ["First", "Second"]
    assert report["plays"][0]["wall"] == pytest.approx(1.0)  # to the next play's start
    assert report["wall"] == pytest.approx(4.0)
    assert [job["state"] for job in report["plays"][0]["jobs"]] == ["finished", "running_at_end"]
    assert not [p for p in tmp_path.rglob(".time_saved-*")]  # no temporary file left
    svg = ET.parse(tmp_path / "timeline.svg").getroot()
    lanes = svg.findall(".//{http://www.w3.org/2000/svg}g[@class='lane']")
    assert [lane.get("data-host") for lane in lanes] == ["host1", "host2"]
    banners = [c.args[0] for c in run.display.banner.call_args_list]
    assert banners == [
        "TIME SAVED [play: First]",
        "TIME SAVED [play: Second]",
        "TIME SAVED [playbook: site.yml]",
    ]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_timeline_has_lanes_bars_and_no_network(clock: Clock, tmp_path: Path) -> None:
    run = Run(clock)
    run.cb._output_timeline = str(tmp_path / "t.html")
    run.play(0.0)
    tsk = task("Launch <&>", **{"async": 60, "poll": 0})
    wait = task("Wait", "ansible.builtin.async_status")
    for host in HOSTS:
        run.start(0.0, tsk, host)
        run.ok(0.5, tsk, host, **launched(f"h{host.name}"))
    for host in HOSTS:
        run.start(0.6, wait, host)
        run.ok(3.0, wait, host, **status(f"h{host.name}", True))
    run.stats(3.0)
    text = (tmp_path / "t.html").read_text()
    parser = _Tags()
    parser.feed(text)
    lanes = [attrs["data-host"] for tag, attrs in parser.tags if attrs.get("class") == "lane"]
    assert lanes == ["host1", "host2", "host3"]
    assert sum(1 for _, attrs in parser.tags if attrs.get("class") == "job") == 3
    assert sum(1 for _, attrs in parser.tags if attrs.get("class") == "task") == 6
    assert "Launch &lt;&amp;&gt;" in text
    assert not [a for _, a in parser.tags if any(k in a for k in ("src", "href"))]
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_unwritable_path_is_a_warning(clock: Clock, tmp_path: Path) -> None:
    run = Run(clock)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # a path under a regular file can't be created, even by root
    run.cb._output_json = str(blocker / "report.json")
    run.play(0.0)
    run.stats(1.0)
    [call] = run.display.warning.call_args_list
    assert "could not write the JSON report" in call.args[0]
    assert str(blocker / "report.json") in call.args[0]
    assert os.listdir(tmp_path) == ["file"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("0:00:05.004112", 5.004112, id="delta"),
        pytest.param("1 day, 1:00:00", 90000.0, id="days"),
        pytest.param(2.5, 2.5, id="float"),
        pytest.param("soon", None, id="garbage"),
        pytest.param(None, None, id="none"),
        pytest.param(True, None, id="bool"),
    ],
)
def test_parse_delta(value: Any, seconds: float | None) -> None:
    assert time_saved.parse_delta(value) == (seconds if seconds is None else pytest.approx(seconds))


def test_overlap_helpers() -> None:
    assert time_saved.max_overlap([(0, 1), (0.95, 2), (1.9, 3)]) == 1  # hand-offs only
    assert time_saved.max_overlap([(0, 1), (0.5, 2), (0.6, 3)]) == 3
    assert time_saved.max_overlap([(0, 0), (0, 0)]) == 2  # instant runs still count
    assert time_saved.union_length([(0, 2), (1, 3), (5, 6)]) == 4


def test_options_are_read_from_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """set_options reads env and ini through ansible's config, as for a loaded plugin."""
    from ansible.plugins.loader import callback_loader, init_plugin_loader

    repo = Path(__file__).resolve().parents[4]
    with warnings.catch_warnings():  # the finder may already be set up by another test
        warnings.simplefilter("ignore", UserWarning)
        init_plugin_loader([str(repo / ".cache" / "collections")])
    monkeypatch.setenv("ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON", str(tmp_path / "r.json"))
    monkeypatch.setenv("ANSIBLE_CALLBACK_TIME_SAVED_TOP", "9")
    plugin = callback_loader.get("tplabs.async_tasks.time_saved")
    assert plugin is not None
    plugin.set_options()
    assert plugin._output_json == str(tmp_path / "r.json")
    assert plugin._output_timeline is None
    assert plugin._top == 9
    assert plugin.CALLBACK_TYPE == "aggregate" and plugin.CALLBACK_NEEDS_ENABLED is True


def test_failed_launch_starts_no_job(clock: Clock) -> None:
    run = Run(clock)
    run.play(0.0)
    launch = task("Launch", **{"async": 60, "poll": 0})
    run.start(0.0, launch, H1)
    run.failed(0.4, launch, H1, msg="could not launch", ansible_job_id="jx", started=False)
    play = only(run.stats(1.0))
    assert play["jobs"] == []
    assert play["failed_time"] == pytest.approx(0.4)
    assert play["tasks"][0]["max_concurrent_jobs"] is None


def test_async_status_of_a_failed_job(clock: Clock) -> None:
    """Core strips `failed` from what callbacks see: the failed event marks the job failed."""
    run = Run(clock)
    run.play(0.0)
    launch = task("Launch", **{"async": 60, "poll": 0})
    wait = task("Wait", "ansible.builtin.async_status")
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("jf"))
    run.start(0.6, wait, H1)
    run.failed(3.0, wait, H1, **status("jf", True, delta="0:00:02.000000", rc=2))
    play = only(run.stats(3.0))
    [job] = play["jobs"]
    assert (job["state"], job["finished"], job["baseline"]) == ("failed", 3.0, 0.5)
    assert play["baseline"] == pytest.approx(0.5)
    assert play["failed_time"] == pytest.approx(2.4)


def test_job_concurrency_uses_the_jobs_own_runs(clock: Clock) -> None:
    """Slow launches: 3 jobs overlap from launch to seen-finished, but ran at most 2 at once."""
    from datetime import datetime

    run = Run(clock)
    epoch = datetime(2026, 11, 27, 10, 0, 0)
    run.cb._started_at = epoch.timestamp()  # the wall clock at the playbook start (t=0)
    run.play(0.0)
    launch = task("Launch", **{"async": 60, "poll": 0, "throttle": 2})
    wait = task("Wait", "ansible.builtin.async_status")
    run.start(0.0, launch, H1)
    run.start(0.0, launch, H2)
    run.ok(4.0, launch, H1, **launched("o1"))
    run.start(4.0, launch, H3)
    run.ok(4.05, launch, H2, **launched("o2"))
    run.ok(8.0, launch, H3, **launched("o3"))

    def own(start: float, end: float) -> dict[str, str]:
        def stamp(seconds: float) -> str:
            return f"2026-11-27 10:00:{seconds:09.6f}"

        return {"start": stamp(start), "end": stamp(end), "delta": f"0:00:{end - start:09.6f}"}

    for host, jid, span in ((H1, "o1", (5, 8)), (H2, "o2", (5, 8)), (H3, "o3", (9, 12))):
        run.start(8.1, wait, host)
        run.ok(13.0, wait, host, **status(jid, True, **own(*span)))
    play = only(run.stats(13.0))
    assert [(j["own_start"], j["own_end"]) for j in play["jobs"]] == [(5, 8), (5, 8), (9, 12)]
    assert play["tasks"][0]["max_concurrent_hosts"] == 2
    assert play["tasks"][0]["max_concurrent_jobs"] == 2


def test_no_log_wait_leaves_the_job_state_unknown(clock: Clock) -> None:
    """A no_log wait hides whether the job finished: 'unknown', never 'running_at_end'."""
    run = Run(clock)
    run.play(0.0)
    launch = task("Launch", **{"async": 60, "poll": 0})
    wait = task("Wait quietly", "ansible.builtin.async_status", no_log=True)
    run.start(0.0, launch, H1)
    run.ok(0.5, launch, H1, **launched("jq"))
    run.start(0.6, wait, H1)
    run.ok(4.0, wait, H1, **status("jq", True))
    report = run.stats(4.0)
    play = only(report)
    [job] = play["jobs"]
    assert (job["jid"], job["state"], job["finished"]) == ("jq", "unknown", None)
    assert job["baseline"] == pytest.approx(0.5)
    assert play["tasks"][1]["hosts"]["host1"]["baseline"] == pytest.approx(3.4)
    assert "done" not in json.dumps(report)  # the wait's stdout never reaches the report
