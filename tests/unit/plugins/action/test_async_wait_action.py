"""async_wait action: argument handling, jid checks, result shaping and the poll loop.

The fakes (fake host, fake clock) are in async_wait_fakes.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from async_wait_fakes import J1, J2, J3, done, launch, running, status

from ansible_collections.tplabs.async_tasks.plugins.action.async_wait import ActionModule
from ansible_collections.tplabs.async_tasks.plugins.modules import async_wait as doc_stub
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import _wait
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait_input import (
    collect_jobs,
    seconds,
)

ASYNC_DIR = "~/.ansible_async"  # passed as written: the module expands it on the host

# --- argument handling -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        pytest.param(J1, [J1], id="jid-string"),
        pytest.param([J1, J2], [J1, J2], id="list-of-jids"),
        pytest.param(launch(J1), [J1], id="registered-result"),
        pytest.param(
            {"results": [launch(J1, "a"), launch(J2, "b")], "changed": True},
            [J1, J2],
            id="loop-result",
        ),
        pytest.param([launch(J1, "a"), launch(J2, "b")], [J1, J2], id="loop-results-list"),
        pytest.param(
            [{"results": [launch(J1, "a")]}, launch(J2), J3], [J1, J2, J3], id="list-of-either"
        ),
        pytest.param([], [], id="empty"),
    ],
)
def test_collect_jobs_accepts_every_documented_shape(jobs: Any, expected: list[str]) -> None:
    assert [e.jid for e in collect_jobs(jobs)] == expected


def test_collect_jobs_marks_skipped_and_failed_launches_and_keeps_items() -> None:
    loop = {
        "results": [
            launch(J1, "sleep 3"),
            {
                "skipped": True,
                "item": "sleep 5",
                "ansible_loop_var": "item",
                "false_condition": "False",
            },
            {"failed": True, "msg": "boom", "item": "exit 3", "ansible_loop_var": "item"},
        ]
    }
    entries = collect_jobs(loop)
    assert [(e.jid, e.state, e.item) for e in entries] == [
        (J1, None, "sleep 3"),
        (None, "skipped", "sleep 5"),
        (None, "launch_failed", "exit 3"),
    ]
    assert "boom" in entries[2].msg


def test_collect_jobs_takes_an_already_finished_poll_result_as_is() -> None:
    (entry,) = collect_jobs({"ansible_job_id": J1, "finished": True, "rc": 0})
    assert entry.state == "finished"
    assert entry.result["rc"] == 0


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        pytest.param(42, r"^jobs is a int \(42\)", id="int"),
        pytest.param(None, r"^jobs is a NoneType", id="none"),
        pytest.param([[J1]], r"^jobs\[0\] is a list", id="nested-list"),
        pytest.param(
            {"changed": True, "rc": 0},
            r"^jobs is not an async launch result \(no ansible_job_id",
            id="not-async",
        ),
        pytest.param(
            "../../etc/passwd",
            r"^jobs: '\.\./\.\./etc/passwd' is not an async job id",
            id="traversal",
        ),
        pytest.param(
            [J1, "j1.2/../x"],
            r"^jobs\[1\]: 'j1\.2/\.\./x' is not an async job id",
            id="traversal-in-list",
        ),
        pytest.param(
            {"ansible_job_id": "12345.67"}, r"'12345\.67' is not an async job id", id="old-format"
        ),
        pytest.param(
            {"results": [launch(J1), "x"]}, r"^jobs\.results\[1\] is a str", id="bad-loop-item"
        ),
    ],
)
def test_bad_jobs_fail_before_touching_the_host(make_action, jobs: Any, message: str) -> None:
    action, host = make_action({"jobs": jobs}, [])
    with pytest.raises(AnsibleActionFail, match=message):
        action.run(task_vars={})
    assert host.calls == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        pytest.param(
            "timeout",
            -1,
            r"timeout must be a finite number of seconds >= 0, got -1",
            id="negative-timeout",
        ),
        pytest.param(
            "timeout",
            "soon",
            r"timeout must be a number of seconds, got 'soon' \(str\)",
            id="text-timeout",
        ),
        pytest.param(
            "timeout",
            True,
            r"timeout must be a number of seconds, got the boolean True",
            id="bool-timeout",
        ),
        pytest.param(
            "window",
            -0.5,
            r"window must be a finite number of seconds >= 0, got -0.5",
            id="negative-window",
        ),
        pytest.param(
            "window",
            [1],
            r"window must be a number of seconds, got \[1\] \(list\)",
            id="list-window",
        ),
        pytest.param("poll_interval", 0, r"poll_interval must be > 0", id="zero-interval"),
        pytest.param(
            "timeout",
            "nan",
            r"timeout must be a finite number of seconds >= 0, got 'nan'",
            id="nan-timeout",
        ),
        pytest.param(
            "max_connection_failures",
            "inf",
            r"max_connection_failures must be a whole number >= 0, got 'inf'",
            id="infinite-count",
        ),
        pytest.param(
            "max_connection_failures",
            "nan",
            r"max_connection_failures must be a whole number >= 0, got 'nan'",
            id="nan-count",
        ),
    ],
)
def test_bad_seconds_are_named(make_action, option: str, value: Any, message: str) -> None:
    action, host = make_action({"jobs": J1, option: value}, [])
    with pytest.raises(AnsibleActionFail, match=message):
        action.run(task_vars={})
    assert host.calls == []


def test_seconds_accepts_numeric_strings() -> None:
    assert seconds("timeout", "2.5", None) == 2.5
    assert seconds("timeout", None, 7.0) == 7.0


def test_bad_on_timeout_choice_is_rejected(make_action) -> None:
    action, _unused = make_action({"jobs": J1, "on_timeout": "explode"}, [])
    with pytest.raises(Exception, match="on_timeout"):
        action.run(task_vars={})


def test_argument_spec_matches_the_documentation() -> None:
    options = yaml.safe_load(doc_stub.DOCUMENTATION)["options"]
    spec = ActionModule.ARGUMENT_SPEC
    assert set(options) == set(spec)
    assert options["jobs"]["aliases"] == spec["jobs"]["aliases"]
    for name in ("cleanup", "fail_on_job_failure", "fail_fast", "on_timeout"):
        assert options[name]["default"] == spec[name]["default"], name
    assert options["on_timeout"]["choices"] == spec["on_timeout"]["choices"]
    assert options["window"]["default"] == ActionModule.DEFAULT_WINDOW
    assert options["poll_interval"]["default"] == ActionModule.DEFAULT_POLL_INTERVAL


# --- the loop and result shaping ------------------------------------------------------------


def test_empty_list_succeeds_without_a_round_trip(make_action) -> None:
    action, host = make_action({"jobs": []}, [])
    result = action.run(task_vars={})
    assert host.calls == []
    assert result["failed"] is False
    assert result["msg"] == "no jobs to wait for"
    assert result["counts"] == {"total": 0, "finished": 0, "failed": 0, "pending": 0, "skipped": 0}
    assert result["polls"] == 0


def test_waits_with_one_round_trip_per_poll_for_all_jobs(make_action, clock) -> None:
    loop = {"results": [launch(J1, "sleep 3"), launch(J2, "sleep 5")]}
    script = [
        [done(J1, started_at=0.0, ended_at=3.0), running(J2, running_for=4.0)],
        [done(J2, started_at=0.0, ended_at=5.0)],
    ]
    action, host = make_action({"jobs": loop}, script)
    result = action.run(task_vars={"inventory_hostname": "host1"})
    assert [c["jids"] for c in host.calls] == [[J1, J2], [J2]]
    assert host.calls[0] == {
        "jids": [J1, J2],
        "async_dir": ASYNC_DIR,
        "window": 5.0,
        "interval": 0.1,
        "fail_fast": False,
        "cleanup": True,
    }
    assert result["failed"] is False
    assert result["polls"] == 2
    assert result["counts"] == {"total": 2, "finished": 2, "failed": 0, "pending": 0, "skipped": 0}
    assert result["finished"] is True
    assert result["changed"] is False
    assert result["jobs"] == [
        {
            "jid": J1,
            "state": "finished",
            "finished": True,
            "failed": False,
            "rc": 0,
            "stdout": f"out {J1}",
            "stderr": "",
            "stdout_lines": [f"out {J1}"],
            "stderr_lines": [],
            "msg": "finished",
            "result": status(J1),
            "elapsed": 3.0,
            "ended_ago": None,
            "item": "sleep 3",
            "erased": True,
        },
        {
            "jid": J2,
            "state": "finished",
            "finished": True,
            "failed": False,
            "rc": 0,
            "stdout": f"out {J2}",
            "stderr": "",
            "stdout_lines": [f"out {J2}"],
            "stderr_lines": [],
            "msg": "finished",
            "result": status(J2),
            "elapsed": 5.0,
            "ended_ago": None,
            "item": "sleep 5",
            "erased": True,
        },
    ]
    assert result["msg"] == "2 job(s) finished in 2.0s with 2 poll(s)"


def test_first_start_time_seen_is_kept_for_elapsed(make_action) -> None:
    script = [[running(J1, started_at=10.0)], [done(J1, started_at=None, ended_at=14.5)]]
    action, _unused = make_action({"jobs": J1}, script)
    result = action.run(task_vars={})
    assert result["jobs"][0]["elapsed"] == 4.5


def test_ended_ago_counts_host_time_then_controller_time(make_action) -> None:
    """Host clock from the job's end to the reply, controller clock from the reply to the return."""
    first = {
        "now": 500.0,
        "jobs": [
            done(J1, started_at=490.0, ended_at=497.5),
            running(J2),
            # J3 ended 70 s before the first reply, long before the wait (2 s) began.
            done(J3, started_at=400.0, ended_at=430.0),
        ],
    }
    second = {"now": 512.0, "jobs": [done(J2, started_at=490.0, ended_at=511.0)]}
    action, _unused = make_action({"jobs": [J1, J2, J3]}, [(2.0, first), (1.5, second)])
    result = action.run(task_vars={})
    # J1: 2.5 s on the host before the first reply, then 1.5 s (the second poll) on the controller.
    # J3: a wait started after the job's end counts the time before it too (70 s + 1.5 s).
    assert [j["ended_ago"] for j in result["jobs"]] == [4.0, 1.0, 71.5]


