"""Fakes for the async_wait action tests, in the style of ansible-core's test_reboot.py.

A MagicMock(Task), the real local connection, and a fake ``_execute_module`` that answers as
the remote module would, with a fake clock.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader

from ansible_collections.tplabs.async_tasks.plugins.action.async_wait import ActionModule

J1, J2, J3 = "j111.1", "j222.2", "j333.3"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, secs: float) -> None:
        self.now += secs


class FakeHost:
    """Answers async_job_poll calls from a script: one list of job views per poll."""

    def __init__(self, clock: FakeClock, script: list[Any], poll_seconds: float = 1.0) -> None:
        self.clock = clock
        self.script = list(script)
        self.calls: list[dict] = []
        self.poll_seconds = poll_seconds

    def __call__(self, module_name=None, module_args=None, task_vars=None, **_: Any) -> dict:
        assert module_name == "tplabs.async_tasks.async_job_poll"
        self.calls.append(dict(module_args))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, tuple):  # (seconds the round trip takes, reply)
            self.clock.now += step[0]
            return step[1]
        if isinstance(step, dict):
            return step
        self.clock.now += min(self.poll_seconds, module_args.get("window", 0) or 0)
        return {"changed": False, "checks": 1, "jobs": step}


def running(jid: str, started_at: float = 0.0, running_for: float = 1.0) -> dict:
    return {"jid": jid, "state": "running", "started_at": started_at, "running_for": running_for}


def done(jid: str, rc: int = 0, started_at: float | None = 0.0, ended_at: float = 5.0) -> dict:
    result = {"rc": rc, "stdout": f"out {jid}", "stderr": "", "changed": True}
    if rc:
        result.update(failed=True, msg="non-zero return code")
    view = {
        "jid": jid,
        "state": "failed" if rc else "finished",
        "ended_at": ended_at,
        "result": result,
        "erased": True,
    }
    if started_at is not None:
        view["started_at"] = started_at
    return view


def status(jid: str, path: str | None = None) -> dict:
    """The result of done(jid) as async_status returns it."""
    result = {
        "ansible_job_id": jid,
        "started": True,
        "finished": True,
        "rc": 0,
        "stdout": f"out {jid}",
        "stdout_lines": [f"out {jid}"],
        "stderr": "",
        "stderr_lines": [],
        "changed": True,
        "failed": False,
    }
    if path:
        result["results_file"] = path
    return result


def launch(jid: str, item: Any = None) -> dict:
    res = {"ansible_job_id": jid, "started": True, "finished": False, "changed": True}
    if item is not None:
        res.update(item=item, ansible_loop_var="item")
    return res


def action_factory(mocker, monkeypatch, clock: FakeClock):
    """make(args, script, check_mode, poll_seconds) -> (action, fake host)."""

    def make(args: dict, script: list[Any], check_mode: bool = False, poll_seconds: float = 1.0):
        task = mocker.MagicMock(Task)
        task.action = "tplabs.async_tasks.async_wait"
        task.args = args
        task.async_val = 0
        task.check_mode = check_mode
        task.diff = False
        task.environment = []
        play_context = PlayContext()
        play_context.check_mode = check_mode
        connection = connection_loader.get("local", play_context, os.devnull)
        action = ActionModule(
            task=task,
            connection=connection,
            play_context=play_context,
            loader=None,
            templar=None,
            shared_loader_obj=None,
        )
        host = FakeHost(clock, script, poll_seconds)
        monkeypatch.setattr(action, "_execute_module", host)
        monkeypatch.setattr(action, "clock", clock)
        monkeypatch.setattr(action, "sleep", clock.sleep)
        # On the class: the engine resets only connections whose plugin implements reset
        # (2.19's local does, 2.17's and 2.18's do not).
        monkeypatch.setattr(type(connection), "reset", mocker.MagicMock())
        return action, host

    return make
