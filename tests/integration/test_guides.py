"""The lab guides tell only what is checked: their citations, their figures, their claims.

docs/lab-guide.md and docs/tp13-fr.md name, next to each claim about behaviour, the check
behind it: a Molecule verify task (`molecule/<scenario>/verify.yml: <task name>`) or a test
(`tests/...py::test_name`). The static tests below keep those citations true, the two guides
in step (same checks, same figures) and the French one in French typography. The other
tests are the checks for claims no step test covered; they run on the local inventory.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import ansible
import pytest
import yaml
from ansible.playbook.block import Block
from ansible.playbook.play import Play
from ansible.playbook.task import Task
from ansible.release import __version__ as ansible_core_version

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._timing import max_running
from tests.helpers import REPO, ansible_env, playbook, run

pytestmark = pytest.mark.integration

GUIDES = {"en": REPO / "docs" / "lab-guide.md", "fr": REPO / "docs" / "tp13-fr.md"}
ASYNC_DIR = Path("~/.ansible_async").expanduser()
CORE_2_19 = tuple(int(p) for p in ansible_core_version.split(".")[:2]) >= (2, 19)

MOLECULE_CITE = re.compile(r"`(molecule/[\w./-]+\.yml): ([^`]+)`")
TEST_CITE = re.compile(r"`(tests/[\w./-]+\.py)::(\w+)(?:\[[^\]`]*\])?`")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`]+`")
LINK_TARGET = re.compile(r"\]\([^)]+\)")
NBSP = "\u00a0\u202f"


def guide(lang: str) -> str:
    return GUIDES[lang].read_text(encoding="utf-8")


def prose(text: str) -> str:
    """The guide without code blocks, code spans and link targets."""
    return LINK_TARGET.sub("]", CODE_SPAN.sub(" ", FENCE.sub("\n", text)))


def task_names(tasks: list | None) -> set[str]:
    names: set[str] = set()
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        if "name" in task:
            names.add(task["name"])
        for key in ("block", "rescue", "always"):
            names |= task_names(task.get(key))
    return names


def verify_tasks(path: Path) -> set[str]:
    names: set[str] = set()
    for play in yaml.safe_load(path.read_text()) or []:
        for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            names |= task_names(play.get(key))
    return names


def citations(text: str) -> set[str]:
    found = {f"{path}: {name}" for path, name in MOLECULE_CITE.findall(text)}
    found |= {f"{path}::{name}" for path, name in TEST_CITE.findall(text)}
    return found


@pytest.mark.parametrize("lang", sorted(GUIDES))
def test_every_cited_check_exists(lang: str) -> None:
    text = guide(lang)
    cited = citations(text)
    assert len(cited) >= 30, f"{GUIDES[lang].name} cites only {len(cited)} checks"
    missing = []
    for path, name in MOLECULE_CITE.findall(text):
        file = REPO / path
        if not file.is_file() or name not in verify_tasks(file):
            missing.append(f"{path}: {name}")
    for path, name in TEST_CITE.findall(text):
        file = REPO / path
        if not file.is_file() or not re.search(rf"^def {name}\(", file.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"{GUIDES[lang].name} cites checks that do not exist: {missing}"


def test_both_guides_cite_the_same_checks() -> None:
    english, french = citations(guide("en")), citations(guide("fr"))
    assert english == french, {
        "only in English": english - french,
        "only in French": french - english,
    }


def figures(text: str, decimal: str) -> Counter[str]:
    """Decimal figures of the prose and tables (code excluded), with a '.' separator."""
    # Versions (ansible-core 2.19, Ubuntu 24.04) are not figures.
    pattern = rf"(?<![\w.,])(?<!core )(?<!Ubuntu )\d+{re.escape(decimal)}\d+(?![\w.,]*\d)"
    numbers = re.findall(pattern, prose(text))
    return Counter(n.replace(decimal, ".") for n in numbers)


def test_both_guides_give_the_same_figures() -> None:
    english, french = figures(guide("en"), "."), figures(guide("fr"), ",")
    assert english, "no figure found in the English guide"
    assert english == french, {
        "only in English": sorted((english - french).elements()),
        "only in French": sorted((french - english).elements()),
    }


def test_french_guide_typography() -> None:
    text = prose(guide("fr"))
    problems = []
    for match in re.finditer(r"[:;!?»]", text):
        before = text[match.start() - 1] if match.start() else ""
        if (
            match.group() == ":"
            and before.isdigit()
            and text[match.end() : match.end() + 1].isdigit()
        ):
            continue  # a time of day, 16:00
        if before not in NBSP:
            problems.append(text[max(0, match.start() - 25) : match.end()])
    problems += [
        text[m.start() : m.end() + 25] for m in re.finditer("«", text) if text[m.end()] not in NBSP
    ]
    problems += re.findall(r".{0,25}\"", text)
    problems += re.findall(r".{0,20}\b\d+\.\d+\s?(?:s|min|%)\b", text)
    assert not problems, (
        'French typography (narrow no-break space before : ; ! ? », after «; « » not "; decimal comma):\n'
        + "\n".join(map(repr, problems[:30]))
    )


def role_options() -> set[str]:
    options: set[str] = set()
    for spec in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            options |= set(entry.get("options", {}))
    return options


@pytest.mark.parametrize("lang", sorted(GUIDES))
def test_every_extra_var_in_the_commands_is_a_role_option(lang: str) -> None:
    known = role_options()
    used: set[str] = set()
    for block in FENCE.findall(guide(lang)):
        used |= set(re.findall(r"-e (\w+)=", block))
        for doc in re.findall(r"-e '(\{.*?\})'", block):
            used |= set(json.loads(doc))
    assert used, "no -e in the guide's commands"
    assert used <= known, f"not a role option: {sorted(used - known)}"


# ansible-core's own code, cited by file and line where the guides explain why (steps 6, 7).
CORE_SOURCE = "2.19.14"
CORE_LINES = {
    "lib/ansible/executor/playbook_executor.py": {65: "forks=context.CLIARGS.get('forks'),"},
    "lib/ansible/executor/task_queue_manager.py": {
        156: "self._forks = forks or 5",
        359: "self._initialize_processes(min(self._forks, iterator.batch_size))",
    },
    "lib/ansible/modules/async_wrapper.py": {
        239: "step = 5",
        310: "os.setpgid(sub_pid, sub_pid)",
        314: "if remaining != 0 and step >= remaining:",
        315: "step = remaining / 2",
    },
}


@pytest.mark.parametrize("lang", sorted(GUIDES))
def test_every_cited_core_source_line_says_so(lang: str) -> None:
    text = guide(lang)
    assert f"ansible-core {CORE_SOURCE}" in text
    cited = set(re.findall(r"`(lib/ansible/[\w/]+\.py)`", text))
    assert cited == set(CORE_LINES), f"cited {sorted(cited)}: add their lines to CORE_LINES"
    for path, lines in CORE_LINES.items():
        for number in lines:
            # the line number within a few lines after the file's name
            assert re.search(rf"`{re.escape(path)}`.{{0,300}}?\b{number}\b", text, re.S), (
                path,
                number,
            )
    assert ansible_core_version == CORE_SOURCE, (
        f"ansible-core {ansible_core_version} installed: check the cited lines and the version"
    )
    root = Path(ansible.__file__).parent
    for path, lines in CORE_LINES.items():
        source = (root / path.removeprefix("lib/ansible/")).read_text().splitlines()
        for number, expected in lines.items():
            assert source[number - 1].strip() == expected, (path, number, source[number - 1])


def test_no_play_or_task_keyword_sets_forks() -> None:
    """Step 6: forks is one value for a whole run; throttle (and serial) are keywords."""
    assert "throttle" in Task.fattributes and "serial" in Play.fattributes
    for keywords in (Play, Block, Task):
        assert "forks" not in keywords.fattributes, keywords


def test_every_step_gives_a_quick_variant() -> None:
    """'Every step gives a quick variant': steps 1 to 10, in both guides."""
    for lang, (heading, quick) in {"en": ("Step", "quick"), "fr": ("Étape", "rapide")}.items():
        sections = re.split(rf"^## {heading} (\d+) ", guide(lang), flags=re.M)[1:]
        steps = dict(zip(sections[::2], sections[1::2], strict=True))
        assert sorted(steps, key=int) == [str(n) for n in range(11)], (lang, sorted(steps))
        for step in range(1, 11):
            commands = "\n".join(FENCE.findall(steps[str(step)]))
            assert re.search(rf"#.*\b{quick}\b", commands), (lang, step)


# --- checks of claims the step tests do not cover (local inventory) -----------------------


def extra(**values: object) -> list[str]:
    return ["-e", json.dumps(values)]


def ok(result) -> None:
    assert result.rc == 0, result.output[-4000:]


def job_id(output: str, host: str) -> str:
    match = re.search(
        rf"^{host} \| \w+ => .*?\"ansible_job_id\": \"(j[\d.]+)\"", output, re.S | re.M
    )
    assert match, output
    return match.group(1)


def wait_for_job_file(jid: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = json.loads((ASYNC_DIR / jid).read_text())
        except (OSError, ValueError):
            data = {"started": True}
        if "started" not in data or data.get("finished"):
            return data
        time.sleep(0.5)
    pytest.fail(f"job {jid} still running after {seconds} s")


def test_lab_adhoc_status_answers_once_with_booleans_then_passes_on_changed(tmp_path: Path) -> None:
    """Step 2: `-P 5` does not poll; finished is false (2.19) not 0; another user (become) does
    not find the job; once it ended, the job's own changed."""
    flag = tmp_path / "end"
    # A job that runs until the test says so: no assertion depends on the machine's speed.
    job = f"sh -c 'while [ ! -e {flag} ]; do sleep 0.2; done'"
    launch = run(["ansible", "host1", "-B", "600", "-P", "0", "-a", job])
    ok(launch)
    jid = job_id(launch.stdout, "host1")
    # The lab's command (its own inventory aside): it answers once, while the job runs.
    status = run(["ansible", "host1", "-m", "async_status", "-a", f"jid={jid}", "-P", "5"])
    ok(status)
    assert re.search(r"^host1 \| SUCCESS =>", status.stdout, re.M), status.stdout
    assert ('"finished": false' if CORE_2_19 else '"finished": 0') in status.stdout, status.stdout
    # The three local "hosts" are one machine with one ~/.ansible_async: host2 finds host1's job.
    other = run(["ansible", "host2", "-m", "async_status", "-a", f"jid={jid}"])
    ok(other)
    assert "could not find job" not in other.stdout
    # ...but only for the user that ran it: as another user (become nobody), async_status
    # looks in that user's ~/.ansible_async, and the job is not there.
    as_nobody = run(
        [
            "ansible",
            "host1",
            "-m",
            "async_status",
            "-a",
            f"jid={jid}",
            *("--become", "--become-method", "ansible.builtin.su", "--become-user", "nobody"),
            "-e",
            json.dumps(
                {
                    "ansible_become_flags": "-s /bin/sh",  # nobody's shell is nologin
                    "ansible_python_interpreter": "/usr/bin/python3",  # the venv is root's
                }
            ),
        ]
    )
    assert as_nobody.rc != 0 and "could not find job" in as_nobody.stdout, as_nobody.output
    assert f'"results_file": "{Path("~nobody").expanduser()}/.ansible_async/{jid}"' in (
        as_nobody.stdout
    )
    flag.touch()
    wait_for_job_file(jid, 120)
    done = run(["ansible", "host1", "-m", "ansible.builtin.async_status", "-a", f"jid={jid}"])
    ok(done)
    # async_status passes on the job's own result: a command job is "changed".
    assert re.search(r"^host1 \| CHANGED =>", done.stdout, re.M), done.stdout
    assert ('"finished": true' if CORE_2_19 else '"finished": 1') in done.stdout, done.stdout
    assert (ASYNC_DIR / jid).exists(), "async_status deleted the job file"
    run(["ansible", "host1", "-m", "async_status", "-a", f"jid={jid} mode=cleanup"])


