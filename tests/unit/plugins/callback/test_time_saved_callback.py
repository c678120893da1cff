"""The thin time_saved CallbackModule: ansible's objects in, files and recap out.

Results are plain objects with the attributes callbacks receive: the public ``host``,
``task``, ``result``, ``task_fields`` of ansible-core 2.19, or the private ``_host``,
``_task``, ``_result``, ``_task_fields`` of 2.17 and 2.18. Tasks, blocks and hosts are
ansible's public classes, present in every supported core.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
import yaml
from ansible.executor.stats import AggregateStats
from ansible.inventory.group import Group
from ansible.inventory.host import Host
from ansible.playbook.block import Block
from ansible.playbook.task import Task
from ansible.utils.display import Display

from ansible_collections.tplabs.async_tasks.plugins.callback import time_saved
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import _time_saved_output

REPO = Path(__file__).resolve().parents[4]


class Clock:
    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


def make_task(name: str, **keys: Any) -> Task:
    data: dict[str, Any] = {"name": name, "action": keys.pop("action", "ansible.builtin.command")}
    data.update(keys)
    return Task.load(data)


def result(host: Host, task: Task, data: dict[str, Any], style: str) -> Any:
    fields = task.dump_attrs()
    if style == "2.19":
        return SimpleNamespace(
            host=host,
            task=task,
            result=data,
            task_fields=fields,
            is_changed=lambda: bool(data.get("changed")),
        )
    return SimpleNamespace(
        _host=host,
        _task=task,
        _result=data,
        _task_fields=fields,
        is_changed=lambda: bool(data.get("changed")),
    )


@pytest.fixture
def callback(monkeypatch: pytest.MonkeyPatch) -> tuple[time_saved.CallbackModule, Clock]:
    display = MagicMock(Display)
    display.verbosity = 0
    display.columns = 100
    clock = Clock()
    plugin = time_saved.CallbackModule(display=display)
    plugin.recorder.clock = clock
    plugin.recorder.wall_clock = lambda: 1_800_000_000.0 + clock.value
    return plugin, clock


@pytest.mark.parametrize("style", ["2.19", "2.18"])
def test_events_of_either_core_reach_the_report(callback, style: str, tmp_path: Path) -> None:
    """ansible-core 2.18 and 2.17 have no public result attributes: both are read."""
    plugin, clock = callback
    plugin._paths["json"] = str(tmp_path / "r.json")
    group = Group("web")
    host = Host("host1")
    host.add_group(group)
    play = MagicMock()
    play.get_name.return_value = "Play"
    plugin.v2_playbook_on_start(SimpleNamespace(_file_name="/x/site.yml"))
    plugin.v2_playbook_on_play_start(play)
    launch = make_task("Launch", **{"async": 60, "poll": 0})
    wait = make_task("Wait", action="ansible.builtin.async_status", args={"jid": "x"})
    plugin.v2_runner_on_start(host, launch)
    clock.value = 0.5
    plugin.v2_runner_on_ok(result(host, launch, {"ansible_job_id": "j1.1", "changed": True}, style))
    plugin.v2_runner_on_start(host, wait)
    clock.value = 3.0
    done = {"ansible_job_id": "j1.1", "finished": True, "delta": "0:00:02.000000"}
    plugin.v2_runner_on_ok(result(host, wait, done, style))
    plugin.v2_playbook_on_stats(AggregateStats())
    report = json.loads((tmp_path / "r.json").read_text())
    [play_out] = report["plays"]
    assert report["host_groups"] == {"host1": "web"}
    [job] = play_out["jobs"]
    assert (job["state"], job["own_duration"], job["waited_by"]) == ("finished", 2.0, "Wait")
    assert play_out["baseline"] > 0  # ansible-core 2.18 used to get 0.00 s here
    assert play_out["failed_time"] == 0.0


def test_templated_async_of_a_looped_launch_is_read_from_its_result(callback, tmp_path) -> None:
    """A looped task's fields reach callbacks untemplated: ``async: "{{ limit }}"`` stays a string.

    The jobs are then known from the job ids in the result (lab step 9 launches this way).
    """
    plugin, clock = callback
    plugin._paths["json"] = str(tmp_path / "r.json")
    host = Host("host1")
    play = MagicMock()
    play.get_name.return_value = "Play"
    plugin.v2_playbook_on_start(SimpleNamespace(_file_name="/x/site.yml"))
    plugin.v2_playbook_on_play_start(play)
    launch = make_task("Launch", loop=[1, 2], **{"async": "{{ limit }}", "poll": 0})
    plain = make_task("Not async", loop=[1], **{"async": "{{ zero }}", "poll": 0})
    wait = make_task("Wait", action="tplabs.async_tasks.async_wait", args={"jobs": "x"})
    plugin.v2_runner_on_start(host, launch)
    clock.value = 0.5
    items = [{"item": n, "ansible_job_id": f"j1.{n}", "started": 1, "finished": 0} for n in (1, 2)]
    plugin.v2_runner_on_ok(result(host, launch, {"changed": True, "results": items}, "2.19"))
    plugin.v2_runner_on_start(host, plain)
    clock.value = 0.6
    plugin.v2_runner_on_ok(result(host, plain, {"results": [{"item": 1, "rc": 0}]}, "2.19"))
    plugin.v2_runner_on_start(host, wait)
    clock.value = 3.0
    ended = [{"jid": f"j1.{n}", "state": "finished", "result": {"rc": 0}} for n in (1, 2)]
    plugin.v2_runner_on_ok(result(host, wait, {"jobs": ended, "changed": False}, "2.19"))
    plugin.v2_playbook_on_stats(AggregateStats())
    [play_out] = json.loads((tmp_path / "r.json").read_text())["plays"]
    assert [job["state"] for job in play_out["jobs"]] == ["finished", "finished"]
    launch_out, plain_out, _wait_out = play_out["tasks"]
    assert launch_out["max_concurrent_jobs"] == 2
    assert plain_out["max_concurrent_jobs"] in (None, 0)


def test_rescuable_reads_the_block_structure() -> None:
    guarded = Block.load({"block": [{"command": "false"}], "rescue": [{"debug": None}]})
    bare = Block.load({"block": [{"command": "false"}]})
    [inside] = guarded.block
    [rescue_task] = guarded.rescue
    [alone] = bare.block
    assert time_saved.rescuable(inside) is True
    assert time_saved.rescuable(rescue_task) is False  # a failing rescue is not rescued
    assert time_saved.rescuable(alone) is False
    nested = Block.load({"block": [{"block": [{"command": "false"}]}], "rescue": [{"debug": None}]})
    [inner] = nested.block[0].block
    assert time_saved.rescuable(inner) is True


def test_ignore_errors_event_is_ignored_status(callback) -> None:
    plugin, clock = callback
    host = Host("host1")
    task = make_task("May fail")
    plugin.v2_runner_on_start(host, task)
    clock.value = 1.0
    plugin.v2_runner_on_failed(result(host, task, {"failed": True}, "2.19"), ignore_errors=True)
    plugin.recorder.close()
    [run] = plugin.recorder.plays[0].tasks[0].runs
    assert run.status == "ignored"


def test_outputs_written_atomically_and_parse(callback, tmp_path: Path) -> None:
    plugin, _clock = callback
    plugin._paths.update(
        json=str(tmp_path / "sub" / "r.json"),
        timeline=str(tmp_path / "t.svg"),
        trace=str(tmp_path / "t.trace.json"),
    )
    plugin.v2_playbook_on_stats(AggregateStats())
    assert json.loads((tmp_path / "sub" / "r.json").read_text())["version"] == 2
    assert (tmp_path / "t.svg").read_text().startswith("<?xml")
    assert "traceEvents" in json.loads((tmp_path / "t.trace.json").read_text())
    assert not list(tmp_path.rglob(".time_saved-*"))


def test_unwritable_path_is_a_warning(callback, tmp_path: Path) -> None:
    plugin, _clock = callback
    blocker = tmp_path / "file"
    blocker.write_text("x")
    plugin._paths["json"] = str(blocker / "report.json")  # under a regular file: impossible
    plugin.v2_playbook_on_stats(AggregateStats())
    [call] = plugin._display.warning.call_args_list
    assert "could not write the JSON report" in call.args[0]
    assert os.listdir(tmp_path) == ["file"]


def test_summary_published_as_custom_stats(callback) -> None:
    """What set_stats would publish: under ansible-runner it reaches the stats event data."""
    plugin, _clock = callback
    stats = AggregateStats()
    plugin.v2_playbook_on_stats(stats)
    summary = stats.custom["_run"]["time_saved"]
    assert set(summary) >= {"wall", "baseline", "saved", "speedup", "plays", "job_states"}


def test_runner_artifacts_directory_is_the_default_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWX_ISOLATED_DATA_DIR", str(tmp_path))
    paths = _time_saved_output.default_paths(os.environ)
    assert paths == {
        "json": str(tmp_path / "time_saved.json"),
        "timeline": str(tmp_path / "time_saved.html"),
        "trace": str(tmp_path / "time_saved.trace.json"),
    }
    monkeypatch.setenv("AWX_ISOLATED_DATA_DIR", str(tmp_path / "missing"))
    assert _time_saved_output.default_paths(os.environ) == {}


def test_options_are_read_from_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """set_options reads env and ini through ansible's config; the runner dir is a default.

    The option definitions are registered from DOCUMENTATION as the plugin loader does
    (the loader itself cannot load a module a test already imported on every core).
    """
    from ansible import constants as C

    name = "tplabs.async_tasks.time_saved"
    options = yaml.safe_load(time_saved.DOCUMENTATION)["options"]
    C.config.initialize_plugin_configuration_definitions("callback", name, options)
    monkeypatch.setenv("ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON", str(tmp_path / "r.json"))
    monkeypatch.setenv("ANSIBLE_CALLBACK_TIME_SAVED_TOP", "9")
    monkeypatch.setenv("ANSIBLE_CALLBACK_TIME_SAVED_FOLD_HOSTS", "7")
    monkeypatch.setenv("AWX_ISOLATED_DATA_DIR", str(tmp_path))
    display = MagicMock(Display)
    display.verbosity = 0
    plugin = time_saved.CallbackModule(display=display)
    plugin._load_name = name
    plugin.set_options()
    assert plugin._paths["json"] == str(tmp_path / "r.json")  # explicit wins
    assert plugin._paths["timeline"] == str(tmp_path / "time_saved.html")
    assert (plugin._top, plugin._fold) == (9, 7)
    assert plugin.CALLBACK_TYPE == "aggregate" and plugin.CALLBACK_NEEDS_ENABLED is True
    monkeypatch.setenv("ANSIBLE_CALLBACK_TIME_SAVED_TOP", "-1")
    plugin.set_options()
    assert plugin._top == 0
    plugin._display.warning.assert_called_once()


def test_under_ansible_runner_it_handles_the_stats_event_first(
    callback, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """awx_display (stdout) builds AWX's artifact data from the stats event: go before it."""
    plugin, _clock = callback
    stdout = MagicMock()
    other = MagicMock()

    class Manager:  # what sends callbacks: ansible's TaskQueueManager
        def __init__(self) -> None:
            self._callback_plugins = [stdout, other, plugin]

        def send_callback(self, name: str, *args: Any) -> None:
            for target in self._callback_plugins:
                getattr(target, name)(*args)

    manager = Manager()
    monkeypatch.setenv("AWX_ISOLATED_DATA_DIR", str(tmp_path))
    manager.send_callback("v2_playbook_on_start", SimpleNamespace(_file_name="/x/site.yml"))
    assert manager._callback_plugins == [plugin, stdout, other]
    stdout.v2_playbook_on_start.assert_called_once()  # every callback got the event once
    other.v2_playbook_on_start.assert_called_once()
    stats = AggregateStats()
    seen: dict[str, Any] = {}
    stdout.v2_playbook_on_stats.side_effect = lambda s: seen.update(s.custom.get("_run", {}))
    manager.send_callback("v2_playbook_on_stats", stats)
    assert "time_saved" in seen  # the stdout callback saw the summary
    monkeypatch.delenv("AWX_ISOLATED_DATA_DIR")
    assert time_saved.go_first(plugin, None) is False