def test_ended_ago_is_null_when_the_host_clock_is_unknown(make_action) -> None:
    action, _unused = make_action({"jobs": [J1]}, [[done(J1)]])
    assert action.run(task_vars={})["jobs"][0]["ended_ago"] is None


def test_elapsed_falls_back_to_the_modules_delta(make_action) -> None:
    view = done(J1, started_at=None)
    view["result"]["delta"] = "0:00:02.500000"
    action, _unused = make_action({"jobs": J1}, [[view]])
    assert action.run(task_vars={})["jobs"][0]["elapsed"] == 2.5


def test_a_failed_job_fails_the_task_and_is_named(make_action) -> None:
    loop = {"results": [launch(J1, "sleep 3"), launch(J2, "exit 3")]}
    action, _unused = make_action({"jobs": loop}, [[done(J1), done(J2, rc=3)]])
    result = action.run(task_vars={})
    assert result["failed"] is True
    assert result["msg"] == "1 of 2 job(s) failed: j222.2 (item exit 3): rc=3: non-zero return code"
    assert result["counts"]["failed"] == 1
    assert result["jobs"][1]["rc"] == 3
    assert result["jobs"][1]["finished"] is True


def test_fail_on_job_failure_false_reports_without_failing(make_action) -> None:
    action, _unused = make_action({"jobs": [J1], "fail_on_job_failure": False}, [[done(J1, rc=2)]])
    result = action.run(task_vars={})
    assert result["failed"] is False
    assert result["jobs"][0]["failed"] is True
    assert "rc=2" in result["msg"]