def test_serial_2_caps_running_jobs(tmp_path: Path) -> None:
    """Step 5: with `serial: 2` the second batch starts once the first batch's jobs ended."""
    job = (
        "s=$(date +%s.%N); sleep 6; "
        f'echo "x {{{{ inventory_hostname }}}} $s $(date +%s.%N)" > {tmp_path}/{{{{ inventory_hostname }}}}'
    )
    play = [
        {
            "name": "The lab's step 5 play with serial 2",
            "hosts": "lab",
            "serial": 2,
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Long task in the background, throttle 2",
                    "ansible.builtin.shell": job,
                    "async": 600,
                    "poll": 0,
                    "throttle": 2,
                    "register": "job",
                    "changed_when": True,
                },
                {
                    "name": "Wait for the end of the asynchronous task",
                    "ansible.builtin.async_status": {"jid": "{{ job.ansible_job_id }}"},
                    "register": "status",
                    "until": "status is finished",
                    "retries": 120,
                    "delay": 1,
                },
            ],
        }
    ]
    path = tmp_path / "serial.yml"
    path.write_text(yaml.safe_dump(play))
    ok(playbook(path))
    jobs = {}
    for host in ("host1", "host2", "host3"):
        _group, _host, start, end = (tmp_path / host).read_text().split()
        jobs[host] = (float(start), float(end))
    assert max_running(list(jobs.values())) <= 2, jobs
    assert jobs["host3"][0] >= max(jobs["host1"][1], jobs["host2"][1]), jobs


