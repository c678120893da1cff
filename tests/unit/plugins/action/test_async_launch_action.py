"""async_launch action: every bad input refused on the controller, check mode, module args.

In the style of ansible-core's test_reboot.py: a MagicMock(Task), the real local connection
and a fake `_execute_module` that records what would have run on the host.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader

from ansible_collections.tplabs.async_tasks.plugins.action import async_launch
from ansible_collections.tplabs.async_tasks.plugins.action.async_launch import ActionModule
from ansible_collections.tplabs.async_tasks.plugins.modules import async_launch as module_doc

J1, J2 = "j000000000001.77", "j000000000002.77"


class FakeHost:
    """Answers the async_launch module as the host would, and records each call."""

    def __init__(self, reply: dict | None = None) -> None:
        self.calls: list[dict] = []
        self.reply = reply

    def __call__(self, module_name=None, module_args=None, task_vars=None, **_: Any) -> dict:
        assert module_name == "tplabs.async_tasks.async_launch"
        self.calls.append(dict(module_args))
        if self.reply is not None:
            return self.reply
        jobs = module_args["jobs"]
        slots = module_args.get("max_parallel") or len(jobs)
        return {
            "changed": True,
            "jobs": [
                {
                    "jid": f"j{index + 1:012d}.77",
                    "name": job["name"],
                    "state": "running" if index < slots else "queued",
                }
                for index, job in enumerate(jobs)
            ],
            "async_dir": "/root/.ansible_async",
            "supervisor": {"pid": 77, "starttime": 1, "pgid": 76, "uid": 0},
            "max_parallel": slots,
            "invocation": {"module_args": module_args},
        }


@pytest.fixture
def make_action(mocker, monkeypatch):
    def make(args: dict, check_mode: bool = False, no_log: bool = False, reply: dict | None = None):
        task = mocker.MagicMock(Task)
        task.action = "tplabs.async_tasks.async_launch"
        task.args = args
        task.async_val = 0
        task.check_mode = check_mode
        task.no_log = no_log
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
        # What the plugin loader sets on a loaded plugin (core 2.17 and 2.18 read it when
        # they refuse an unknown option).
        action._load_name = "tplabs.async_tasks.async_launch"
        host = FakeHost(reply)
        monkeypatch.setattr(action, "_execute_module", host)
        return action, host

    return make


def run(make_action, args: dict, **kwargs: Any) -> tuple[dict, FakeHost]:
    action, host = make_action(args, **kwargs)
    return action.run(task_vars={"inventory_hostname": "host1"}), host


# --- bad input: refused before anything runs on the host --------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param({"jobs": []}, "jobs: the list is empty: nothing to launch", id="empty"),
        pytest.param({"jobs": "sleep 5"}, "jobs: must be a list of jobs", id="string"),
        pytest.param({"jobs": {"cmd": "true"}}, "jobs: must be a list of jobs", id="dict"),
        pytest.param(
            {"jobs": [{"cmd": "true"}, "true"]}, "jobs[1]: must be a dict", id="entry-str"
        ),
        pytest.param(
            {"jobs": [{"name": "x"}]}, "jobs[0]: needs one of cmd, shell or argv", id="none"
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}, {"cmd": "true", "shell": "true"}]},
            "jobs[1]: has cmd and shell: give exactly one of cmd, shell or argv",
            id="several",
        ),
        pytest.param(
            {"jobs": [{"argv": ["true"], "async": 5, "creates": "/x"}]},
            "jobs[0]: unknown key(s) async, creates (allowed: argv, chdir, cmd, name, shell)",
            id="unknown-keys",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}, {"cmd": "b"}, {"argv": ["sleep", 5]}]},
            "jobs[2].argv[1]: must be a string, got 5 (int)",
            id="argv-int",
        ),
        pytest.param(
            {"jobs": [{"argv": ["echo", None]}]},
            "jobs[0].argv[1]: must be a string, got None (null)",
            id="argv-null",
        ),
        pytest.param(
            {"jobs": [{"argv": []}]}, "jobs[0].argv: must be a non-empty list", id="argv-empty"
        ),
        pytest.param(
            {"jobs": [{"argv": "ls -l"}]}, "jobs[0].argv: must be a non-empty list", id="argv-str"
        ),
        pytest.param(
            {"jobs": [{"argv": [""]}]}, "jobs[0].argv: the command is empty", id="argv0-empty"
        ),
        pytest.param(
            {"jobs": [{"cmd": ""}]}, "jobs[0].cmd: must be a non-empty string", id="cmd-empty"
        ),
        pytest.param(
            {"jobs": [{"cmd": 5}]},
            "jobs[0].cmd: must be a non-empty string, got 5 (int)",
            id="cmd-int",
        ),
        pytest.param(
            {"jobs": [{"cmd": "echo 'open"}]},
            "jobs[0].cmd: cannot be split into arguments (No closing quotation)",
            id="cmd-quote",
        ),
        pytest.param(
            {"jobs": [{"shell": ["ls"]}]},
            "jobs[0].shell: must be a non-empty string",
            id="shell-list",
        ),
        pytest.param(
            {"jobs": [{"cmd": "true", "chdir": ""}]},
            "jobs[0].chdir: must be a non-empty string",
            id="chdir",
        ),
        pytest.param(
            {"jobs": [{"cmd": "true", "name": 3}]},
            "jobs[0].name: must be a non-empty string",
            id="name-int",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a", "name": "x"}, {"cmd": "b"}, {"cmd": "c", "name": "x"}]},
            "jobs[2].name: duplicate name 'x' (jobs[0] has it too): names must be unique",
            id="duplicate-names",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a", "name": "job1"}, {"cmd": "b"}]},
            "jobs[1].name: duplicate name 'job1' (jobs[0] has it too)",
            id="duplicate-default-name",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "async": 0},
            "async: must be a finite number of seconds > 0, got 0",
            id="async-0",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "async": -5},
            "async: must be a finite number of seconds > 0",
            id="async-neg",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "async": "soon"},
            "async: must be a number of seconds > 0, got 'soon' (str)",
            id="async-str",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "async": True},
            "async: must be a number of seconds > 0, got True",
            id="async-bool",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "async": "nan"},
            "async: must be a finite number",
            id="async-nan",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "max_parallel": 0},
            "max_parallel: must be an integer >= 1, got 0 (int)",
            id="slots-0",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "max_parallel": 1.5},
            "max_parallel: must be an integer >= 1, got 1.5",
            id="slots-float",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "max_parallel": "two"},
            "max_parallel: must be an integer >= 1, got 'two'",
            id="slots-str",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "timeout": 5},
            "timeout: only with wait: true",
            id="timeout-no-wait",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "wait": True, "timeout": -1},
            "timeout: must be a finite number of seconds >= 0",
            id="timeout-neg",
        ),
        pytest.param(
            {"jobs": [{"cmd": "a"}], "window": "x"},
            "window: must be a number of seconds >= 0",
            id="window",
        ),
    ],
)
def test_bad_input_is_refused_on_the_controller(make_action, args: dict, message: str) -> None:
    action, host = make_action(args)
    with pytest.raises(AnsibleActionFail) as err:
        action.run(task_vars={})
    assert message in str(err.value)
    assert host.calls == [], "nothing may run on the host"


def test_unknown_option_is_refused(make_action) -> None:
    action, host = make_action({"jobs": [{"cmd": "a"}], "parallel": 2})
    with pytest.raises(AnsibleActionFail, match="parallel"):
        action.run(task_vars={})
    assert host.calls == []


# --- what is sent and returned ---------------------------------------------------------------


def test_module_args_are_normalised_and_the_async_dir_left_unexpanded(
    make_action, monkeypatch
) -> None:
    args = {
        "jobs": [
            {"cmd": "sleep '5'"},
            {"shell": "tar czf /tmp/x.tgz /var/log", "name": "tar"},
            {"argv": ["rsync", "-a", "/src/", "/dst/"], "chdir": "/tmp", "name": "copy-src"},
        ],
        "async": "600",
        "max_parallel": "2",
    }
    action, host = make_action(args)
    monkeypatch.setattr(action, "get_shell_option", lambda name, default=None: "~/jobs")
    result = action.run(task_vars={"inventory_hostname": "host1"})
    (sent,) = host.calls
    assert sent["jobs"] == [
        {"argv": ["sleep", "5"], "name": "job0"},
        {"shell": "tar czf /tmp/x.tgz /var/log", "name": "tar"},
        {"argv": ["rsync", "-a", "/src/", "/dst/"], "chdir": "/tmp", "name": "copy-src"},
    ]
    assert sent["async"] == 600.0 and sent["max_parallel"] == 2 and sent["_async_dir"] == "~/jobs"
    assert sent["wait"] is False
    assert result["changed"] is True and not result.get("failed")
    assert result["jobs"] == [
        {"jid": "j000000000001.77", "name": "job0", "state": "running"},
        {"jid": "j000000000002.77", "name": "tar", "state": "running"},
        {"jid": "j000000000003.77", "name": "copy-src", "state": "queued"},
    ]
    assert result["max_parallel"] == 2 and result["async_dir"] == "/root/.ansible_async"
    assert result["msg"] == "3 job(s) launched, 2 running, 1 queued (max_parallel 2)"
    assert "ansible_job_id" not in result and "invocation" not in result


def test_every_stub_option_is_in_the_action_spec_and_back() -> None:
    documented = yaml.safe_load(module_doc.DOCUMENTATION)["options"]
    documented = {k: v for k, v in documented.items() if not k.startswith("_")}
    assert set(documented) == set(ActionModule.ARGUMENT_SPEC)
    assert set(documented["jobs"]["suboptions"]) == async_launch.JOB_KEYS
    host_side = {k for k in module_doc.ARGUMENT_SPEC if not k.startswith("_")}
    assert host_side == set(documented)
    for name, spec in ActionModule.ARGUMENT_SPEC.items():
        if "default" in spec:
            assert (
                float(documented[name]["default"]) == float(spec["default"])
                if isinstance(spec["default"], float)
                else documented[name]["default"] == spec["default"]
            ), name


def test_check_mode_starts_nothing_and_reports_each_job_skipped(make_action) -> None:
    result, host = run(
        make_action, {"jobs": [{"cmd": "a"}, {"cmd": "b", "name": "b"}]}, check_mode=True
    )
    assert host.calls == []
    assert result["skipped"] is True and result["changed"] is False
    assert result["jobs"] == [
        {"jid": None, "name": "job0", "state": "skipped"},
        {"jid": None, "name": "b", "state": "skipped"},
    ]


def test_a_failed_launch_is_a_failed_result_with_the_hosts_reason(make_action) -> None:
    reply = {
        "failed": True,
        "msg": "async_launch: cannot start the jobs: [Errno 13] Permission denied",
    }
    result, _unused = run(make_action, {"jobs": [{"cmd": "a"}]}, reply=reply)
    assert result["failed"] is True
    assert result["msg"] == reply["msg"]
    assert "jobs" not in result


def test_a_launch_that_gave_no_json_says_the_jobs_state_is_unknown(make_action) -> None:
    reply = {
        "failed": True,
        "msg": "Module result deserialization failed: No start of json char found",
        "module_stdout": "",
        "module_stderr": "Error: Instance is not running",
    }
    result, _unused = run(make_action, {"jobs": [{"cmd": "a"}], "wait": True}, reply=reply)
    assert result["failed"] is True
    assert result["msg"].startswith("the launch gave no result (the host or its connection")
    assert "whether the jobs started is unknown" in result["msg"]
    assert result["msg"].endswith("stderr: Error: Instance is not running")


def test_no_log_keeps_command_lines_out_of_the_verbose_output(make_action, mocker) -> None:
    shown = mocker.patch.object(async_launch.display, "v")
    secret = {"jobs": [{"cmd": "curl -u admin:s3cret https://x", "name": "fetch"}]}
    run(make_action, secret, no_log=True)
    lines = " ".join(str(call.args[0]) for call in shown.call_args_list)
    assert "1 job(s) launched" in lines
    assert "s3cret" not in lines and "fetch" not in lines
    shown.reset_mock()
    run(make_action, secret)
    lines = " ".join(str(call.args[0]) for call in shown.call_args_list)
    assert "fetch" in lines and "s3cret" not in lines


# --- wait: true ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def ended(jid: str, rc: int = 0, started_at: float = 50.0, ended_at: float = 52.0) -> dict:
    record = {"changed": True, "rc": rc, "stdout": f"out {jid}", "stderr": "", "delta": "0:00:02"}
    if rc:
        record.update(failed=True, msg="non-zero return code")
    return {
        "jid": jid,
        "state": "failed" if rc else "finished",
        "path": f"/root/.ansible_async/{jid}",
        "result": record,
        "started_at": started_at,
        "ended_at": ended_at,
        "erased": True,
    }


def still(jid: str, state: str = "running") -> dict:
    return {"jid": jid, "state": state, "path": f"/root/.ansible_async/{jid}", "started_at": 50.0}


class WaitingHost(FakeHost):
    """The launch's own long poll, then async_job_poll round trips, from a script."""

    def __init__(
        self, clock: FakeClock, polled: list[dict], polls: list[list[dict]], launch_seconds: float
    ) -> None:
        super().__init__()
        self.clock = clock
        self.polled = polled
        self.polls = list(polls)
        self.launch_seconds = launch_seconds

    def __call__(self, module_name=None, module_args=None, task_vars=None, **_: Any) -> dict:
        if module_name == "tplabs.async_tasks.async_job_poll":
            self.calls.append(dict(module_args, module="poll"))
            self.clock.now += min(module_args.get("window") or 0, 1.0)
            return {"jobs": self.polls.pop(0), "now": 60.0, "async_dir": "/root/.ansible_async"}
        reply = super().__call__(module_name, module_args, task_vars)
        self.clock.now += self.launch_seconds
        reply.update(polled=self.polled, now=55.0)
        return reply


