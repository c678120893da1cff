"""Every lab step, the challenge and site.yml, run for real on the local inventory.

host1..host3 of inventories/local.yml are all this machine and share ~/.ansible_async, so
each test looks only at its own job ids and writes its timestamps under its own tmp_path
(the roles' *_dir variables). Durations are short; each assertion is on what the jobs
wrote on the "hosts" (timestamps, job files, processes), not on what the play printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._timing import max_running
from tests.helpers import ansible_env, playbook, playbook_json, run

pytestmark = pytest.mark.integration

ASYNC_DIR = Path("~/.ansible_async").expanduser()
HOSTS = ["host1", "host2", "host3"]


def extra(**values: object) -> list[str]:
    return ["-e", json.dumps(values)]


def ok(result) -> None:
    assert result.rc == 0, result.output[-4000:]


def floats(path: Path) -> float:
    return float(path.read_text().split()[0])


def job_file(jid: str) -> dict:
    return json.loads((ASYNC_DIR / jid).read_text())


def intervals(directory: Path, pattern: str) -> dict[str, list[tuple[float, float]]]:
    """GROUP -> [(start, end)] from the `GROUP HOST START END` lines the jobs wrote."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for path in directory.glob(pattern):
        group, _host, start, end = path.read_text().split()
        groups.setdefault(group, []).append((float(start), float(end)))
    return groups


def spread(spans: list[tuple[float, float]]) -> float:
    """Seconds between the first and the last start."""
    starts = [start for start, _unused in spans]
    return max(starts) - min(starts)


