"""The parity suite: ansible-core's own async targets, with core's wait and with async_wait.

tests/integration/parity/ holds ansible-core 2.19.14's async, async_fail and async_extra_data
targets, ported (GPL-3.0, Ansible Project) so that each case's wait is chosen by
``-e parity_wait=core`` (the baseline: ``poll: 1`` and async_status, as core's targets wait)
or ``-e parity_wait=async_wait``; the assertions are core's own, run on the same result in
both modes. Both runs go at once, one process each.

Cases left out, as they hold nothing for a wait: the non-async task, the callback's
``ASYNC POLL`` line and ``ASYNC OK`` in check mode (core's poll display; async_wait shows its
progress with -v, tested in test_async_wait.py), and gather_facts ``parallel``.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import REPO, Run, ansible_env, playbook

pytestmark = pytest.mark.integration

PARITY = REPO / "tests" / "integration" / "parity"
WAITS = ("core", "async_wait")
# What each job's module said beyond its result, as core prints it for a module of its own.
SHOWN = (
    "[WARNING]: Module invocation had junk after the JSON data: trailing junk after module output",
    "[WARNING]: Module invocation had junk after the JSON data: junk_after_module_output",
    "[WARNING]: parity warning from an async job",
    "[DEPRECATION WARNING]: parity deprecation from an async job.",
)


def run_parity(wait: str, state_dir: Path) -> Run:
    env = ansible_env(PARITY_STATE_DIR=str(state_dir))
    return playbook(PARITY / "parity.yml", "-e", f"parity_wait={wait}", env=env, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    dirs = {wait: tmp_path_factory.mktemp(f"parity-{wait}") for wait in WAITS}
    with ThreadPoolExecutor(len(WAITS)) as pool:
        futures = {wait: pool.submit(run_parity, wait, dirs[wait]) for wait in WAITS}
        return {wait: future.result() for wait, future in futures.items()}


def tasks(run: Run) -> list[tuple[str, str]]:
    """(task name, what the callback printed for it), in order."""
    found = []
    for block in re.split(r"(?=^TASK \[)", run.stdout, flags=re.M):
        match = re.match(r"TASK \[(.*?)\]", block)
        if match:
            found.append((match.group(1), block))
    return found


def failed_tasks(run: Run) -> list[str]:
    return [
        name
        for name, block in tasks(run)
        if re.search(r"^fatal: ", block, flags=re.M) and "...ignoring" not in block
    ]


def checked(run: Run) -> list[str]:
    """The names of the assertion tasks that passed, in order."""
    return [name for name, block in tasks(run) if '"msg": "All assertions passed"' in block]


@pytest.mark.parametrize("wait", WAITS)
def test_core_async_targets_pass_with_each_wait(runs: dict[str, Run], wait: str) -> None:
    run = runs[wait]
    assert run.rc == 0, f"failed: {failed_tasks(run)}\n{run.stdout[-4000:]}{run.stderr[-2000:]}"
    assert re.search(r"^localhost\s+: ok=\d+ .* failed=0 ", run.stdout, flags=re.M), run.stdout


def test_both_waits_pass_the_same_assertions(runs: dict[str, Run]) -> None:
    core, ours = (checked(runs[wait]) for wait in WAITS)
    assert len(core) >= 20, core  # every case of the three targets checked something
    assert ours == core


@pytest.mark.parametrize("wait", WAITS)
def test_warnings_and_deprecations_of_jobs_are_shown_as_core_shows_them(
    runs: dict[str, Run], wait: str
) -> None:
    shown = runs[wait].output
    assert [line for line in SHOWN if line not in shown] == []
