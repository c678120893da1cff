"""async_wait with real ansible-playbook and ansible runs on the local inventory."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import time
from pathlib import Path

import pytest

from ansible_collections.tplabs.async_tasks.plugins.modules.async_job_poll import wrapper_processes
from tests.helpers import REPO, Run, ansible_env, playbook_json, run

pytestmark = pytest.mark.integration

PLAYBOOKS = REPO / "tests" / "integration" / "playbooks"
ASYNC_DIR = Path("~/.ansible_async").expanduser()


def json_env(**extra: str) -> dict[str, str]:
    return ansible_env(
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1", **extra
    )


def tasks_of(doc: dict) -> dict[str, dict]:
    return {t["task"]["name"]: t["hosts"] for t in doc["plays"][0]["tasks"]}


def adhoc(*args: str, host: str = "host1", env: dict[str, str] | None = None) -> tuple[Run, dict]:
    """An ad hoc `ansible` run with the json callback; returns the host's result."""
    result = run(["ansible", host, *args], env=env or json_env())
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"no JSON from ansible {args}: {result.output}")
    return result, doc["plays"][0]["tasks"][0]["hosts"][host]


def launch(command: str, limit: int = 60, *extra: str) -> str:
    result, host = adhoc("-B", str(limit), "-P", "0", "-a", command, *extra)
    assert result.rc == 0, result.output
    return host["ansible_job_id"]


def kill_job(jid: str) -> list[int]:
    """SIGKILL the process groups of one job's async_wrapper processes (found by its jid)."""
    pids = wrapper_processes({jid.split(".")[0]})[jid.split(".")[0]]
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    return pids


def no_job_left(jid: str) -> bool:
    return not wrapper_processes({jid.split(".")[0]})[jid.split(".")[0]]


def wait_for_file(path: Path, done: bool, limit: float = 20) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if not done or "started" not in data:
                return data
        time.sleep(0.1)
    pytest.fail(f"{path} did not reach done={done}")


# --- the interface ----------------------------------------------------------------------


def test_interface_examples_and_cleanup() -> None:
    result, doc = playbook_json(PLAYBOOKS / "async_wait_interface.yml")
    assert result.rc == 0, result.stdout[-3000:] + result.stderr
    tasks = tasks_of(doc)
    jids = []
    for host in ("host1", "host2", "host3"):
        waited = tasks["Wait for the loop (one job exits 3, so the task fails)"][host]
        assert waited["failed"] is True
        assert [j["state"] for j in waited["jobs"]] == ["finished", "finished", "failed"]
        failed_jid = waited["jobs"][2]["jid"]
        assert (
            waited["msg"]
            == f"1 of 3 job(s) failed: {failed_jid} (item exit 3): rc=3: non-zero return code"
        )
        assert waited["counts"] == {
            "total": 3,
            "finished": 3,
            "failed": 1,
            "pending": 0,
            "skipped": 0,
        }
        assert isinstance(waited["elapsed"], float)
        # One round trip per poll for all three jobs: the 5 s job fits in two 5 s windows.
        assert 1 <= waited["polls"] <= 3
        jids += [j["jid"] for j in waited["jobs"]]
        jids.append(
            tasks["Wait for it by its job id string, through the jid alias"][host]["jobs"][0]["jid"]
        )
        skip = tasks["Wait for the loop with a skipped item, given as its results list"][host]
        assert skip["counts"]["skipped"] == 1
        jids.append(skip["jobs"][0]["jid"])
    assert len(set(jids)) == 15
    assert [j for j in jids if (ASYNC_DIR / j).exists()] == []


def test_verbose_shows_progress_and_adhoc_works() -> None:
    jid = launch("sleep 2")
    result = run(
        ["ansible", "host1", "-v", "-m", "tplabs.async_tasks.async_wait", "-a", f"jid={jid}"]
    )
    assert result.rc == 0, result.output
    assert "async_wait: 1/1 jobs done, 0 pending" in result.stdout
    assert "1 job(s) finished in" in result.stdout
    assert not (ASYNC_DIR / jid).exists()


def test_cleanup_false_keeps_the_job_file_for_async_status() -> None:
    jid = launch("true")
    result, _unused = adhoc("-m", "tplabs.async_tasks.async_wait", "-a", f"jid={jid} cleanup=false")
    assert result.rc == 0, result.output
    assert (ASYNC_DIR / jid).exists()
    result, _unused = adhoc("-m", "ansible.builtin.async_status", "-a", f"jid={jid} mode=cleanup")
    assert result.rc == 0 and not (ASYNC_DIR / jid).exists()


