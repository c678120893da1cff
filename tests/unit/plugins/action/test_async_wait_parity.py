"""async_wait at parity with core's async_status and poll: N (issue 8), through ActionModule.run.

Each reply is what the poll module returns for a job file that ansible-core wrote: the
records below are copied from real job files (2.19.14 and 2.17.14 async_wrapper), the
2.19 objects as the controller decodes them. The end-to-end counterpart, with core's own
wait as the baseline, is tests/integration/test_parity.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import _wait

J1, J2 = "j111.1", "j222.2"
PATH1 = f"/root/.ansible_async/{J1}"

WRAPPER_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/tmp/ansible_async_wrapper_payload.zip/ansible/modules/async_wrapper.py", '
    "line 182, in _run_module\n"
    "ValueError: No start of json char found\n"
)
MODULE_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/tmp/ansible_async_test_payload.zip/ansible/modules/async_test.py", line 27, in main\n'
    "Exception: failing via exception\n"
)


def ended(jid: str, record: dict, state: str = "finished") -> dict:
    """The poll module's view of a job that ended, its record read from the job file."""
    return {
        "jid": jid,
        "state": state,
        "path": f"/root/.ansible_async/{jid}",
        "started_at": 100.0,
        "ended_at": 101.0,
        "result": record,
        "erased": True,
    }


def launched(jid: str, **extra: Any) -> dict:
    return {"ansible_job_id": jid, "started": True, "finished": False, "changed": True, **extra}


# --- 1. exceptions: 2.19's structured error summary, 2.17/2.18 traceback strings --------------


def _event(msg: str, cause: Any = None) -> SimpleNamespace:
    chain = None if cause is None else SimpleNamespace(msg_reason="", event=cause, follow=True)
    return SimpleNamespace(msg=msg, chain=chain)


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        pytest.param(
            {"event": {"msg": "failing via exception"}},
            "Module failed: failing via exception",
            id="2.19-as-json",
        ),
        pytest.param(
            SimpleNamespace(event=_event("failing via exception")),
            "Module failed: failing via exception",
            id="2.19-decoded",
        ),
        pytest.param(
            SimpleNamespace(event=_event("cannot connect", _event("connection refused"))),
            "Module failed: cannot connect: connection refused",
            id="2.19-chained-cause",
        ),
        pytest.param(MODULE_TRACEBACK, "Module failed: Exception: failing via exception", id="str"),
    ],
)
def test_a_module_exception_is_read_as_core_reads_it(
    make_action, exception: Any, expected: str
) -> None:
    record = {"failed": True, "exception": exception}
    action, _unused = make_action({"jobs": launched(J1)}, [[ended(J1, record, "failed")]])
    result = action.run(task_vars={})
    assert result["jobs"][0]["msg"] == expected
    assert result["msg"] == f"1 of 1 job(s) failed: {J1}: {expected}"


def test_a_217_module_exception_is_read_from_its_traceback_not_async_wrappers(
    make_action,
) -> None:
    """2.17/2.18: the module printed no JSON; async_wrapper's own traceback is in msg."""
    record = {
        "failed": 1,
        "cmd": "/root/.ansible/tmp/ansible-tmp-1/AnsiballZ_async_test.py",
        "data": "",
        "stderr": MODULE_TRACEBACK,
        "msg": WRAPPER_TRACEBACK,
        "ansible_job_id": J1,
    }
    action, _unused = make_action({"jobs": launched(J1)}, [[ended(J1, record, "failed")]])
    job = action.run(task_vars={})["jobs"][0]
    assert job["msg"] == "Module failed: Exception: failing via exception"
    assert job["stderr_lines"][-1] == "Exception: failing via exception"


def test_non_json_output_without_a_traceback_says_so(make_action) -> None:
    record = {
        "failed": True,
        "cmd": "x",
        "data": "not json at all",
        "stderr": "",
        "msg": WRAPPER_TRACEBACK,
    }
    action, _unused = make_action({"jobs": J1}, [[ended(J1, record, "failed")]])
    assert action.run(task_vars={})["jobs"][0]["msg"] == (
        "the module's output is not JSON (async_wrapper: ValueError: No start of json char "
        "found): 'not json at all'"
    )


# --- 2. warnings and deprecations, returned where core's result processing shows them --------


def test_warnings_and_deprecations_of_every_job_reach_the_task_result(make_action) -> None:
    deprecation = {"msg": "old option", "version": "9.99", "collection_name": "tplabs.async_tasks"}
    first = {"changed": False, "warnings": ["a warning from the job"]}
    second = {
        "changed": False,
        "warnings": ["Module invocation had junk after the JSON data: junk_after_module_output"],
        "deprecations": [deprecation],
    }
    action, _unused = make_action({"jobs": [J1, J2]}, [[ended(J1, first), ended(J2, second)]])
    result = action.run(task_vars={})
    assert result["warnings"] == [
        "a warning from the job",
        "Module invocation had junk after the JSON data: junk_after_module_output",
    ]
    assert result["deprecations"] == [deprecation]
    # Core pops keys from the deprecation dicts it shows: the job's own result keeps its copy.
    result["deprecations"][0].pop("msg")
    assert result["jobs"][1]["result"]["deprecations"] == [deprecation]