def wait_run(make_action, monkeypatch, args: dict, polled, polls=(), launch_seconds=2.0):
    clock = FakeClock()
    action, _unused = make_action(args)
    host = WaitingHost(clock, polled, list(polls), launch_seconds)
    monkeypatch.setattr(action, "_execute_module", host)
    monkeypatch.setattr(action, "clock", clock)
    monkeypatch.setattr(action, "sleep", clock.sleep)
    return action.run(task_vars={"inventory_hostname": "host1"}), host


def test_wait_with_every_job_ended_in_the_launch_window_takes_one_round_trip(
    make_action, monkeypatch
) -> None:
    args = {"jobs": [{"cmd": "true", "name": "a"}, {"cmd": "false", "name": "b"}], "wait": True}
    result, host = wait_run(make_action, monkeypatch, args, [ended(J1), ended(J2, rc=1)])
    assert [call.get("module") for call in host.calls] == [None]
    sent = host.calls[0]
    assert sent["wait"] is True and sent["window"] == 30.0 and sent["cleanup"] is True
    assert [(j["jid"], j["name"], j["state"], j["rc"]) for j in result["jobs"]] == [
        (J1, "a", "finished", 0),
        (J2, "b", "failed", 1),
    ]
    assert result["jobs"][0]["stdout_lines"] == [f"out {J1}"]
    assert result["jobs"][0]["elapsed"] == 2.0
    assert result["jobs"][0]["ended_ago"] == 3.0  # host: 55 - 52, and no controller time since
    assert result["counts"] == {"total": 2, "finished": 2, "failed": 1, "pending": 0, "skipped": 0}
    assert result["failed"] is True and "(b): rc=1: non-zero return code" in result["msg"]
    assert result["changed"] is True and result["polls"] == 1 and result["elapsed"] == 2.0
    assert result["max_parallel"] == 2


