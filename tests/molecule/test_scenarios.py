"""Every Molecule scenario (molecule/*/molecule.yml) as one test, on real Incus containers.

The scenarios run through the Molecule CLI (pytest-ansible's own Molecule support is
deprecated in 26.10 and cannot give each run its own environment). Each run gets:

- its own Incus name prefix (MOLECULE_LAB_PREFIX, read by molecule/shared/create.yml), so
  runs never touch each other's containers or a user's host1;
- its own Molecule ephemeral directory, so two checkouts or two pytest sessions running
  the same scenario do not share state;
- a log in reports/molecule/<scenario>.log; a failure shows the end of it.

Up to TPLABS_MOLECULE_JOBS scenarios (default 3) run at once, the longest first: a
scenario spends most of its time waiting on Incus and on ansible-playbook start-up. A
scenario whose molecule.yml contains the line `# tplabs-molecule: serial` runs alone
(timing measurements).
After each run, the test checks that destroy left no container with the run's prefix.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pytest

from tests.helpers import REPO, VENV_BIN, ansible_env
from tests.molecule.incus import incus_instances, incus_problem

pytestmark = [pytest.mark.molecule, pytest.mark.incus]

SCENARIOS = sorted(p.parent.name for p in REPO.glob("molecule/*/molecule.yml"))
SERIAL_MARK = "# tplabs-molecule: serial"
LOG_DIR = REPO / "reports" / "molecule"
TIMEOUT = float(os.environ.get("TPLABS_MOLECULE_TIMEOUT", "900"))
JOBS = max(1, int(os.environ.get("TPLABS_MOLECULE_JOBS", "3")))
TAIL_LINES = 120
# Started first, longest first, so the longest runs do not end alone in a pool slot (quiet
# 2-core machine: ssh, both pipelining modes in one scenario, about 5 min; steps 6, 9, 5 and
# 2 and the challenge, 1.5 to 3 min; the rest about 1 min).
LONGEST = ("ssh", "step6", "step9", "step5", "step2", "challenge")
# Molecule runs in progress (process group -> Incus prefix), so an interrupted session
# (Ctrl-C) can stop them and delete their containers.
RUNNING: dict[int, str] = {}
RUNNING_LOCK = threading.Lock()


def run_prefix(scenario: str) -> str:
    """m-<scenario>-<6 hex>: the same shape molecule/shared/create.yml draws."""
    base = re.sub(r"[^a-z0-9]+", "-", scenario.lower())[:20].rstrip("-")
    return f"m-{base}-{secrets.token_hex(3)}"


@dataclass
class ScenarioRun:
    scenario: str
    prefix: str
    rc: int
    elapsed: float
    log: Path
    leftovers: list[str]
    error: str = ""
    cpu: float = 0.0

    def tail(self, lines: int = TAIL_LINES) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def stream_timed(
    cmd: list[str], env: dict[str, str], out: TextIO, start: float, prefix: str
) -> tuple[int, float]:
    """Run cmd, writing each output line to out behind the seconds since start; return its
    exit code and its CPU seconds (user + system of Molecule and of every process it waited
    for: ansible-playbook, its workers, the incus commands; not the Incus daemon).

    Past TIMEOUT the whole process group is killed (Molecule and its ansible-playbook).
    """
    with subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        assert proc.stdout is not None
        with RUNNING_LOCK:
            RUNNING[proc.pid] = prefix
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(max(1.0, start + TIMEOUT - time.monotonic()), kill)
        timer.start()
        try:
            for line in proc.stdout:
                out.write(f"[{time.monotonic() - start:7.1f}s] {line}")
            # wait4, not proc.wait(): the rusage of the whole tree Molecule reaped.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = rc = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
        finally:
            timer.cancel()
            with RUNNING_LOCK:
                RUNNING.pop(proc.pid, None)
        if expired.is_set():
            raise subprocess.TimeoutExpired(cmd, TIMEOUT)
        return rc, cpu


def delete_leftovers(prefix: str) -> list[str]:
    """Delete the containers of a run (there should be none after destroy); list them."""
    leftovers = [name for name in incus_instances() if name.startswith(prefix + "-")]
    if leftovers:
        subprocess.run(["incus", "delete", "--force", *leftovers], capture_output=True, check=False)
    return leftovers


def run_scenario(scenario: str) -> ScenarioRun:
    """One run of `molecule test`: a scenario that fails is a bug to find, never retried."""
    prefix = run_prefix(scenario)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{scenario}.log"
    molecule = str(VENV_BIN / "molecule") if (VENV_BIN / "molecule").exists() else "molecule"
    error = ""
    cpu = 0.0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"molecule-{scenario}-") as ephemeral:
        env = ansible_env(
            MOLECULE_LAB_PREFIX=prefix,
            MOLECULE_EPHEMERAL_DIRECTORY=ephemeral,
            MOLECULE_GLOB="molecule/*/molecule.yml",
            NO_COLOR="1",
            PY_COLORS="0",
            # Line by line through the pipe, so the log's timestamps are true.
            PYTHONUNBUFFERED="1",
        )
        # Molecule writes its own ansible.cfg; the repo's must not override it.
        env.pop("ANSIBLE_CONFIG", None)
        with log.open("w", buffering=1) as out:
            out.write(f"# molecule test -s {scenario}  (Incus prefix {prefix})\n")
            out.flush()
            try:
                rc, cpu = stream_timed([molecule, "test", "-s", scenario], env, out, start, prefix)
            except subprocess.TimeoutExpired:
                rc, error = -1, f"timed out after {TIMEOUT:.0f}s"
    elapsed = time.monotonic() - start
    with log.open("a") as out:
        out.write(f"# rc {rc}, {elapsed:.1f} s, {cpu:.1f} CPU-s\n")
    return ScenarioRun(scenario, prefix, rc, elapsed, log, delete_leftovers(prefix), error, cpu)


class ScenarioPool:
    """Runs the selected scenarios, JOBS at a time, serial ones alone after the rest."""

    def __init__(self, scenarios: list[str]) -> None:
        self.futures: dict[str, Future[ScenarioRun]] = {}
        parallel = sorted(
            (s for s in scenarios if not is_serial(s)),
            key=lambda s: (LONGEST.index(s) if s in LONGEST else len(LONGEST), s),
        )
        serial = [s for s in scenarios if is_serial(s)]
        self._executor = ThreadPoolExecutor(max_workers=JOBS, thread_name_prefix="molecule")
        for scenario in parallel:
            self.futures[scenario] = self._executor.submit(run_scenario, scenario)
        for scenario in serial:
            self.futures[scenario] = Future()
        if serial:
            threading.Thread(target=self._run_serial, args=(parallel, serial), daemon=True).start()

    def _run_serial(self, parallel: list[str], serial: list[str]) -> None:
        wait([self.futures[s] for s in parallel])
        for scenario in serial:
            future = self.futures[scenario]
            try:
                future.set_result(run_scenario(scenario))
            except Exception as err:  # surfaced by the scenario's test
                future.set_exception(err)

    def result(self, scenario: str) -> ScenarioRun:
        return self.futures[scenario].result(timeout=TIMEOUT * (len(self.futures) + 1))

    def shutdown(self) -> None:
        """Normally a no-op; after Ctrl-C, stop the runs in progress and clean up."""
        for future in self.futures.values():
            future.cancel()
        with RUNNING_LOCK:
            interrupted = dict(RUNNING)
        for pgid in interrupted:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self._executor.shutdown(wait=True, cancel_futures=True)
        for prefix in interrupted.values():
            delete_leftovers(prefix)


def is_serial(scenario: str) -> bool:
    text = (REPO / "molecule" / scenario / "molecule.yml").read_text()
    return any(line.strip() == SERIAL_MARK for line in text.splitlines())


@pytest.fixture(scope="session")
def incus_ready() -> None:
    problem = incus_problem()
    if problem:
        pytest.skip(f"Molecule on Incus cannot run here: {problem}")


@pytest.fixture(scope="session")
def scenario_pool(request: pytest.FixtureRequest, incus_ready: None):
    selected = [
        item.callspec.params["scenario"]
        for item in request.session.items
        if getattr(item, "callspec", None)
        and "scenario" in item.callspec.params
        and item.originalname == "test_scenario"
    ]
    pool = ScenarioPool(sorted(set(selected)))
    yield pool
    pool.shutdown()


def test_scenarios_found(scenario_pool: ScenarioPool) -> None:
    """Runs first (tests/molecule/conftest.py): asking for the pool starts the scenarios, so
    the lab role's own tests (test_lab_role.py) run beside them instead of before them."""
    assert "step0" in SCENARIOS, f"molecule/step0 missing; found {SCENARIOS}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(
    scenario: str, scenario_pool: ScenarioPool, request: pytest.FixtureRequest
) -> None:
    run = scenario_pool.result(scenario)
    # Properties of reports/molecule.xml (user_properties: record_property warns with xunit2).
    request.node.user_properties += [
        ("molecule_seconds", round(run.elapsed, 1)),
        ("molecule_cpu_s", round(run.cpu, 1)),
    ]
    print(
        f"molecule test -s {scenario}: rc={run.rc} in {run.elapsed:.1f}s "
        f"({run.cpu:.1f} CPU-s), log {run.log}"
    )
    assert run.rc == 0, (
        f"molecule test -s {scenario} failed (rc={run.rc}{', ' + run.error if run.error else ''}, "
        f"{run.elapsed:.0f}s); full log: {run.log}\n--- last {TAIL_LINES} lines ---\n{run.tail()}"
    )
    assert not run.leftovers, (
        f"destroy left containers behind (deleted now): {run.leftovers}; log: {run.log}"
    )