def kill_job_shell(pid_file: Path) -> None:
    """End a leftover step 1 job of ours: the shell whose pid it wrote, and its children."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if f"\nPPid:\t{pid}\n" in (proc / "status").read_text():
                os.kill(int(proc.name), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def step1(tmp_path_factory):
    """Step 1 once for the module (a 300 s job per host, killed at the end)."""
    base = tmp_path_factory.mktemp("step1")
    jobs_file = base / "jobs.json"
    result = playbook(
        "playbooks/step1.yml",
        *extra(
            fire_and_forget_seconds=300,
            fire_and_forget_dir=f"{base}/{{{{ inventory_hostname }}}}",
            fire_and_forget_fact_dir=f"{base}/facts/{{{{ inventory_hostname }}}}",
            fire_and_forget_jobs_file=str(jobs_file),
        ),
    )
    yield base, jobs_file, result
    for pid_file in base.glob("*/*.pid"):
        kill_job_shell(pid_file)


def test_step1_fire_and_forget(step1):
    base, jobs_file, result = step1
    ok(result)
    jobs = json.loads(jobs_file.read_text())
    assert sorted(jobs) == HOSTS
    for host in HOSTS:
        job = jobs[host]
        started = floats(base / host / f"{job['token']}.started")
        returned = floats(base / host / f"{job['token']}.returned")
        # The play was done with the host long before the 300 s job's end...
        assert returned - started < 150, (host, returned - started)
        assert not (base / host / f"{job['token']}.ended").exists()
        # ...and the job still runs after the connection has closed.
        state = job_file(job["jid"])
        assert state.get("started") and not state.get("finished"), state
        assert Path("/proc", (base / host / f"{job['token']}.pid").read_text().strip()).is_dir()
        # The local fact holds the same job id.
        fact = json.loads((base / "facts" / host / "tplabs_async_job.fact").read_text())
        assert fact["jid"] == job["jid"]


def test_step2_reads_step1_jobs(step1, tmp_path):
    base, jobs_file, _unused = step1
    log = tmp_path / "states.log"
    for source in ("controller", "fact"):
        result = playbook(
            "playbooks/step2.yml",
            "-l",
            "host1",
            *extra(
                job_status_source=source,
                job_status_jobs_file=str(jobs_file),
                job_status_fact_dir=f"{base}/facts/{{{{ inventory_hostname }}}}",
                job_status_log=str(log),
            ),
        )
        ok(result)
    jid = json.loads(jobs_file.read_text())["host1"]["jid"]
    seen = [line.split()[1:] for line in log.read_text().splitlines()]
    assert seen == [[jid, "running"], [jid, "running"]]


def test_step2_adhoc_commands_of_the_lab(tmp_path):
    """The lab's ad hoc commands, verbatim but for the inventory and the job: instead of a
    sleep, one that runs until the test lets it end, so async_status sees it running however
    slow the machine is."""
    release = tmp_path / "release"
    job = f"sh -c 'until [ -e {release} ]; do sleep 0.2; done'"
    launch = run(["ansible", "all", "-B", "3600", "-P", "0", "-a", job])
    ok(launch)
    replies = {
        host: json.loads(reply)
        for host, reply in re.findall(
            r"^(host\d) \| CHANGED => (\{.*?^\})", launch.stdout, re.S | re.M
        )
    }
    assert sorted(replies) == HOSTS, launch.stdout
    # Step 1 of the guides: the command answers at once, per host, with the job's id,
    # started true and finished false (JSON booleans since ansible-core 2.19).
    for reply in replies.values():
        assert reply["started"] is True and reply["finished"] is False, reply
    jids = {host: reply["ansible_job_id"] for host, reply in replies.items()}
    status = run(
        ["ansible", "host1", "-m", "async_status", "-a", f"jid={jids['host1']}", "-P", "5"]
    )
    ok(status)
    # ansible-core 2.19 answers a JSON false (older cores said 0).
    assert '"finished": false' in status.stdout, status.stdout

    release.touch()
    log = tmp_path / "states.log"
    waited = playbook(
        "playbooks/step2.yml",
        "-l",
        "host1",
        *extra(
            job_status_jid=jids["host1"],
            job_status_wait=True,
            job_status_delay=1,
            job_status_log=str(log),
        ),
    )
    ok(waited)
    states = [line.split()[2] for line in log.read_text().splitlines()]
    assert states[-1] == "finished"
    assert job_file(jids["host1"])["rc"] == 0


def test_step2_wrong_jid_is_explained():
    result = playbook("playbooks/step2.yml", "-l", "host1", *extra(job_status_jid="j999999999.1"))
    assert result.rc == 2
    assert "No async job j999999999.1 on host1" in result.output
    assert "~/.ansible_async/j999999999.1" in result.output


def test_step3_returns_before_the_job_ends(tmp_path):
    seconds = 30
    result = playbook(
        "playbooks/step3.yml",
        "-l",
        "host1",
        *extra(async_playbook_seconds=seconds, async_playbook_dir=str(tmp_path)),
    )
    ok(result)
    # How long the play took depends on the machine's load: the claim is read from the host's
    # clock instead (the play was done with the host before the job's end).
    token = (tmp_path / "last").read_text().strip()
    # poll 0 returns once the job is launched: on a loaded machine its command (which writes
    # .started) may begin after the play has returned. Wait for the end stamp's content (the
    # timer writes .started before the job, .ended after it; `echo > file` makes it empty first).
    ended_file = tmp_path / f"{token}.ended"
    deadline = time.monotonic() + seconds + 20
    while time.monotonic() < deadline and not (
        ended_file.exists() and ended_file.read_text().strip()
    ):
        time.sleep(0.5)
    started = floats(tmp_path / f"{token}.started")
    ended = floats(ended_file)
    assert ended - started >= seconds
    assert ended > floats(tmp_path / f"{token}.returned")


def test_step4_both_waits_return_the_result(tmp_path):
    result = playbook(
        "playbooks/step4.yml",
        "-l",
        "host1",
        *extra(wait_job_seconds=2, wait_job_delay=1, wait_job_dir=str(tmp_path)),
    )
    ok(result)
    for waiter in ("until", "async_wait"):
        started, ended, waited = (
            floats(tmp_path / f"{waiter}.{what}") for what in ("started", "ended", "waited")
        )
        assert ended - started >= 2
        assert waited >= ended
        assert (tmp_path / f"{waiter}.result").read_text().strip() == "job done on host1"
    # Per wait, the role shows how long the job ran, how long after its end the wait returned
    # and how many polls it took (the guides' step 4).
    for shown in ("job_ran_s", "wait_returned_after_job_end_s", "polls"):
        assert f'"{shown}":' in result.stdout, (shown, result.stdout[-3000:])


def test_step5_throttle_paces_launches_only_with_poll_0(tmp_path):
    result = playbook(
        "playbooks/step5.yml",
        *extra(
            throttle_seconds=4,
            throttle_delay=1,
            throttle_dir=f"{tmp_path}/{{{{ inventory_hostname }}}}",
            # async_launch's way (launch) is tested in test_async_launch.py.
            throttle_modes=["poll0", "poll", "batch"],
        ),
    )
    ok(result)
    groups = intervals(tmp_path, "*/*.interval")
    assert {k: len(v) for k, v in groups.items()} == {"poll0": 3, "poll": 3, "batch": 3}
    # throttle 2 caps the jobs with poll N and in batches...
    assert 1 <= max_running(groups["poll"]) <= 2
    assert 1 <= max_running(groups["batch"]) <= 2
    # ...but with poll 0 it only paces the launches: whenever they all came within one job's
    # length (a quiet machine), the three jobs ran at once. On a loaded machine a launch can
    # take longer than the 4 s job; the count is then lower, and the role shows it.
    if spread(groups["poll0"]) < 4:
        assert max_running(groups["poll0"]) == 3
    assert re.search(r"at most \d running at once", result.stdout)


def test_step6_forks_caps_every_task_not_poll_0_jobs(tmp_path):
    report = tmp_path / "report.json"
    result = playbook(
        "playbooks/step6.yml",
        *extra(
            forks_seconds=10,
            # Task C's wait polls every 3 s: each poll is a module run, and what forks limits
            # does not depend on how soon the wait sees a job end.
            forks_delay=3,
            forks_report_file=str(report),
            forks_settings=[{"forks": 2, "throttle": 0}],
            # Its own directory: the checker's and the site test's step 6 use the default.
            forks_root=str(tmp_path),
        ),
    )
    ok(result)
    measured = json.loads(report.read_text())["forks=2 throttle=0"]
    assert measured["forks"] == 2
    running = {task: data["max_running"] for task, data in measured["tasks"].items()}
    # forks 2 caps every task's hosts at 2, the synchronous jobs with them...
    assert 1 <= running["A_sync_throttle"] <= 2 and 1 <= running["B_sync"] <= 2, running
    # The role's numbers come from the hosts' own timestamp files: recount them.
    groups = intervals(tmp_path, "host*/step6/forks_2_throttle_0/*.interval")
    assert max_running(groups["B_sync"]) == running["B_sync"]
    assert max_running(groups["C_async_poll0"]) == running["C_async_poll0"]
    assert running["whole_play"] >= running["C_async_poll0"]
    # ...but not the poll 0 jobs: launched 2 hosts at a time, all three run at once whenever
    # the launches came within one job's length (a quiet machine; see test_step5).
    if spread(groups["C_async_poll0"]) < 10:
        assert running["C_async_poll0"] == 3, running


def test_step7_timeout_is_killed_and_handled(tmp_path):
    result = playbook(
        "playbooks/step7.yml",
        "-l",
        "host1",
        *extra(timeout_sleep=20, timeout_async=3, timeout_delay=1, timeout_dir=str(tmp_path)),
    )
    ok(result)
    assert re.search(r"host1\s+:.*failed=0.*rescued=2", result.stdout), result.stdout[-800:]
    assert "object of type 'dict' has no attribute 'rc'" in result.stdout
    for name in ("rescue", "failed_when"):
        jid = (tmp_path / f"{name}.jid").read_text().strip()
        assert job_file(jid)["msg"] == "Timeout exceeded"
        # The wrapper's clock starts after the launch note; it kills at async (3 s: checks every
        # async/2 s), sleeps 1 s, then writes the job file (the file's time may trail by a tick).
        reported = (ASYNC_DIR / jid).stat().st_mtime
        assert reported - floats(tmp_path / "launch") >= 3 + 1 - 0.05, reported
        # ...before the job's 20 s sleep could end: counted from the job's own start (under
        # load the launch itself can take 15 s, so the launch note is no upper bound).
        started = tmp_path / f"{name}.started"
        if started.exists():
            assert reported - floats(started) < 20, (reported, floats(started))
        # Killed: no end marker, unless ansible-core's async_wrapper lost its process-group
        # race under load (the job then runs on after "Timeout exceeded": docs/lab-guide.md).
        ended = tmp_path / f"{name}.ended"
        assert not ended.exists() or floats(ended) > (ASYNC_DIR / jid).stat().st_mtime
        # Every process of the group the wrapper killed is gone: the timer's shell too, unless
        # it escaped that group by the same race (its group is then not the killed child's).
        # No pid file: the wrapper killed the job before its shell even started (heavy load).
        # A pid that now names another process does not count: pids wrap within seconds on a
        # busy machine (pid_max 32768); the timer's own command line names this test's
        # directory.
        pid_file = tmp_path / f"{name}.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            with contextlib.suppress(OSError):
                if f"{tmp_path}/timed".encode() in Path("/proc", str(pid), "cmdline").read_bytes():
                    assert os.getpgid(pid) != job_file(jid)["child_pid"], (pid, job_file(jid))


@pytest.mark.parametrize("waiter", ["async_wait", "async_status"])
def test_step8_group_of_jobs_failure_named(tmp_path, waiter):
    jobs = [
        {"name": "fetch", "seconds": 1},
        {"name": "build", "seconds": 3},
        {"name": "flaky", "seconds": 1, "rc": 3},
    ]
    result = playbook(
        "playbooks/step8.yml",
        "-l",
        "host1",
        *extra(
            group_jobs_jobs=jobs,
            group_jobs_waiter=waiter,
            group_jobs_delay=1,
            group_jobs_dir=str(tmp_path),
        ),
    )
    ok(result)
    report = json.loads((tmp_path / "report.json").read_text())
    assert [j["name"] for j in report if j["failed"]] == ["flaky"]
    waited = floats(tmp_path / "waited")
    assert all(waited >= floats(tmp_path / f"{j['name']}.ended") for j in jobs)
    assert (tmp_path / "flaky.rc").read_text().strip() == "3"
    # The role names each job's outcome; the playbook ends with how far apart the jobs
    # started and when the wait returned, from the host's clock (the guides' step 8).
    assert "fetch: ok, build: ok, flaky: FAILED (rc=3)" in result.stdout, result.stdout[-3000:]
    assert re.search(
        rf"{waiter}: jobs started within \d+\.\d+ s, the wait\s+returned -?\d+\.\d+ s after the last"
        r"\s+job ended",
        result.stdout,
    ), result.stdout[-3000:]

    failing = playbook(
        "playbooks/step8.yml",
        "-l",
        "host1",
        *extra(
            group_jobs_jobs=jobs,
            group_jobs_waiter=waiter,
            group_jobs_delay=1,
            group_jobs_dir=str(tmp_path),
            group_jobs_fail_on_error=True,
        ),
    )
    assert failing.rc == 2
    assert "Job(s) failed on host1: flaky (rc=3: non-zero return code)" in failing.output


def test_step9_time_gained_with_time_saved(tmp_path):
    report, timeline = tmp_path / "time_saved.json", tmp_path / "time_saved.html"
    env = ansible_env(
        ANSIBLE_CALLBACKS_ENABLED="tplabs.async_tasks.time_saved",
        ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON=str(report),
        ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TIMELINE=str(timeline),
    )
    result = playbook(
        "playbooks/step9.yml",
        "-l",
        "host1",
        *extra(time_gained_count=3, time_gained_seconds=6, time_gained_dir=str(tmp_path / "host1")),
        env=env,
    )
    ok(result)
    groups = intervals(tmp_path / "host1", "*.interval")
    sync_wall = max(e for _unused, e in groups["sync"]) - min(s for s, _unused in groups["sync"])
    async_wall = max(e for _unused, e in groups["async"]) - min(s for s, _unused in groups["async"])
    assert sync_wall >= 18
    assert async_wall < sync_wall
    plays = {p["name"]: p for p in json.loads(report.read_text())["plays"]}
    sync_play = plays["Step 9 - the work, synchronously"]
    async_play = plays["Step 9 - the same work, asynchronously"]
    # Each play's wall holds its jobs as the host timed them. Which play is shorter depends on
    # the launches' cost (a 6 s job against 1-5 s per launch under load): the hosts' own
    # spans above say it, not the plays' walls.
    assert sync_play["wall"] >= sync_wall - 0.01
    assert async_play["wall"] >= async_wall - 0.01
    # One host: the synchronous play saves nothing; the callback sees the jobs overlap
    # whenever the hosts' timestamps show it (a launch loop under heavy load can take longer
    # per item than a 6 s job: then nothing overlaps).
    assert sync_play["speedup"] <= 1.01
    if max_running(groups["async"]) >= 2:
        assert max(t["max_concurrent_jobs"] or 0 for t in async_play["tasks"]) >= 2
    assert timeline.stat().st_size > 0


@pytest.mark.parametrize("waiter", ["async_status", "async_wait"])
def test_challenge(tmp_path, waiter):
    done = tmp_path / "async-done.txt"
    result, data = playbook_json(
        "playbooks/challenge.yml",
        *extra(
            challenge_waiter=waiter, challenge_file=str(done), challenge_dir=str(tmp_path / "notes")
        ),
    )
    ok(result)
    assert done.read_text() == "Async OK\n"
    tasks = {t["task"]["name"].split(" : ", 1)[-1]: t for t in data["plays"][0]["tasks"]}
    launch = tasks["Launch the job in the background (sleep, then write the file)"]
    wait = tasks[f"Wait for the job with {waiter}"]
    assert launch["hosts"]["host1"]["changed"] is True
    assert wait["hosts"]["host1"]["changed"] is False and not wait["hosts"]["host1"].get("failed")
    assert data["stats"]["host1"]["failures"] == 0
    # The launch task returned (controller clock, the same machine here) before the job wrote
    # the file, and the file came at least the job's 5 s after the launch started. How long
    # the launch itself takes depends on the machine's load (0.5 s idle, 12 s at load 20).
    span = launch["task"]["duration"]
    start, end = (
        datetime.fromisoformat(span[k].rstrip("Z")).replace(tzinfo=UTC).timestamp()
        for k in ("start", "end")
    )
    assert end < done.stat().st_mtime
    assert done.stat().st_mtime - start >= 5
    assert done.stat().st_mtime > floats(tmp_path / "notes/launch.returned")


def test_site_runs_every_step_in_order(tmp_path):
    quick = {
        "fire_and_forget_seconds": 5,
        "fire_and_forget_jobs_file": str(tmp_path / "jobs.json"),
        "fire_and_forget_fact_dir": f"{tmp_path}/facts/{{{{ inventory_hostname }}}}",
        "job_status_jobs_file": str(tmp_path / "jobs.json"),
        "async_playbook_seconds": 2,
        "wait_job_seconds": 1,
        "wait_job_delay": 1,
        "throttle_seconds": 1,
        "throttle_delay": 1,
        "throttle_modes": ["poll0"],
        "forks_seconds": 1,
        "forks_delay": 1,
        "forks_report_file": str(tmp_path / "step6.json"),
        "forks_settings": [{"forks": 2, "throttle": 0}],
        "timeout_sleep": 6,
        "timeout_async": 2,
        "timeout_delay": 1,
        "timeout_show_lab_form": False,
        "group_jobs_jobs": [{"name": "a", "seconds": 1}],
        "time_gained_count": 2,
        "time_gained_seconds": 1,
    }
    # Each step's files in a directory of this test's own: the checker's tests run the same
    # steps with the roles' default directories, maybe at the same time.
    host_dir = f"{tmp_path}/{{{{ inventory_hostname }}}}"
    quick |= {
        "fire_and_forget_dir": f"{host_dir}/step1",
        "async_playbook_dir": f"{host_dir}/step3",
        "wait_job_dir": f"{host_dir}/step4",
        "throttle_dir": f"{host_dir}/step5",
        "forks_root": str(tmp_path),
        "timeout_dir": f"{host_dir}/step7",
        "group_jobs_dir": f"{host_dir}/step8",
        "time_gained_dir": f"{host_dir}/step9",
    }
    result = playbook("playbooks/site.yml", "-l", "host1", *extra(**quick))
    ok(result)
    plays = re.findall(r"^PLAY \[(.*?)\]", result.stdout, re.M)
    steps = [int(m.group(1)) for p in plays if (m := re.match(r"Step (\d+)", p))]
    assert steps == sorted(steps) and set(steps) == set(range(1, 10)), plays
    assert re.search(r"host1\s+:.*failed=0", result.stdout)
