"""The lab checker (make check) on the local inventory: every step's reference solution
passes, a typical wrong answer per step fails with what is missing, bad input is refused.

Each case runs `python -m lab.checker` for real: the answer runs on host1..host3 and the
checker grades what the hosts show. The cases of this module start together, a few at a
time (they are independent: each looks only at its own job ids), so the file takes the
time of its slowest cases rather than their sum.
"""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from ansible.config.manager import ConfigManager

from tests.helpers import REPO, Run, ansible_env, run

pytestmark = pytest.mark.integration

PARALLEL = 4


def checker(step: str, file: str = "", inventory: str = "", lang: str = "en") -> Run:
    argv = [sys.executable, "-m", "lab.checker", step, "--quiet"]
    argv += ["--file", file] if file else []
    argv += ["--inventory", inventory] if inventory else []
    return run(argv, env=ansible_env(LANG="C.UTF-8", LAB_LANG=lang), timeout=900)


# case: (step, file, inventory). Right answers are the reference solutions (no file), two
# ad hoc answer files, and each starter filled in as its statement says
# (tests/checker/right/, "trainee-<step>"); wrong ones are tests/checker/wrong/.
# ONE_HOST: the cases of steps whose grading is the same on each host run on one host, a
# third of the module runs. The other cases keep the three hosts of inventories/local.yml,
# the `make check` default: those of the steps that need several hosts (0, 2, 5, 6), the
# step 1 ad hoc command and the challenge (its play runs on lab[0] whatever the inventory).
# Step 8 is graded host by host (each host's group of jobs and its wait).
ONE_HOST = "tests/checker/one-host.yml"
SAME_ON_EACH_HOST = "134789"


def _hosts(step: str) -> str:
    return ONE_HOST if step in SAME_ON_EACH_HOST else ""


CASES: dict[str, tuple[str, str, str]] = {
    **{f"right-{s}": (s, "", _hosts(s)) for s in "0123456789"},
    "right-1-adhoc": ("1", "tests/checker/right/step1.sh", ""),
    "right-2-adhoc": ("2", "tests/checker/right/step2.sh", ""),
    "right-challenge": ("challenge", "", ""),
    **{f"trainee-{s}": (s, f"tests/checker/right/step{s}.yml", _hosts(s)) for s in "3456789"},
    "trainee-challenge": ("challenge", "tests/checker/right/challenge.yml", ONE_HOST),
    "wrong-0": ("0", "", "tests/checker/wrong/step0-inventory.yml"),
    **{f"wrong-{s}": (s, f"tests/checker/wrong/step{s}.sh", _hosts(s)) for s in ("1", "2")},
    **{f"wrong-{s}": (s, f"tests/checker/wrong/step{s}.yml", _hosts(s)) for s in "3456789"},
    "wrong-challenge": ("challenge", "tests/checker/wrong/challenge.yml", ""),
}
# The challenge cases write /tmp/async-done.txt on the hosts: one after the other, in one
# slot of the pool, started first (the longest lane).
LANE = ("right-challenge", "wrong-challenge", "trainee-challenge")
# The other cases, longest first (step 2 runs three commands; 9, 7 and 6 wait for their jobs),
# so that no long case starts last, alone.
ORDER = "2976854310"


def first(case: str) -> tuple[int, str]:
    step = CASES[case][0]
    return (ORDER.index(step) if step in ORDER else len(ORDER), case)


@pytest.fixture(scope="module")
def graded(request):
    """Start every selected case at once (PARALLEL at a time); each test waits for its own."""
    wanted = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module is request.module and "case" in params:
            wanted.append(params["case"])
    futures: dict[str, Future] = {case: Future() for case in wanted}

    def work(cases: list[str]) -> None:
        for case in cases:
            try:
                futures[case].set_result(checker(*CASES[case]))
            except BaseException as err:  # the test of that case reports it
                futures[case].set_exception(err)

    with ThreadPoolExecutor(PARALLEL) as pool:
        lane = [case for case in LANE if case in futures]
        if lane:
            pool.submit(work, lane)
        for case in sorted(set(futures) - set(LANE), key=first):
            pool.submit(work, [case])
        yield lambda case: futures[case].result()


def verdict(result: Run) -> str:
    assert "Traceback" not in result.output, result.output[-3000:]
    return (
        result.stdout[result.stdout.rfind("\nStep ") :]
        if "\nStep " in result.stdout
        else result.stdout
    )


RIGHT = {
    "right-0": ["host1: answers, Python", "async dir"],
    "right-1": ["ran in the background after the command returned"],
    "right-1-adhoc": ["ran in the background after the command returned"],
    "right-2": ["async_status said finished=false", "async_status said finished=true, rc=0"],
    "right-2-adhoc": ["async_status said finished=false", "async_status said finished=true, rc=0"],
    "right-3": ["still ran when the play returned"],
    "right-4": ["ended", "before the play returned", "reported it finished (rc 0)"],
    # How many ran at once depends on how fast the launches go (3 on a quiet machine): shown,
    # not asserted.
    "right-5": ["throttle 2 on", "running at once", "throttle only paces the launches"],
    "right-6": ["forks 2: the launch task", "started on 3 hosts at +0.0, +", "running at once"],
    "right-7": ["killed at its async limit (3 s)", 'saw "Timeout exceeded"'],
    "right-8": ["3 jobs, at most", "running at once, all waited for by"],
    "right-9": ["jobs one after the other", "s gained, x"],
    "right-challenge": ["/tmp/async-done.txt holds 'Async OK'", "(async_status) waited for it"],
    "trainee-3": ["still ran when the play returned"],
    "trainee-4": ["before the play returned; 'Attendre la fin", "reported it finished (rc 0)"],
    "trainee-5": ["throttle 2 on 'Tâche longue en arrière-plan'", "running at once"],
    "trainee-6": [
        "forks 2: the launch task 'Tâche longue en arrière-plan' started on 3 hosts at +0.0, +",
        "running at once",
    ],
    "trainee-7": ["killed at its async limit (3 s)", "'Attendre la tâche' (async_status) saw"],
    "trainee-8": ["3 jobs, at most", "all waited for by 'Attendre toutes les tâches'"],
    "trainee-9": ["3 jobs one after the other", "s gained, x"],
    "trainee-challenge": [
        "holds 'Async OK', written by ",
        "'Attendre sa fin' (async_status) waited for it",
    ],
}