def test_async_12_is_killed_after_15_s(tmp_path: Path) -> None:
    """Step 7: the wrapper checks every 5 s, so async 12 is killed at 15 s, reported 1 s later."""
    result = playbook(
        "playbooks/step7.yml",
        "-l",
        "host1",
        *extra(
            timeout_sleep=40,
            timeout_async=12,
            timeout_delay=1,
            timeout_show_lab_form=False,
            timeout_dir=str(tmp_path),
        ),
    )
    ok(result)
    launch = float((tmp_path / "launch").read_text())
    for name in ("rescue", "failed_when"):
        jid = (tmp_path / f"{name}.jid").read_text().strip()
        job = json.loads((ASYNC_DIR / jid).read_text())
        assert job["msg"] == "Timeout exceeded", job
        # Three 5 s checks, the kill, 1 s of sleep, then the job file: never before 16 s.
        reported = (ASYNC_DIR / jid).stat().st_mtime - launch
        assert reported >= 16, (name, reported)


def test_a_wait_shorter_than_the_job_fails_while_the_job_runs_on(tmp_path: Path) -> None:
    """Step 4 pitfall: retries x delay shorter than the job: the wait fails, the job goes on."""
    result = playbook(
        "playbooks/step4.yml",
        "-l",
        "host1",
        *extra(
            wait_job_seconds=300,
            wait_job_retries=2,
            wait_job_delay=1,
            wait_job_waiters=["until"],
            wait_job_dir=str(tmp_path),
        ),
    )
    assert result.rc == 2, result.output[-3000:]
    assert "FAILED - RETRYING" in result.output
    assert not (tmp_path / "until.waited").exists()
    match = re.search(r"\"ansible_job_id\": \"(j[\d.]+)\"", result.stdout)
    assert match, result.stdout[-3000:]
    jid = match.group(1)
    # The wait gave up; the job did not: it still runs.
    status = run(["ansible", "host1", "-m", "async_status", "-a", f"jid={jid}"])
    ok(status)
    assert re.search(r"^host1 \| SUCCESS =>", status.stdout, re.M), status.stdout
    assert not (tmp_path / "until.ended").exists()
    killed = run(
        [
            "ansible",
            "host1",
            "-m",
            "tplabs.async_tasks.async_wait",
            "-a",
            f"jid={jid} timeout=1 on_timeout=kill",
        ]
    )
    assert "killed" in killed.stdout, killed.output[-2000:]