def test_skipped_and_launch_failed_items_are_not_waited_for(make_action) -> None:
    loop = {
        "results": [
            launch(J1, "a"),
            {"skipped": True, "item": "b", "ansible_loop_var": "item"},
            {"failed": True, "msg": "no such file", "item": "c", "ansible_loop_var": "item"},
        ]
    }
    action, host = make_action({"jobs": loop}, [[done(J1)]])
    result = action.run(task_vars={})
    assert [c["jids"] for c in host.calls] == [[J1]]
    assert [j["state"] for j in result["jobs"]] == ["finished", "skipped", "launch_failed"]
    assert result["failed"] is True
    assert (
        "(no job id) (item c): the launch failed, nothing to wait for: no such file"
        in result["msg"]
    )
    assert result["counts"] == {"total": 3, "finished": 1, "failed": 1, "pending": 0, "skipped": 1}


def test_all_skipped_is_a_skipped_task(make_action) -> None:
    action, host = make_action({"jobs": {"skipped": True, "changed": False}}, [])
    result = action.run(task_vars={})
    assert host.calls == []
    assert result["skipped"] is True
    assert result["failed"] is False
    assert result["msg"] == "every job was skipped: nothing to wait for"


def test_duplicate_jids_are_polled_once_and_reported_twice(make_action) -> None:
    action, host = make_action({"jobs": [J1, J1]}, [[done(J1)]])
    result = action.run(task_vars={})
    assert host.calls[0]["jids"] == [J1]
    assert [j["jid"] for j in result["jobs"]] == [J1, J1]