def test_async_dir_is_found_as_async_status_finds_it(tmp_path: Path) -> None:
    async_dir = tmp_path / "jobs"
    jid = launch("true", 60, "-e", f"ansible_async_dir={async_dir}")
    wait_for_file(async_dir / jid, done=True)
    result, waited = adhoc(
        "-m",
        "tplabs.async_tasks.async_wait",
        "-a",
        f"jid={jid}",
        "-e",
        f"ansible_async_dir={async_dir}",
    )
    assert result.rc == 0, result.output
    assert waited["async_dir"] == str(async_dir)
    assert waited["jobs"][0]["state"] == "finished"
    assert list(async_dir.iterdir()) == []


def test_async_dir_from_the_environment_as_core_reads_it() -> None:
    """ANSIBLE_ASYNC_DIR (the shell plugin's async_dir option, like ansible.cfg's), with a ~."""
    name = f".ansible_async_env_{secrets.token_hex(4)}"
    jobs_dir = Path.home() / name
    env = json_env(ANSIBLE_ASYNC_DIR=f"~/{name}")
    try:
        result, host = adhoc("-B", "60", "-P", "0", "-a", "echo from-env", env=env)
        assert result.rc == 0, result.output
        jid = host["ansible_job_id"]
        result, waited = adhoc("-m", "tplabs.async_tasks.async_wait", "-a", f"jid={jid}", env=env)
        assert result.rc == 0, result.output
        assert waited["async_dir"] == str(jobs_dir)  # ~ expanded on the host
        assert waited["jobs"][0]["stdout"] == "from-env"
        assert not (jobs_dir / jid).exists()
    finally:
        shutil.rmtree(jobs_dir, ignore_errors=True)


def test_jobs_launched_with_become_are_found() -> None:
    become = ("--become", "--become-method", "ansible.builtin.su", "--become-user", "root")
    jid = launch("sleep 1", 60, *become)
    result, waited = adhoc("-m", "tplabs.async_tasks.async_wait", "-a", f"jid={jid}", *become)
    assert result.rc == 0, result.output
    assert waited["jobs"][0]["state"] == "finished"


# --- options on real jobs -----------------------------------------------------------------


def options_run(**extra: object) -> dict:
    args = [a for k, v in extra.items() for a in ("-e", f"{k}={v}")]
    result, doc = playbook_json(PLAYBOOKS / "async_wait_options.yml", *args, env=json_env())
    assert result.rc == 0, result.stdout[-3000:] + result.stderr
    return tasks_of(doc)["Wait with the options of this case"]["host1"]


def test_timeout_names_each_unfinished_job_and_how_long_it_ran() -> None:
    waited = options_run(wait_timeout=2, long=300)
    long_job, failing = waited["jobs"]
    try:
        assert waited["failed"] is True
        assert long_job["state"] == "running" and failing["state"] == "failed"
        assert (
            f"with 1 job(s) still running: {long_job['jid']} (item sleep 300) ran " in waited["msg"]
        )
        assert f"{failing['jid']} (item exit 4): rc=4" in waited["msg"]
        assert 2.0 <= waited["elapsed"] < 300  # the timeout, not the job's end
        assert (ASYNC_DIR / long_job["jid"]).exists()  # a running job keeps its file
    finally:
        # Stop the job with async_wait itself: timeout 0 reads once, then kills.
        _unused, stopped = adhoc(
            "-m",
            "tplabs.async_tasks.async_wait",
            "-a",
            f"jid={long_job['jid']} timeout=0 on_timeout=kill",
        )
    assert stopped["jobs"][0]["state"] == "killed"
    assert no_job_left(long_job["jid"])
    assert not (ASYNC_DIR / long_job["jid"]).exists()


def test_on_timeout_kill_stops_the_job_on_the_host() -> None:
    waited = options_run(wait_timeout=1.5, long=300, on_timeout="kill")
    long_job = waited["jobs"][0]
    assert long_job["state"] == "killed"
    assert "job(s) killed: " + long_job["jid"] in waited["msg"]
    assert no_job_left(long_job["jid"])
    assert not (ASYNC_DIR / long_job["jid"]).exists()


def test_fail_fast_returns_at_the_first_failure() -> None:
    waited = options_run(fail_fast="true", long=300, wait_timeout=600)
    long_job, failing = waited["jobs"]
    try:
        assert waited["failed"] is True
        assert failing["state"] == "failed" and long_job["state"] == "running"
        assert waited["elapsed"] < 300  # before the long job could end
        assert "fail_fast: returned with 1 job(s) still running" in waited["msg"]
    finally:
        kill_job(long_job["jid"])
        (ASYNC_DIR / long_job["jid"]).unlink(missing_ok=True)


def test_fail_on_job_failure_false() -> None:
    waited = options_run(long=1, fail_on_job_failure="false")
    assert not waited.get("failed")
    assert [j["state"] for j in waited["jobs"]] == ["finished", "failed"]