def test_no_warnings_key_when_no_job_warned(make_action) -> None:
    action, _unused = make_action({"jobs": J1}, [[ended(J1, {"changed": False})]])
    result = action.run(task_vars={})
    assert "warnings" not in result and "deprecations" not in result


# --- 3. connection faults, ridden out until the deadline ----------------------------------


def put_file_failure() -> AnsibleError:
    """What the local connection raises when a transfer fails (not AnsibleConnectionFailure)."""

    def put_file() -> None:
        raise AnsibleError("file or module does not exist: /root/.ansible/tmp/x/AnsiballZ.py")

    try:
        put_file()
    except AnsibleError as err:
        return err
    raise AssertionError("unreachable")


def test_a_failed_file_transfer_is_retried_like_a_connection_failure(make_action) -> None:
    action, host = make_action({"jobs": J1}, [put_file_failure(), [ended(J1, {"rc": 0})]])
    result = action.run(task_vars={})
    assert len(host.calls) == 2
    assert result["failed"] is False
    assert result["jobs"][0]["state"] == "finished"


def test_a_failed_transfer_gets_a_new_temp_dir_and_the_old_one_is_removed(
    make_action, mocker
) -> None:
    action, host = make_action({"jobs": J1}, [put_file_failure(), [ended(J1, {"rc": 0})]])
    shell = action._connection._shell
    shell.tmpdir = "/root/.ansible/tmp/ansible-tmp-gone"
    tmpdirs = []
    host_call = host.__call__
    mocker.patch.object(
        action,
        "_execute_module",
        side_effect=lambda **kw: (tmpdirs.append(shell.tmpdir), host_call(**kw))[1],
    )
    removed = mocker.patch.object(action, "_low_level_execute_command", return_value={"rc": 0})
    result = action.run(task_vars={})
    assert result["failed"] is False
    assert tmpdirs == ["/root/.ansible/tmp/ansible-tmp-gone", None]
    (command,), _unused = removed.call_args
    assert "ansible-tmp-gone" in command and command.startswith("rm -f -r")


def test_transfers_that_keep_failing_make_the_host_unreachable(make_action) -> None:
    args = {"jobs": J1, "max_connection_failures": 2}
    action, _unused = make_action(args, [put_file_failure(), put_file_failure()])
    result = action.run(task_vars={})
    assert result["unreachable"] is True
    assert result["msg"].startswith("lost the host after 2 failed round trip(s) in a row")
    assert "could not run the poll module: file or module does not exist" in result["msg"]


def test_another_ansible_error_is_retried_but_is_not_unreachable(make_action) -> None:
    missing = AnsibleError("The module tplabs.async_tasks.async_job_poll was not found")
    action, host = make_action({"jobs": J1, "max_connection_failures": 2}, [missing, missing])
    result = action.run(task_vars={})
    assert len(host.calls) == 2
    assert "unreachable" not in result
    assert result["msg"].startswith("could not poll the jobs after 2 failed round trip(s)")


def test_faults_are_ridden_out_until_the_timeout_when_the_count_is_off(make_action, clock) -> None:
    lost = AnsibleConnectionFailure("instance not running")
    script = [lost] * 12 + [[ended(J1, {"rc": 0})]]
    args = {"jobs": J1, "timeout": 120, "max_connection_failures": 0}
    action, host = make_action(args, script)
    result = action.run(task_vars={})
    assert len(host.calls) == 13
    assert result["failed"] is False
    assert "unreachable" not in result


def test_faults_stop_at_the_timeout_and_say_how_many_over_how_long(make_action) -> None:
    lost = AnsibleConnectionFailure("instance not running")
    args = {"jobs": J1, "timeout": 10, "max_connection_failures": 0}
    action, host = make_action(args, [lost] * 20)
    result = action.run(task_vars={})
    # Pauses 1, 2, 4 then what is left of the 10 s: four failures, the last at the deadline.
    assert len(host.calls) == 5
    assert result["unreachable"] is True
    assert result["elapsed"] == 10.0
    assert result["msg"].startswith(
        "lost the host after 5 failed round trip(s) in a row over 10.0s (the wait ran 10.0s) with "
        "1 job(s) unfinished (j111.1): connection failure: instance not running"
    )