@pytest.mark.parametrize(
    ("state", "msg"),
    [
        pytest.param("orphaned", "orphaned: no async_wrapper process left", id="orphaned"),
        pytest.param(
            "unknown", "unknown job: no job file /fake/.ansible_async/j111.1", id="unknown"
        ),
        pytest.param("corrupt", "job file cannot be parsed: not JSON", id="corrupt"),
        pytest.param(
            "timeout",
            "the job reached its own async limit (Timeout exceeded) and was killed",
            id="timeout",
        ),
    ],
)
def test_remote_failure_states_are_reported_with_their_cause(
    make_action, state: str, msg: str
) -> None:
    view = {"jid": J1, "state": state, "msg": msg}
    if state == "timeout":
        view["result"] = {"failed": True, "msg": "Timeout exceeded", "child_pid": 4}
    action, _unused = make_action({"jobs": J1}, [[view]])
    result = action.run(task_vars={})
    assert result["failed"] is True
    assert result["msg"] == f"1 of 1 job(s) failed: {J1}: {msg}"
    assert result["jobs"][0]["state"] == state
    assert result["jobs"][0]["finished"] is (state == "timeout")


def test_timeout_names_each_unfinished_job_and_how_long_it_ran(make_action, clock) -> None:
    loop = {"results": [launch(J1, "sleep 1"), launch(J2, "sleep 60")]}
    script = [
        [done(J1), running(J2, running_for=1.5)],
        [running(J2, running_for=2.5)],
    ]
    action, host = make_action(
        {"jobs": loop, "timeout": 2.5, "window": 1.5}, script, poll_seconds=1.5
    )
    result = action.run(task_vars={})
    # The second window is cut to what is left of the timeout.
    assert [c["window"] for c in host.calls] == [1.5, 1.0]
    assert result["failed"] is True
    assert result["msg"] == (
        "timed out after 2.5s (timeout 2.5s) with 1 job(s) still running: j222.2 (item sleep 60) ran 2.5s"
    )
    assert result["counts"]["pending"] == 1
    assert result["finished"] is False
    assert result["jobs"][1]["state"] == "running"


def test_timeout_zero_reads_once(make_action) -> None:
    action, host = make_action({"jobs": J1, "timeout": 0}, [[running(J1, running_for=3.0)]])
    result = action.run(task_vars={})
    assert [c["window"] for c in host.calls] == [0.0]
    assert result["failed"] is True
    assert "ran 3.0s" in result["msg"]


