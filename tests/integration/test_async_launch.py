"""async_launch with real ansible-playbook and ansible runs on the local inventory.

Every test uses a private async directory (ansible_async_dir), so that what it finds there
is its own. Bounds are behavioural (states, files, processes), never durations.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from ansible_collections.tplabs.async_tasks.plugins.module_utils._job import (
    PROCESS_KEY,
    read_job_file,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._timing import max_running
from tests.helpers import REPO, Run, ansible_env, playbook, playbook_json, run

pytestmark = pytest.mark.integration

PLAYBOOKS = REPO / "tests" / "integration" / "playbooks"
LAUNCH = "tplabs.async_tasks.async_launch"


def json_env(**extra: str) -> dict[str, str]:
    return ansible_env(
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1", **extra
    )


def tasks_of(doc: dict, host: str = "host1") -> dict[str, dict]:
    return {t["task"]["name"]: t["hosts"].get(host) for t in doc["plays"][0]["tasks"]}


def adhoc(module: str, args: dict | str, *extra: str, host: str = "host1") -> tuple[Run, dict]:
    """An ad hoc `ansible` run with the json callback; returns the host's result."""
    text = args if isinstance(args, str) else json.dumps(args)
    result = run(["ansible", host, "-m", module, "-a", text, *extra], env=json_env())
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"no JSON from ansible -m {module}: {result.output}")
    return result, doc["plays"][0]["tasks"][0]["hosts"][host]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(predicate, limit: float = 60.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def async_dir(tmp_path: Path) -> Path:
    return tmp_path / "async"


# --- parity with core: the same jids read by async_status ---------------------------------


PARITY_KEYS = ("rc", "stdout", "stderr", "stdout_lines", "stderr_lines", "cmd", "msg", "changed")


def test_async_status_reads_launched_jobs_as_it_reads_cores(
    tmp_path: Path, async_dir: Path
) -> None:
    result, doc = playbook_json(
        PLAYBOOKS / "async_launch_parity.yml",
        "-e",
        f"ansible_async_dir={async_dir}",
        "-e",
        f"parity_dir={tmp_path}",
        env=json_env(),
    )
    assert result.rc == 0, result.stdout[-3000:] + result.stderr
    tasks = tasks_of(doc)
    core = tasks["Async_status until finished - core's jobs"]["results"]
    launched = tasks["Async_status until finished - async_launch's jobs"]["results"]
    names = [r["item"]["item"]["name"] for r in core]
    assert names == ["words", "argv", "missing", "fails", "slept"]
    assert [r["item"]["name"] for r in launched] == [*names, "held", "behind"]
    for ours, theirs in zip(launched, core, strict=False):
        name = ours["item"]["name"]
        assert ours["ansible_job_id"] == ours["item"]["jid"]
        assert ours["results_file"] == str(async_dir / ours["item"]["jid"])
        assert ours["finished"] is True and ours["started"] is True, name
        assert bool(ours.get("failed_when_result")) == bool(theirs.get("failed_when_result"))
        if name == "missing":
            # Core says "Error executing command." and keeps the reason in an exception.
            assert (ours["rc"], theirs["rc"]) == (2, 2)
            assert ours["msg"].startswith("Error executing command: [Errno 2] No such file")
            assert "no-such-command-tplabs" in ours["msg"]
            assert ours["stdout"] == theirs["stdout"] == ""
            continue
        for key in PARITY_KEYS:
            assert ours[key] == theirs[key], f"{name}: {key}"
        for key in ("start", "end", "delta"):
            assert isinstance(ours[key], str) and isinstance(theirs[key], str)
    fails = launched[3]
    assert (fails["rc"], fails["stdout"], fails["stderr"]) == (3, "out", "err")
    queued = tasks["Async_status reads the queued job as started and not finished"]
    assert queued["started"] is True and queued["finished"] is False
    assert launched[-1]["stdout"] == "behind"
    held = tasks["Async_launch - a job held until a file appears, then one queued behind it"]
    assert [j["state"] for j in held["jobs"]] == ["running", "queued"]
    assert "ansible_job_id" not in held


# --- bad input, check mode, no_log --------------------------------------------------------


def test_bad_input_fails_on_the_controller_and_starts_nothing(
    tmp_path: Path, async_dir: Path
) -> None:
    result, doc = playbook_json(
        PLAYBOOKS / "async_launch_bad_input.yml",
        "-e",
        f"bad_dir={tmp_path}",
        "-e",
        f"ansible_async_dir={async_dir}",
        env=json_env(),
    )
    assert result.rc == 0, result.stdout[-3000:] + result.stderr
    tasks = tasks_of(doc)
    expected = {
        "Jobs is not a list": "jobs: must be a list of jobs (dicts with cmd, shell or argv), got 'sleep 5' (str)",
        "Jobs is empty": "jobs: the list is empty: nothing to launch",
        "A job with none of cmd, shell, argv": "jobs[1]: needs one of cmd, shell or argv (got: name)",
        "A job with two of them": "jobs[1]: has cmd and argv: give exactly one of cmd, shell or argv",
        "A job with an unknown key": "jobs[1]: unknown key(s) creates (allowed: argv, chdir, cmd, name, shell)",
        "An argv item that is not a string": "jobs[2].argv[1]: must be a string, got 5 (int)",
        "An async limit of zero": "async: must be a finite number of seconds > 0, got 0",
        "An async limit that is not a number": "async: must be a number of seconds > 0, got 'soon' (str)",
        "A max_parallel below 1": "max_parallel: must be an integer >= 1, got 0 (int)",
        "Two jobs with the same name": "jobs[1].name: duplicate name 'copy' (jobs[0] has it too): names must be unique",
    }
    for name, message in expected.items():
        host = tasks[name]
        assert host["failed"] is True, name
        assert host["msg"] == message, name
        assert "Traceback" not in json.dumps(host), name
    keyword = tasks["The task keyword async is not how async_launch is limited"]
    assert keyword["failed"] is True and "async" in keyword["msg"]
    assert not (tmp_path / "ran").exists(), "a job ran although its task was refused"
    assert not async_dir.exists() or list(async_dir.iterdir()) == []


def test_check_mode_starts_nothing_and_reports_each_job_skipped(
    tmp_path: Path, async_dir: Path
) -> None:
    result, doc = playbook_json(
        PLAYBOOKS / "async_launch_check_mode.yml",
        "--check",
        "-e",
        f"check_dir={tmp_path}",
        "-e",
        f"ansible_async_dir={async_dir}",
        env=json_env(),
    )
    assert result.rc == 0, result.stdout[-3000:] + result.stderr
    tasks = tasks_of(doc)
    launched = tasks["Launch two jobs that would leave files"]
    assert launched["skipped"] is True and launched.get("changed") is False
    assert launched["jobs"] == [
        {"jid": None, "name": "first", "state": "skipped"},
        {"jid": None, "name": "job1", "state": "skipped"},
    ]
    waited = tasks["Launch and wait in one task"]
    assert waited["skipped"] is True and waited["jobs"][0]["state"] == "skipped"
    wait = tasks["Wait for the launched jobs"]
    assert [job["state"] for job in wait["jobs"]] == ["skipped", "skipped"]
    assert wait.get("failed") is not True
    assert list(tmp_path.glob("ran-*")) == []
    assert not async_dir.exists() or list(async_dir.iterdir()) == []


def test_no_log_keeps_commands_and_outputs_out_of_every_output(
    tmp_path: Path, async_dir: Path
) -> None:
    secret = "s3cret-do-not-show"
    report = tmp_path / "report.json"
    env = ansible_env(
        ANSIBLE_CALLBACKS_ENABLED="tplabs.async_tasks.time_saved",
        ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON=str(report),
    )
    result = playbook(
        PLAYBOOKS / "async_launch_no_log.yml",
        "-vvv",
        "-e",
        f"secret={secret}",
        "-e",
        f"no_log_dir={tmp_path}",
        "-e",
        f"ansible_async_dir={async_dir}",
        env=env,
    )
    assert result.rc == 0, result.output[-3000:]
    assert "the output has been hidden due to the fact that 'no_log: true'" in result.stdout
    assert secret not in result.output
    assert report.exists() and secret not in report.read_text()
    assert (tmp_path / "ran").read_text().strip() == secret  # the jobs did run


# --- wait: true -----------------------------------------------------------------------------


def test_wait_true_launches_and_waits_in_one_task(async_dir: Path) -> None:
    args = {
        "jobs": [
            {"name": "one", "cmd": "echo one"},
            {"name": "bad", "shell": "echo bad >&2; exit 3"},
            {"name": "missing", "argv": ["no-such-command-tplabs"]},
            {"name": "two", "argv": ["sleep", "1"]},
        ],
        "wait": True,
        "max_parallel": 2,
        "fail_on_job_failure": False,
    }
    result, host = adhoc(LAUNCH, args, "-e", f"ansible_async_dir={async_dir}")
    assert result.rc == 0, result.output[-3000:]
    jobs = host["jobs"]
    assert [(j["name"], j["state"]) for j in jobs] == [
        ("one", "finished"),
        ("bad", "failed"),
        ("missing", "failed"),
        ("two", "finished"),
    ]
    assert jobs[0]["stdout_lines"] == ["one"] and jobs[1]["stderr"] == "bad"
    assert jobs[1]["rc"] == 3 and jobs[1]["msg"] == "rc=3: non-zero return code"
    assert "Error executing command" in jobs[2]["msg"]
    assert all(j["erased"] is True for j in jobs)
    assert all(isinstance(j["elapsed"], float) and j["ended_ago"] is not None for j in jobs)
    assert host["counts"] == {"total": 4, "finished": 4, "failed": 2, "pending": 0, "skipped": 0}
    assert host["changed"] is True and host["polls"] == 1  # one round trip in all
    assert list(async_dir.iterdir()) == []


def test_wait_true_hands_over_to_async_wait_after_its_window(async_dir: Path) -> None:
    args = {"jobs": [{"argv": ["sleep", "2"]}], "wait": True, "window": 0.5}
    result, host = adhoc(LAUNCH, args, "-e", f"ansible_async_dir={async_dir}")
    assert result.rc == 0, result.output[-3000:]
    assert host["jobs"][0]["state"] == "finished" and host["polls"] >= 2


def test_async_wait_reads_a_queued_job_as_queued(tmp_path: Path, async_dir: Path) -> None:
    go = tmp_path / "go"
    args = {
        "jobs": [
            {"name": "held", "shell": f"while [ ! -e {go} ]; do sleep 0.1; done"},
            {"name": "behind", "cmd": "echo behind"},
        ],
        "max_parallel": 1,
    }
    _result, launched = adhoc(LAUNCH, args, "-e", f"ansible_async_dir={async_dir}")
    _result, waited = adhoc(
        "tplabs.async_tasks.async_wait",
        {"jobs": launched, "timeout": 0, "fail_on_job_failure": False},
        "-e",
        f"ansible_async_dir={async_dir}",
    )
    assert [(j["name"], j["state"]) for j in waited["jobs"]] == [
        ("held", "running"),
        ("behind", "queued"),
    ]
    assert waited["counts"]["pending"] == 2
    go.touch()
    _result, waited = adhoc(
        "tplabs.async_tasks.async_wait",
        {"jobs": launched, "timeout": 60},
        "-e",
        f"ansible_async_dir={async_dir}",
    )
    assert [j["state"] for j in waited["jobs"]] == ["finished", "finished"]
    assert waited["jobs"][1]["stdout"] == "behind"


# --- faults: the supervisor killed, a kill on timeout, a host's async dir unwritable ---------


def launch_sleepers(async_dir: Path, count: int, slots: int) -> dict:
    args = {"jobs": [{"argv": ["sleep", "300"]} for _unused in range(count)], "max_parallel": slots}
    result, host = adhoc(LAUNCH, args, "-e", f"ansible_async_dir={async_dir}")
    assert result.rc == 0, result.output[-3000:]
    return host


def job_pids(async_dir: Path, launched: dict) -> list[int]:
    pids = []
    for job in launched["jobs"]:
        record = read_job_file(str(async_dir / job["jid"])).record or {}
        if "job" in record.get(PROCESS_KEY, {}):
            pids.append(record[PROCESS_KEY]["job"]["pid"])
    return pids


def test_a_killed_supervisor_leaves_its_jobs_orphaned(async_dir: Path) -> None:
    launched = launch_sleepers(async_dir, 3, slots=2)
    supervisor = launched["supervisor"]["pid"]
    running = job_pids(async_dir, launched)
    assert len(running) == 2
    os.kill(supervisor, signal.SIGKILL)
    assert wait_until(lambda: not any(alive(pid) for pid in running)), "jobs outlived it"
    jids = [job["jid"] for job in launched["jobs"]]
    _result, waited = adhoc(
        "tplabs.async_tasks.async_wait",
        {"jobs": jids, "timeout": 60},
        "-e",
        f"ansible_async_dir={async_dir}",
    )
    assert waited["failed"] is True
    assert [job["state"] for job in waited["jobs"]] == ["orphaned"] * 3, waited["msg"]


def test_async_wait_kills_launched_jobs_on_timeout_and_cleans_up(async_dir: Path) -> None:
    launched = launch_sleepers(async_dir, 2, slots=2)
    running = job_pids(async_dir, launched)
    _result, waited = adhoc(
        "tplabs.async_tasks.async_wait",
        {"jobs": launched, "timeout": 1, "on_timeout": "kill"},
        "-e",
        f"ansible_async_dir={async_dir}",
    )
    assert waited["failed"] is True and waited["msg"].startswith("timed out")
    assert [job["state"] for job in waited["jobs"]] == ["killed", "killed"], waited["msg"]
    assert [job["name"] for job in waited["jobs"]] == ["job0", "job1"]
    assert not any(alive(pid) for pid in running)
    # The supervisor saw its jobs killed from outside and did not overwrite the kill records.
    assert wait_until(lambda: not alive(launched["supervisor"]["pid"]))
    assert list(async_dir.iterdir()) == []  # cleanup: true removed the killed jobs' files


def test_async_wait_kills_one_job_of_a_launch_and_leaves_the_others(async_dir: Path) -> None:
    launched = launch_sleepers(async_dir, 3, slots=3)
    pids = job_pids(async_dir, launched)
    first = launched["jobs"][0]["jid"]
    try:
        _result, waited = adhoc(
            "tplabs.async_tasks.async_wait",
            {"jobs": [first], "timeout": 1, "on_timeout": "kill"},
            "-e",
            f"ansible_async_dir={async_dir}",
        )
        (job,) = waited["jobs"]
        assert job["state"] == "killed", waited["msg"]
        assert not alive(pids[0])
        assert all(alive(pid) for pid in pids[1:]), "a kill of one job stopped the others"
        assert alive(launched["supervisor"]["pid"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(launched["supervisor"]["pid"], signal.SIGTERM)


def test_a_kill_never_reports_a_queued_job_killed_while_it_may_run(async_dir: Path) -> None:
    launched = launch_sleepers(async_dir, 3, slots=1)
    supervisor = launched["supervisor"]["pid"]
    try:
        _result, waited = adhoc(
            "tplabs.async_tasks.async_wait",
            {"jobs": launched, "timeout": 1, "on_timeout": "kill"},
            "-e",
            f"ansible_async_dir={async_dir}",
        )
        states = [job["state"] for job in waited["jobs"]]
        assert states[0] == "killed", waited["msg"]
        for job in waited["jobs"][1:]:
            # Queued: no process of its own; the supervisor is never signalled for one job.
            assert job["state"] in ("killed", "kill_failed"), job
            if job["state"] == "kill_failed":
                assert f"supervisor {supervisor}" in job["msg"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGTERM)  # stops whatever still runs


def test_an_unwritable_async_dir_fails_the_launch_with_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = {"jobs": [{"shell": f"touch {tmp_path}/ran"}]}
    _result, host = adhoc(LAUNCH, args, "-e", f"ansible_async_dir={blocker}/async")
    assert host["failed"] is True
    assert "could not create the async directory" in host["msg"] and str(blocker) in host["msg"]
    assert not (tmp_path / "ran").exists()


def test_jobs_outlive_the_connection_and_report_through_async_status(
    tmp_path: Path, async_dir: Path
) -> None:
    go = tmp_path / "go"
    args = {"jobs": [{"shell": f"while [ ! -e {go} ]; do sleep 0.1; done; echo late"}]}
    result, host = adhoc(LAUNCH, args, "-e", f"ansible_async_dir={async_dir}")
    assert result.rc == 0
    supervisor = host["supervisor"]["pid"]
    # The ansible process and its connection are gone; the job waits for the file.
    assert alive(supervisor)
    jid = host["jobs"][0]["jid"]
    assert read_job_file(str(async_dir / jid)).state == "running"
    go.touch()
    assert wait_until(lambda: read_job_file(str(async_dir / jid)).state == "finished")
    result, status = adhoc(
        "ansible.builtin.async_status", f"jid={jid}", "-e", f"ansible_async_dir={async_dir}"
    )
    assert status["finished"] is True and status["stdout"] == "late"
    assert wait_until(lambda: not alive(supervisor)), "the supervisor outlived its last job"


# --- the lab: step 5 (max_parallel) -----------------------------------------------------------


def intervals(directory: Path, pattern: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """GROUP -> HOST -> [(start, end)] from the `GROUP HOST START END` lines jobs wrote."""
    groups: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for path in directory.glob(pattern):
        group, host, start, end = path.read_text().split()
        groups.setdefault(group, {}).setdefault(host, []).append((float(start), float(end)))
    return groups


def test_step5_max_parallel_caps_the_jobs_on_each_host(tmp_path: Path) -> None:
    result = playbook(
        "playbooks/step5.yml",
        "-e",
        json.dumps(
            {
                "throttle_seconds": 2,
                "throttle_delay": 1,
                "throttle_modes": ["launch"],
                "throttle_dir": f"{tmp_path}/{{{{ inventory_hostname }}}}",
            }
        ),
    )
    assert result.rc == 0, result.output[-4000:]
    per_host = intervals(tmp_path, "*/launch.*.interval")["launch"]
    assert sorted(per_host) == ["host1", "host2", "host3"]
    for host, spans in per_host.items():
        assert len(spans) == 3, host
        assert max_running(spans) == 2, host
    assert (
        "async_launch, max_parallel 2: 3 jobs on host1, at most 2 running at once" in result.stdout
    )


# --- the lab: step 8 (async_launch's way) -------------------------------------------------------


def test_step8_async_launch_way_names_the_failed_job(tmp_path: Path) -> None:
    jobs = [
        {"name": "fetch", "seconds": 1},
        {"name": "build", "seconds": 2},
        {"name": "flaky", "seconds": 1, "rc": 3},
    ]
    values = {"group_jobs_jobs": jobs, "group_jobs_waiter": "async_launch"}
    result = playbook(
        "playbooks/step8.yml",
        "-l",
        "host1",
        "-e",
        json.dumps({**values, "group_jobs_dir": str(tmp_path)}),
    )
    assert result.rc == 0, result.output[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(j["name"], j["failed"], j["rc"]) for j in report] == [
        ("fetch", False, 0),
        ("build", False, 0),
        ("flaky", True, 3),
    ]
    waited = float((tmp_path / "waited").read_text())
    assert all(waited >= float((tmp_path / f"{j['name']}.ended").read_text()) for j in jobs)
    assert "(flaky): rc=3: non-zero return code" in result.stdout
    # One way with a directory of its own: the summary reads that directory.
    assert "async_launch: jobs started within" in result.stdout, result.stdout[-3000:]


# --- time_saved ----------------------------------------------------------------------------------


def test_time_saved_reports_launched_jobs_by_name(tmp_path: Path, async_dir: Path) -> None:
    report = tmp_path / "report.json"
    env = ansible_env(
        ANSIBLE_CALLBACKS_ENABLED="tplabs.async_tasks.time_saved",
        ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON=str(report),
    )
    result = playbook(
        PLAYBOOKS / "async_launch_time_saved.yml", "-e", f"ansible_async_dir={async_dir}", env=env
    )
    assert result.rc == 0, result.output[-3000:]
    (play,) = json.loads(report.read_text())["plays"]
    jobs = {job["name"]: job for job in play["jobs"]}
    assert sorted(jobs) == ["both", "long", "short"]
    for name, task, waiter in (
        ("short", "Launch two named jobs", "Wait for them"),
        ("long", "Launch two named jobs", "Wait for them"),
        ("both", "Launch and wait in one task", "Launch and wait in one task"),
    ):
        job = jobs[name]
        assert (job["task"], job["mode"], job["state"], job["waited_by"]) == (
            task,
            "async_launch",
            "finished",
            waiter,
        ), name
        assert job["jid"].startswith("j") and job["own_duration"] >= 1.0
    launch = next(t for t in play["tasks"] if t["name"] == "Launch two named jobs")
    assert launch["kind"] == "launch" and launch["jobs"] == 2 and launch["max_concurrent_jobs"] == 2