def test_each_retry_is_shown_at_vvv(make_action, mocker) -> None:
    shown = mocker.patch.object(_wait.display, "vvv")
    lost = AnsibleConnectionFailure("instance not running")
    action, _unused = make_action({"jobs": J1}, [lost, lost, [ended(J1, {"rc": 0})]])
    action.run(task_vars={"inventory_hostname": "host1"})
    messages = [c.args[0] for c in shown.call_args_list]
    assert messages == [
        "async_wait: round trip 1 failed (connection failure: instance not running); "
        "1 failure(s) in a row (limit 6) over 0.0s, retrying in 1.0s",
        "async_wait: round trip 2 failed (connection failure: instance not running); "
        "2 failure(s) in a row (limit 6) over 1.0s, retrying in 2.0s",
    ]
    assert shown.call_args_list[0].kwargs == {"host": "host1"}


def test_without_a_timeout_faults_are_ridden_out_until_the_jobs_async_limits(
    make_action,
) -> None:
    """The host said the job started at 100 (its clock) with a 20 s limit: its end is near 120."""
    view = {"jid": J1, "state": "running", "started_at": 100.0, "async_limit": 20}
    lost = AnsibleConnectionFailure("instance not running")
    args = {"jobs": J1, "max_connection_failures": 0}
    action, host = make_action(args, [{"now": 101.0, "jobs": [view]}, *[lost] * 30])
    result = action.run(task_vars={})
    # Reply at 1000 (controller) = 101 (host): the limit ends at 1019, plus the wrapper's
    # 5 s: 1024; the retries (1, 2, 4, 5, 5, 5, then what is left) stop there.
    assert result["elapsed"] == 24.0
    assert len(host.calls) == 9
    assert result["unreachable"] is True


def test_with_no_count_and_no_deadline_the_default_count_applies(make_action) -> None:
    lost = AnsibleConnectionFailure("instance not running")
    action, host = make_action({"jobs": J1, "max_connection_failures": 0}, [lost] * 10)
    result = action.run(task_vars={})
    assert len(host.calls) == 6
    assert result["msg"].startswith("lost the host after 6 failed round trip(s) in a row")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(-1, "max_connection_failures must be a whole number >= 0, got -1", id="neg"),
        pytest.param(
            1.5, "max_connection_failures must be a whole number >= 0, got 1.5", id="half"
        ),
        pytest.param(
            "many", "max_connection_failures must be a whole number >= 0, got 'many'", id="str"
        ),
        pytest.param(
            True, "max_connection_failures must be a whole number >= 0, got True (bool)", id="bool"
        ),
    ],
)
def test_bad_max_connection_failures_is_named(make_action, value: Any, message: str) -> None:
    action, host = make_action({"jobs": J1, "max_connection_failures": value}, [])
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
        action.run(task_vars={})
    assert host.calls == []


# --- 4. Timeout exceeded in a registered poll: N result ------------------------------------


def test_a_registered_poll_result_at_its_async_limit_is_timeout(make_action) -> None:
    registered = {
        "ansible_job_id": J1,
        "finished": True,
        "failed": True,
        "msg": "Timeout exceeded",
        "child_pid": 4242,
        "results_file": PATH1,
        "started": True,
    }
    action, host = make_action({"jobs": registered}, [])
    result = action.run(task_vars={})
    assert host.calls == []
    assert result["jobs"][0]["state"] == "timeout"
    assert result["jobs"][0]["failed"] is True


def test_a_poll_that_core_gave_up_on_is_waited_for_by_its_job_id(make_action) -> None:
    registered = {
        "failed": True,
        "msg": "async task did not complete within the requested time - 5s",
        "async_result": {"ansible_job_id": J1, "started": True, "finished": False},
    }
    action, host = make_action({"jobs": registered}, [[ended(J1, {"rc": 0})]])
    result = action.run(task_vars={})
    assert host.calls[0]["jids"] == [J1]
    assert result["jobs"][0]["state"] == "finished"


# --- 5. the job's result as async_status returns it -----------------------------------------


def test_the_jobs_result_is_as_async_status_returns_it(make_action) -> None:
    record = {"rc": 0, "stdout": "1\n2", "stderr": "", "changed": True, "cmd": "seq 2"}
    action, _unused = make_action({"jobs": launched(J1)}, [[ended(J1, record)]])
    result = action.run(task_vars={})["jobs"][0]["result"]
    assert result == {
        "ansible_job_id": J1,
        "started": True,
        "finished": True,
        "results_file": PATH1,
        "rc": 0,
        "stdout": "1\n2",
        "stdout_lines": ["1", "2"],
        "stderr": "",
        "stderr_lines": [],
        "changed": True,
        "failed": False,
        "cmd": "seq 2",
    }