def test_on_timeout_kill_stops_the_unfinished_jobs(make_action) -> None:
    killed = {
        "jid": J2,
        "state": "killed",
        "msg": "killed by tplabs.async_tasks.async_wait after the wait timed out",
        "started_at": 0.0,
        "ended_at": 2.0,
        "result": {"failed": True},
    }
    script = [[done(J1), running(J2)], {"changed": False, "jobs": [killed]}]
    action, host = make_action({"jobs": [J1, J2], "timeout": 1, "on_timeout": "kill"}, script)
    result = action.run(task_vars={})
    assert host.calls[1] == {"jids": [J2], "async_dir": ASYNC_DIR, "mode": "kill", "cleanup": True}
    assert result["failed"] is True
    assert result["msg"].startswith(
        "timed out after 1.0s (timeout 1s) with 1 job(s) killed: j222.2 ran 2.0s"
    )
    assert result["jobs"][1]["state"] == "killed"
    assert result["polls"] == 2


def test_on_timeout_kill_does_nothing_in_check_mode(make_action) -> None:
    action, host = make_action(
        {"jobs": J1, "timeout": 0, "on_timeout": "kill"}, [[running(J1)]], check_mode=True
    )
    result = action.run(task_vars={})
    assert len(host.calls) == 1
    assert result["jobs"][0]["state"] == "running"


def test_fail_fast_returns_at_the_first_failure(make_action) -> None:
    script = [[running(J1), done(J2, rc=1)]]
    action, host = make_action({"jobs": [J1, J2], "fail_fast": True}, script)
    result = action.run(task_vars={})
    assert len(host.calls) == 1
    assert host.calls[0]["fail_fast"] is True
    assert result["failed"] is True
    assert result["msg"] == (
        "1 of 2 job(s) failed: j222.2: rc=1: non-zero return code; "
        "fail_fast: returned with 1 job(s) still running"
    )


def test_without_fail_fast_a_failure_does_not_stop_the_wait(make_action) -> None:
    script = [[running(J1), done(J2, rc=1)], [done(J1)]]
    action, host = make_action({"jobs": [J1, J2]}, script)
    result = action.run(task_vars={})
    assert [c["jids"] for c in host.calls] == [[J1, J2], [J1]]
    assert [j["state"] for j in result["jobs"]] == ["finished", "failed"]


def test_a_lost_connection_is_retried_then_reported_unreachable(make_action, clock) -> None:
    lost = AnsibleConnectionFailure("instance not running: host1")
    script = [[running(J1)], *[lost] * 6]
    action, host = make_action({"jobs": [J1]}, script)
    result = action.run(task_vars={})
    assert len(host.calls) == 7
    assert result["unreachable"] is True
    assert result["failed"] is True
    # Pauses 1, 2, 4, 5, 5 s between the six failures (the first poll took 1 s).
    assert result["msg"] == (
        "lost the host after 6 failed round trip(s) in a row over 17.0s (the wait ran 18.0s) "
        "with 1 job(s) unfinished (j111.1): connection failure: instance not running: host1"
    )
    assert action._connection.reset.call_count == 5


def test_a_transient_failure_is_retried_and_forgotten(make_action) -> None:
    crash = {"failed": True, "msg": "MODULE FAILURE", "rc": 137}
    action, host = make_action({"jobs": [J1]}, [crash, [done(J1)]])
    result = action.run(task_vars={})
    assert len(host.calls) == 2
    assert result["failed"] is False
    assert "unreachable" not in result


def test_lost_connection_stops_at_the_timeout(make_action) -> None:
    lost = AnsibleConnectionFailure("gone")
    action, host = make_action({"jobs": [J1], "timeout": 0.5}, [lost, lost, lost])
    result = action.run(task_vars={})
    assert len(host.calls) == 2
    assert result["unreachable"] is True
    assert result["msg"].startswith(
        "lost the host after 2 failed round trip(s) in a row over 0.5s (the wait ran 0.5s)"
    )