def test_wait_goes_on_with_the_engine_for_the_jobs_left(make_action, monkeypatch) -> None:
    args = {
        "jobs": [{"cmd": "true"}, {"cmd": "sleep 9"}, {"cmd": "sleep 9"}],
        "wait": True,
        "max_parallel": 2,
        "window": 4,
    }
    J3 = "j000000000003.77"
    polled = [ended(J1), still(J2), still(J3, "queued")]
    polls = [[still(J2), still(J3)], [ended(J2), ended(J3)]]
    result, host = wait_run(make_action, monkeypatch, args, polled, polls)
    poll_calls = [call for call in host.calls if call.get("module") == "poll"]
    assert [call["jids"] for call in poll_calls] == [[J2, J3], [J2, J3]]
    assert all(call["async_dir"] == "/root/.ansible_async" for call in poll_calls)
    assert [job["state"] for job in result["jobs"]] == ["finished"] * 3
    assert result["failed"] is False and result["polls"] == 3
    assert [job["name"] for job in result["jobs"]] == ["job0", "job1", "job2"]


def test_the_wait_timeout_counts_from_the_launch(make_action, monkeypatch) -> None:
    args = {"jobs": [{"cmd": "sleep 99"}], "wait": True, "timeout": 3, "window": 2}
    # The launch took 2.5 s of the 3 s: the engine has 0.5 s left, then times out.
    result, host = wait_run(
        make_action, monkeypatch, args, [still(J1)], [[still(J1)]], launch_seconds=2.5
    )
    (poll,) = [call for call in host.calls if call.get("module") == "poll"]
    assert poll["window"] == 0.5
    assert result["failed"] is True and result["msg"].startswith(
        "timed out after 3.0s (timeout 3s)"
    )
    assert result["jobs"][0]["state"] == "running" and result["elapsed"] == 3.0