@pytest.mark.parametrize("case", sorted(RIGHT))
def test_right_answer_passes(graded, case):
    result = graded(case)
    text = verdict(result)
    assert result.rc == 0, result.output[-4000:]
    assert "PASSED" in text and "Measured on the hosts:" in text
    for expected in RIGHT[case]:
        assert expected in text, text


WRONG = {
    "wrong-0": ["host1", "/nonexistent/python3"],
    "wrong-1": ["had already ended when the command returned", "`-P 0` returns at once"],
    "wrong-2": ["async_status did not answer about job", "-m async_status"],
    "wrong-3": ["had already ended when the play returned: the play waited for it", "poll: 0"],
    "wrong-4": ["no async_status/async_wait task saw job", "async_status"],
    "wrong-5": ["`throttle: 2` on the async task (found throttle none)"],
    "wrong-6": ["no throttle on 'Tâche longue en arrière-plan'", "forks 2"],
    "wrong-7": [
        "failed_when: job.rc != 0` on the poll 0 launch is refused",
        "has no attribute 'rc'",
        "on the async_status task",
    ],
    "wrong-8": ["no wait reported job(s)", "in one task"],
    "wrong-9": ["was not also run synchronously"],
    "wrong-challenge": ["no background job was launched on host1", "poll: 0"],
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_answer_fails_with_what_is_missing(graded, case):
    result = graded(case)
    text = verdict(result)
    assert result.rc == 1, result.output[-4000:]
    assert "NOT PASSED" in text and "What is missing:" in text and "Hint:" in text
    for expected in WRONG[case]:
        assert expected in text, text


@pytest.mark.parametrize(
    ("step", "file", "expected"),
    [
        ("3", "tests/checker/missing.yml", "tests/checker/missing.yml: no such file."),
        ("3", "tests/checker", "tests/checker: not a regular file."),
        ("3", "tests/checker/bad/not-yaml.yml", "is not YAML:"),
        ("3", "tests/checker/bad/empty.yml", "is not a playbook: it is empty"),
        ("3", "tests/checker/bad/mapping.yml", "a playbook is a list of plays"),
        ("4", "tests/checker/bad/tasks-only.yml", "play 1 has no 'hosts:'"),
        (
            "5",
            "tests/checker/bad/no-lab-host.yml",
            "targets no lab host: hosts webservers match none of host1, host2, host3",
        ),
        (
            "1",
            "tests/checker/bad/step1-not-ansible.sh",
            "must hold one ad hoc command starting with 'ansible '",
        ),
        ("12", "", "STEP must be one of 0-9 or challenge, got '12'."),
    ],
    ids=[
        "missing",
        "directory",
        "not-yaml",
        "empty",
        "mapping",
        "tasks-only",
        "no-lab-host",
        "not-adhoc",
        "bad-step",
    ],
)
def test_bad_input_is_refused_clearly(step, file, expected):
    result = checker(step, file)
    assert result.rc == 2, result.output
    assert expected in result.stderr, result.output
    assert "Traceback" not in result.output
    assert "ansible-playbook" not in result.stdout  # refused before anything ran


def test_verdict_in_french():
    result = checker("0", lang="fr")
    assert result.rc == 0, result.output
    # French spacing: a no-break space before the colon.
    assert "Étape 0 (les hôtes du lab)\u00a0: RÉUSSI" in result.stdout
    assert "Mesuré sur les hôtes\u00a0:" in result.stdout
    assert "host1\u00a0: répond, Python" in result.stdout


def test_bad_input_in_french():
    """`make check ... LANG=fr`, as the guides write it: LANG alone picks French."""
    env = ansible_env()
    env.pop("LAB_LANG", None)
    argv = ["make", "--no-print-directory", "check", "STEP=3", "FILE=tests/checker/missing.yml"]
    result = run([*argv, "LANG=fr"], env=env)
    assert result.rc != 0
    assert "FILE " in result.stderr and "fichier introuvable." in result.stderr, result.output


def test_missing_inventory_is_refused():
    result = checker("3", "", "inventories/nope.yml")
    assert result.rc == 2
    assert "INVENTORY" in result.stderr and "no such file" in result.stderr


def test_make_check_without_step_says_how(monkeypatch):
    result = run(["make", "--no-print-directory", "check"], env=ansible_env())
    assert result.rc != 0
    assert "usage: make check STEP=<0-9|challenge>" in result.output
    # make check made the link of make dev: ansible.cfg's first collections path, then the
    # installed copy; the playbooks run the work tree's roles as edited (the guides).
    monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATH", raising=False)
    monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATHS", raising=False)
    config = ConfigManager(conf_file=str(REPO / "ansible.cfg"))
    paths = config.get_config_value("COLLECTIONS_PATHS")
    assert paths == [str(REPO / ".cache" / "collections"), str(REPO / ".collections")], paths
    link = Path(paths[0], "ansible_collections", "tplabs", "async_tasks")
    assert link.resolve() == REPO.resolve()