def test_progress_is_shown_with_v(make_action, mocker) -> None:
    shown = mocker.patch.object(_wait.display, "v")
    action, _unused = make_action({"jobs": [J1, J2]}, [[done(J1), running(J2)], [done(J2)]])
    action.run(task_vars={"inventory_hostname": "host7"})
    assert [c.args[0] for c in shown.call_args_list] == [
        "async_wait: 1/2 jobs done, 1 pending, 1.0s elapsed, 1 poll(s)",
        "async_wait: 2/2 jobs done, 0 pending, 2.0s elapsed, 2 poll(s)",
    ]
    assert shown.call_args_list[0].kwargs == {"host": "host7"}


def test_window_zero_pauses_between_polls(make_action, clock) -> None:
    action, host = make_action(
        {"jobs": J1, "window": 0}, [[running(J1)], [running(J1)], [done(J1)]]
    )
    result = action.run(task_vars={})
    assert [c["window"] for c in host.calls] == [0.0, 0.0, 0.0]
    assert result["polls"] == 3
    assert clock.now == pytest.approx(1000.2)  # two pauses of poll_interval, none after the last


def test_window_zero_pauses_never_outlast_the_timeout(make_action, clock) -> None:
    """window 0, poll_interval 15, timeout 2: the pause stops at the deadline, not 15 s later."""
    action, host = make_action(
        {"jobs": J1, "window": 0, "poll_interval": 15, "timeout": 2},
        [[running(J1)], [running(J1)], [running(J1)]],
    )
    result = action.run(task_vars={})
    assert result["failed"] is True
    assert result["jobs"][0]["state"] == "running"
    assert clock.now <= 1000 + 2 + 0.001, clock.now
    assert len(host.calls) == 2  # the first poll, then one at the deadline


def test_a_module_that_keeps_failing_is_reported_as_such(make_action) -> None:
    crash = {"failed": True, "msg": "MODULE FAILURE: /usr/bin/python3: not found"}
    action, host = make_action({"jobs": [J1], "max_connection_failures": 3}, [crash] * 3)
    result = action.run(task_vars={})
    assert len(host.calls) == 3
    assert "unreachable" not in result
    assert result["failed"] is True
    assert result["msg"] == (
        "could not poll the jobs after 3 failed round trip(s) in a row over 3.0s (the wait ran "
        "3.0s) with 1 job(s) unfinished (j111.1): MODULE FAILURE: /usr/bin/python3: not found"
    )


def test_a_kill_that_fails_is_reported(make_action) -> None:
    script = [[running(J1)], {"failed": True, "msg": "permission denied"}]
    action, _unused = make_action({"jobs": [J1], "timeout": 0, "on_timeout": "kill"}, script)
    result = action.run(task_vars={})
    assert result["failed"] is True
    assert result["msg"].endswith("; could not kill the unfinished jobs: permission denied")
    assert result["jobs"][0]["state"] == "running"


# --- the engine, as another action (async_launch) calls it ------------------------------------


def test_wait_for_jobs_from_another_action_counts_from_its_start(make_action, clock) -> None:
    action, host = make_action({}, [[running(J1)], [done(J1, ended_at=9.0)]])
    options = _wait.WaitOptions(timeout=30.0, window=2.0)
    report = _wait.wait_for_jobs(
        action,
        {"jobs": [{"jid": J1, "name": "build", "state": "running"}]},
        {"inventory_hostname": "host1"},
        options,
        async_dir="/var/jobs",
        clock=clock,
        sleep=clock.sleep,
        started_at=clock.now - 3.0,  # the launch began 3 s before the wait
    )
    assert [c["async_dir"] for c in host.calls] == ["/var/jobs", "/var/jobs"]
    assert report["elapsed"] == 5.0  # 3 s of launch, then two 1 s polls
    assert report["jobs"][0]["name"] == "build"
    assert report["failed"] is False