def test_step8_launches_one_after_the_other(tmp_path: Path) -> None:
    """Step 8 pitfall: a loop of poll 0 launches runs its items one after the other."""
    jobs = [
        {"name": "fetch", "seconds": 2},
        {"name": "build", "seconds": 4},
        {"name": "flaky", "seconds": 1, "rc": 3},
    ]
    result = playbook(
        "playbooks/step8.yml",
        "-l",
        "host1",
        *extra(
            group_jobs_jobs=jobs,
            group_jobs_waiter="async_wait",
            group_jobs_delay=1,
            group_jobs_dir=str(tmp_path),
        ),
    )
    ok(result)
    started = [float((tmp_path / f"{j['name']}.started").read_text()) for j in jobs]
    assert started == sorted(started) and len(set(started)) == len(started), started


def test_step9_sync_play_speedup_is_host_parallelism(tmp_path: Path) -> None:
    """Step 9: on 3 hosts the synchronous play's callback speed-up comes from forks alone."""
    report = tmp_path / "time_saved.json"
    env = ansible_env(
        ANSIBLE_CALLBACKS_ENABLED="tplabs.async_tasks.time_saved",
        ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON=str(report),
    )
    result = playbook(
        "playbooks/step9.yml",
        *extra(time_gained_seconds=4, time_gained_dir=f"{tmp_path}/{{{{ inventory_hostname }}}}"),
        env=env,
    )
    ok(result)
    plays = {p["name"]: p for p in json.loads(report.read_text())["plays"]}
    sync_play = plays["Step 9 - the work, synchronously"]
    jobs_task = next(t for t in sync_play["tasks"] if t["name"].endswith("one job after the other"))
    assert jobs_task["max_concurrent_hosts"] == 3, jobs_task
    assert not jobs_task["max_concurrent_jobs"], jobs_task
    assert not sync_play["jobs"], sync_play["jobs"]
    assert sync_play["speedup"] > 1, sync_play["speedup"]
    # The role's note under that play says so (the guides' step 9).
    note = "the hosts working in parallel (forks), not async"
    assert note in result.stdout, result.stdout[-2000:]


def test_absolute_async_dir_saves_one_round_trip_per_poll() -> None:
    """The tip: with `~` in ansible_async_dir, each async_status runs `echo ~` once more."""

    def commands(*args: str) -> list[str]:
        result = run(["ansible", "host1", "-m", "async_status", "-a", "jid=j1.1", "-vvv", *args])
        assert "could not find job" in result.output, result.output[-2000:]
        return re.findall(r"^<host1> EXEC (.*)$", result.output, re.M)

    default = commands()
    absolute = commands("-e", f"ansible_async_dir={ASYNC_DIR}")
    assert len(default) == len(absolute) + 1, (default, absolute)
    assert sum("echo ~" in c for c in default) == sum("echo ~" in c for c in absolute) + 1