def test_a_running_jobs_result_is_what_async_status_says_while_it_runs(make_action) -> None:
    view = {"jid": J1, "state": "running", "path": PATH1, "started_at": 1.0, "running_for": 2.0}
    action, _unused = make_action({"jobs": J1, "timeout": 0}, [[view]])
    result = action.run(task_vars={})["jobs"][0]["result"]
    assert result == {
        "ansible_job_id": J1,
        "started": True,
        "finished": False,
        "results_file": PATH1,
        "stdout": "",
        "stdout_lines": [],
        "stderr": "",
        "stderr_lines": [],
        "changed": False,
        "failed": False,
    }


# --- 6. a launch skipped by check mode --------------------------------------------------------


def test_a_job_skipped_by_check_mode_is_skipped_like_core(make_action) -> None:
    """In check mode, command's job file says skipped; core's async_status then says skipping."""
    record = {
        "changed": False,
        "skipped": True,
        "msg": "Command would have run if not in check mode",
        "rc": 0,
        "stdout": "",
        "stderr": "",
    }
    action, _unused = make_action({"jobs": launched(J1)}, [[ended(J1, record)]], check_mode=True)
    result = action.run(task_vars={})
    assert result["jobs"][0]["state"] == "skipped"
    assert result["jobs"][0]["msg"] == "skipped: Command would have run if not in check mode"
    assert result["skipped"] is True
    assert result["failed"] is False
    assert result["counts"]["skipped"] == 1


def test_a_registered_poll_result_skipped_by_check_mode_is_skipped(make_action) -> None:
    registered = {"ansible_job_id": J1, "finished": True, "skipped": True, "changed": False}
    action, host = make_action({"jobs": registered}, [])
    result = action.run(task_vars={})
    assert host.calls == []
    assert result["jobs"][0]["state"] == "skipped"
    assert result["skipped"] is True


# --- contract 2: name, kill round trip, kill_failed ------------------------------------------


def test_an_async_launch_result_is_waited_for_with_the_names_it_gave(make_action) -> None:
    launch = {
        "changed": True,
        "jobs": [
            {"jid": J1, "name": "build", "state": "running"},
            {"jid": None, "name": "docs", "state": "skipped", "msg": "skipped at launch: when"},
            {"jid": J2, "name": "test", "state": "queued"},
        ],
    }
    action, host = make_action({"jobs": launch}, [[ended(J1, {"rc": 0}), ended(J2, {"rc": 0})]])
    result = action.run(task_vars={})
    assert host.calls[0]["jids"] == [J1, J2]
    assert [(j["name"], j["state"]) for j in result["jobs"]] == [
        ("build", "finished"),
        ("docs", "skipped"),
        ("test", "finished"),
    ]


def test_the_kill_round_trip_is_counted_in_elapsed(make_action) -> None:
    running = {"jid": J1, "state": "running", "started_at": 0.0, "running_for": 1.0}
    killed = {"jid": J1, "state": "killed", "started_at": 0.0, "ended_at": 4.0, "msg": "killed"}
    script = [[running], (3.0, {"jobs": [killed], "now": 4.0})]
    action, _unused = make_action({"jobs": J1, "timeout": 1, "on_timeout": "kill"}, script)
    result = action.run(task_vars={})
    assert result["elapsed"] == 4.0  # the 1 s wait, then the 3 s kill round trip
    assert (
        result["msg"] == "timed out after 4.0s (timeout 1s) with 1 job(s) killed: j111.1 ran 4.0s"
    )


def test_a_job_that_could_not_be_killed_is_named_in_the_message(make_action) -> None:
    running = {"jid": J1, "state": "running", "started_at": 0.0, "running_for": 1.0}
    refused = {
        "jid": J1,
        "state": "kill_failed",
        "msg": "kill_failed: EPERM on process group 4242 (not ours)",
    }
    script = [[running], {"jobs": [refused]}]
    action, _unused = make_action({"jobs": J1, "timeout": 1, "on_timeout": "kill"}, script)
    result = action.run(task_vars={})
    assert result["failed"] is True
    assert result["jobs"][0]["state"] == "kill_failed"
    assert result["msg"] == (
        "timed out after 1.0s (timeout 1s) with 1 job(s) that could not be killed (they may "
        "still run): j111.1: kill_failed: EPERM on process group 4242 (not ours)"
    )


def test_a_job_file_found_elsewhere_is_said_in_the_jobs_message(make_action) -> None:
    """The poll module also looks where core's ~ fallback would have put the file (found_in)."""
    view = ended(J1, {"rc": 0})
    view.update(path=f"/root/{J1}", found_in="/root")
    action, _unused = make_action({"jobs": J1}, [[view]])
    job = action.run(task_vars={})["jobs"][0]
    assert job["state"] == "finished"
    assert job["found_in"] == "/root"
    assert job["msg"] == (
        "finished (its job file was found in /root, not in the async directory: where a wrong "
        "expansion of ~ would have put it)"
    )