def test_a_job_that_reaches_its_own_async_limit() -> None:
    waited = options_run(limit=2, long=300, wait_timeout=280)
    long_job = waited["jobs"][0]
    assert long_job["state"] == "timeout"
    assert (
        long_job["msg"] == "the job reached its own async limit (Timeout exceeded) and was killed"
    )
    assert waited["elapsed"] < 280  # ended by its own limit, not by the wait's timeout
    assert no_job_left(long_job["jid"])


# --- faults -------------------------------------------------------------------------------


def test_an_empty_home_expansion(tmp_path: Path) -> None:
    """docs/known-issues.md, issue 1: core's async_status looks in the wrong place; not us."""
    result, doc = playbook_json(
        PLAYBOOKS / "async_wait_quiet_home.yml",
        "-e",
        f"quiet_async_dir={tmp_path / 'jobs'}",
        env=json_env(),
    )
    assert result.rc == 0, result.stdout[-3000:] + result.stderr
    tasks = {name: hosts["localhost"] for name, hosts in tasks_of(doc).items()}
    status = tasks["Wait for the first with async_status"]
    jid = status["ansible_job_id"]
    # Core's fallback: the working directory (the playbook's, on the local connection)
    # alone, without ".ansible_async" (the upstream bug).
    assert status["msg"] == "could not find job"
    assert status["results_file"] == str(PLAYBOOKS / jid)
    waited = tasks["Wait for both with async_wait"]
    assert [j["state"] for j in waited["jobs"]] == ["finished", "finished"]
    assert waited["async_dir"] == str(ASYNC_DIR)
    # The workaround for async_status: an absolute async dir, never expanded.
    absolute = tasks["Wait for it with async_status, the async dir absolute"]
    assert absolute["finished"] is True
    assert absolute["results_file"] == str(tmp_path / "jobs" / absolute["ansible_job_id"])


def test_a_sigkilled_job_is_orphaned_within_two_polls() -> None:
    jid = launch("sleep 600", 900)
    wait_for_file(ASYNC_DIR / jid, done=False)
    assert kill_job(jid)
    result, waited = adhoc("-m", "tplabs.async_tasks.async_wait", "-a", f"jid={jid}")
    assert result.rc != 0
    assert waited["jobs"][0]["state"] == "orphaned"
    # The reason is the poll module's (its docs/async_wait-guarantees.md): named, per job.
    assert waited["msg"].startswith(f"1 of 1 job(s) failed: {jid}: orphaned: ")
    assert waited["polls"] <= 2
    assert waited["elapsed"] < 600  # told at once, not when the job would have ended
    assert not (ASYNC_DIR / jid).exists()


def test_a_corrupt_job_file_is_reported() -> None:
    jid = launch("true")
    wait_for_file(ASYNC_DIR / jid, done=True)
    (ASYNC_DIR / jid).write_text("{garbage")
    result, waited = adhoc("-m", "tplabs.async_tasks.async_wait", "-a", f"jid={jid}")
    assert result.rc != 0
    assert waited["jobs"][0]["state"] == "corrupt"
    assert waited["msg"].startswith(f"1 of 1 job(s) failed: {jid}: job file {ASYNC_DIR / jid}")
    assert "not JSON" in waited["msg"]
    assert "Traceback" not in result.output


def test_bad_input_gets_clear_messages() -> None:
    result, doc = playbook_json(PLAYBOOKS / "async_wait_bad_input.yml", env=json_env())
    assert result.rc == 0, result.stdout[-3000:] + result.stderr
    msgs = {name: hosts["host1"].get("msg") for name, hosts in tasks_of(doc).items()}
    assert msgs["Wrong type"].startswith("jobs is a int (42); expected a registered async result")
    assert msgs["Not an async launch"].startswith(
        "jobs is not an async launch result (no ansible_job_id"
    )
    assert msgs["A path instead of a job id"].startswith(
        "jobs: '../../etc/passwd' is not an async job id"
    )
    assert msgs["Negative timeout"] == "timeout must be a finite number of seconds >= 0, got -1"
    assert (
        msgs["A window that is not a number"]
        == "window must be a number of seconds, got 'soon' (str)"
    )
    assert msgs["A job id with no job file"].startswith(
        f"1 of 1 job(s) failed: j1.1: no job file j1.1 in {ASYNC_DIR}"
    )
    assert msgs["Check the last two"] == "All assertions passed"
    assert "Traceback" not in result.output


def test_adhoc_path_traversal_is_rejected_before_the_host(tmp_path: Path) -> None:
    marker = tmp_path / "victim"
    marker.write_text("keep me")
    async_dir = tmp_path / "async"
    async_dir.mkdir()
    jid = f"../{marker.name}"
    result, waited = adhoc(
        "-m",
        "tplabs.async_tasks.async_wait",
        "-a",
        f"jid={jid}",
        "-e",
        f"ansible_async_dir={async_dir}",
    )
    assert result.rc != 0
    assert waited["msg"].startswith(f"jobs: '{jid}' is not an async job id")
    assert "polls" not in waited
    assert marker.read_text() == "keep me"
