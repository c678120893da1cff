"""Runs the Molecule scenarios through the Molecule CLI, a few at a time, on lanes.

A lane is one set of containers (one Incus prefix, one Molecule ephemeral directory) that
several scenarios use one after another:

- the lane's first scenario creates the containers (`molecule create` of a scenario with the
  shared platforms, so the lane has host1..host3 whatever its scenarios ask for), and the
  runner snapshots them, fresh;
- each scenario then runs `molecule test --destroy never`: Molecule skips create (its state
  says created) and destroy;
- before each scenario but the lane's first, the runner restores the snapshot: the scenario
  starts on containers as fresh as a created one (files, processes, job files), without
  the cost of a create and a destroy (two `ansible-playbook` runs, four containers
  launched or deleted, Molecule's start-up): about 20 CPU-s and 20 s a scenario, 2 cores;
- when no scenario is left, `molecule destroy` deletes the lane's containers.

A scenario whose molecule.yml has the line `# tplabs-molecule: own-instances` (ssh: its
create sets up sshd and a key pair) runs a whole `molecule test` on containers of its own,
as one marked `# tplabs-molecule: serial` does, alone, after the others.

pytest-ansible's own Molecule support is deprecated in 26.10 and cannot give each run its
own environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from tests.helpers import REPO, VENV_BIN, ansible_env
from tests.molecule.incus import incus_instances, incus_statuses

SCENARIOS = sorted(p.parent.name for p in REPO.glob("molecule/*/molecule.yml"))
SERIAL_MARK = "# tplabs-molecule: serial"
OWN_MARK = "# tplabs-molecule: own-instances"
LOG_DIR = REPO / "reports" / "molecule"
TIMEOUT = float(os.environ.get("TPLABS_MOLECULE_TIMEOUT", "900"))
# 4 lanes: most of a scenario's time is its jobs sleeping on the hosts. On 2 cores, with
# lint, sanity and unit beside them as in make test (2026-11-29): 3 lanes 516.3 s, 4 lanes
# 486.4 s with the cores then busy 97 % of the time (942 CPU-s of the machine).
JOBS = max(1, int(os.environ.get("TPLABS_MOLECULE_JOBS", "4")))
TAIL_LINES = 120
# Started first, longest first, so the longest runs do not end alone in a lane (quiet
# 2-core machine: ssh, both pipelining modes in one scenario, about 5 min; steps 6, 9, 5 and
# 2 and the challenge, 1.5 to 3 min; the rest about 1 min).
LONGEST = ("ssh", "step6", "step9", "step5", "step2", "challenge")
SNAPSHOT = "tplabs-fresh"
# What a lane keeps in its ephemeral directory from one scenario to the next: Molecule's
# state (created) and the instance config create.yml wrote. The rest (inventory, files a
# scenario leaves for its verify) goes.
LANE_KEEPS = {"state.yml", "instance_config.yml"}
READY_TIMEOUT = 120.0
# What the scenarios leave on a host (the steps' timestamps, the async job files) and a
# created container has not.
LEFT_BY_SCENARIOS = ("/tmp/tplabs_async", "/root/.ansible_async")
FRESH = f"import os, sys; sys.exit(3 if any(map(os.path.exists, {LEFT_BY_SCENARIOS!r})) else 0)"
# Molecule runs in progress (process group -> Incus prefix), so an interrupted session
# (Ctrl-C) can stop them and delete their containers.
RUNNING: dict[int, str] = {}
RUNNING_LOCK = threading.Lock()


def molecule_file(scenario: str) -> Path:
    return REPO / "molecule" / scenario / "molecule.yml"


def marked(scenario: str, mark: str) -> bool:
    text = molecule_file(scenario).read_text()
    return any(line.strip() == mark for line in text.splitlines())


def platforms(scenario: str) -> list[str]:
    """The scenario's platform names: its own list, or the shared one."""
    own = yaml.safe_load(molecule_file(scenario).read_text()) or {}
    shared = yaml.safe_load((REPO / ".config" / "molecule" / "config.yml").read_text())
    return [p["name"] for p in own.get("platforms", shared["platforms"])]


def lane_creator(scenarios: list[str]) -> str:
    """A scenario whose platforms hold every other's: the lane is created with it."""
    union = {name for s in scenarios for name in platforms(s)}
    for scenario in SCENARIOS:
        if not marked(scenario, OWN_MARK) and union <= set(platforms(scenario)):
            return scenario
    raise AssertionError(f"no scenario has all the platforms the lanes need: {sorted(union)}")


def run_prefix(name: str) -> str:
    """m-<name>-<6 hex>: the same shape molecule/shared/create.yml draws."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower())[:20].rstrip("-")
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
            _unused, status, usage = os.wait4(proc.pid, 0)
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
    """Delete the containers of a run or lane (there should be none after destroy)."""
    leftovers = [name for name in incus_instances() if name.startswith(prefix + "-")]
    if leftovers:
        subprocess.run(["incus", "delete", "--force", *leftovers], capture_output=True, check=False)
    return leftovers


def molecule_env(prefix: str, ephemeral: str) -> dict[str, str]:
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
    return env


def molecule(*args: str) -> list[str]:
    exe = VENV_BIN / "molecule"
    return [str(exe) if exe.exists() else "molecule", *args]


def incus(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["incus", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Lane:
    """Containers that scenarios run on one after another (module docstring)."""

    name: str
    creator: str
    prefix: str = ""
    ephemeral: str = ""
    log: Path = field(default_factory=Path)
    containers: list[str] = field(default_factory=list)
    used: bool = False
    cpu: float = 0.0

    def __post_init__(self) -> None:
        self.prefix = run_prefix(self.name)
        self.log = LOG_DIR / f"{self.name}.log"

    def env(self) -> dict[str, str]:
        return molecule_env(self.prefix, self.ephemeral)

    def _molecule(self, action: str) -> int:
        start = time.monotonic()
        with self.log.open("a", buffering=1) as out:
            out.write(f"# molecule {action} -s {self.creator}  (Incus prefix {self.prefix})\n")
            try:
                rc, cpu = stream_timed(
                    molecule(action, "-s", self.creator), self.env(), out, start, self.prefix
                )
            except subprocess.TimeoutExpired:
                rc, cpu = -1, 0.0
            self.cpu += cpu
            out.write(f"# rc {rc}, {time.monotonic() - start:.1f} s, {cpu:.1f} CPU-s\n")
        return rc

    def _say(self, text: str) -> None:
        with self.log.open("a") as out:
            out.write(f"# {text}\n")

    def ready(self) -> str:
        """Containers ready for the next scenario: '' or what went wrong."""
        if not self.containers:
            return self._create()
        if self.used:
            return self._restore()
        return ""

    def _create(self) -> str:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        if not self.ephemeral:  # the lane's first create of the session
            self.log.write_text("")
        self.ephemeral = tempfile.mkdtemp(prefix=f"molecule-{self.name}-")
        if self._molecule("create") != 0:
            return f"molecule create -s {self.creator} failed: {self.log}"
        self.containers = [f"{self.prefix}-{name}" for name in platforms(self.creator)]
        for name in self.containers:
            snap = incus("snapshot", "create", name, SNAPSHOT)
            if snap.returncode != 0:
                return f"incus snapshot create {name} failed: {snap.stderr.strip()}"
        self._say(f"snapshot {SNAPSHOT} of {' '.join(self.containers)}")
        return ""

    def _start(self, status: str) -> str:
        """Start (or thaw) the lane's containers in that status: '' or what went wrong."""
        for name, now in incus_statuses(f"{self.prefix}-").items():
            if now == status and (started := incus("start", name)).returncode != 0:
                return f"incus start {name} ({status}) failed: {started.stderr.strip()}"
        return ""

    def _restore(self) -> str:
        start = time.monotonic()
        for name in os.listdir(self.ephemeral):
            if name not in LANE_KEEPS:
                path = Path(self.ephemeral, name)
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        # A scenario may leave a container frozen (async_wait pauses one) or stopped
        # (async_wait and async_launch stop one): a restore puts a stopped container back
        # stopped, and needs a frozen one thawed first.
        if error := self._start("Frozen"):
            return error
        # One restore per container at once: each stops its container, puts the snapshot
        # back and starts it again if it ran.
        restores = [
            subprocess.Popen(
                ["incus", "snapshot", "restore", name, SNAPSHOT],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in self.containers
        ]
        for name, proc in zip(self.containers, restores, strict=True):
            _unused, err = proc.communicate(timeout=READY_TIMEOUT)
            if proc.returncode != 0:
                return f"incus snapshot restore {name} {SNAPSHOT} failed: {err.strip()}"
        if error := self._start("Stopped"):
            return error
        # As the lab role's create waits: until python3 runs in each container. The same
        # command checks that the restore took away what the scenarios leave on the hosts
        # (exit code 3; codes, not output, which `incus exec` may lose under load).
        for name in self.containers:
            while (rc := incus("exec", name, "--", "python3", "-c", FRESH).returncode) != 0:
                if rc == 3:
                    return f"{name}: the restore left {' or '.join(LEFT_BY_SCENARIOS)}"
                if time.monotonic() - start > READY_TIMEOUT:
                    return f"{name}: python3 did not run within {READY_TIMEOUT:.0f}s of the restore"
                time.sleep(0.2)
        self._say(f"restored {SNAPSHOT} in {time.monotonic() - start:.1f} s")
        return ""

    def close(self) -> list[str]:
        """Destroy the lane's containers; return those left (deleted now), such as those of
        a create that failed half-way."""
        if not self.ephemeral:
            return []
        if self.containers:
            self._molecule("destroy")
        shutil.rmtree(self.ephemeral, ignore_errors=True)
        return delete_leftovers(self.prefix)


def run_scenario(scenario: str, lane: Lane | None = None) -> ScenarioRun:
    """One `molecule test`, on a lane or on containers of its own: a scenario that fails
    is a bug to find, never retried."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{scenario}.log"
    start = time.monotonic()
    prefix = run_prefix(scenario) if lane is None else lane.prefix
    error, rc, cpu = "", -1, 0.0
    with contextlib.ExitStack() as stack:
        if lane is None:
            ephemeral = stack.enter_context(
                tempfile.TemporaryDirectory(prefix=f"molecule-{scenario}-")
            )
            args = ["test", "-s", scenario]
        else:
            error = lane.ready()
            ephemeral = lane.ephemeral
            args = ["test", "-s", scenario, "--destroy", "never"]
            lane.used = True
        with log.open("w", buffering=1) as out:
            where = "its own containers" if lane is None else f"lane {lane.name}"
            out.write(f"# molecule {' '.join(args)}  (Incus prefix {prefix}, {where})\n")
            if error:
                out.write(f"# {error}\n")
            else:
                try:
                    rc, cpu = stream_timed(
                        molecule(*args), molecule_env(prefix, ephemeral), out, start, prefix
                    )
                except subprocess.TimeoutExpired:
                    rc, error = -1, f"timed out after {TIMEOUT:.0f}s"
    elapsed = time.monotonic() - start
    with log.open("a") as out:
        out.write(f"# rc {rc}, {elapsed:.1f} s, {cpu:.1f} CPU-s\n")
    leftovers = delete_leftovers(prefix) if lane is None else []
    return ScenarioRun(scenario, prefix, rc, elapsed, log, leftovers, error, cpu)


class ScenarioPool:
    """Runs the selected scenarios on JOBS lanes, longest first; scenarios with their own
    containers in a lane's turn, serial ones alone after the rest."""

    def __init__(self, scenarios: list[str]) -> None:
        self.futures: dict[str, Future[ScenarioRun]] = {s: Future() for s in scenarios}
        self.queue = sorted(
            (s for s in scenarios if not marked(s, SERIAL_MARK)),
            key=lambda s: (LONGEST.index(s) if s in LONGEST else len(LONGEST), s),
        )
        self.serial = [s for s in scenarios if marked(s, SERIAL_MARK)]
        shared = [s for s in self.queue if not marked(s, OWN_MARK)]
        creator = lane_creator(shared) if shared else ""
        self.lanes = [Lane(f"lane{n}", creator) for n in range(1, JOBS + 1)]
        self.lane_leftovers: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(lane,), daemon=True) for lane in self.lanes
        ]
        for thread in self._threads:
            thread.start()
        self._done = threading.Thread(target=self._finish, daemon=True)
        self._done.start()

    def _next(self) -> str | None:
        with self._lock:
            return self.queue.pop(0) if self.queue and not self._stopping.is_set() else None

    def _run(self, scenario: str, lane: Lane | None) -> None:
        future = self.futures[scenario]
        try:
            future.set_result(run_scenario(scenario, lane))
        except Exception as err:  # surfaced by the scenario's test
            future.set_exception(err)

    def _work(self, lane: Lane) -> None:
        try:
            while (scenario := self._next()) is not None:
                self._run(scenario, None if marked(scenario, OWN_MARK) else lane)
        finally:
            # Interrupted: delete the containers at once (shutdown), no molecule destroy.
            leftovers = [] if self._stopping.is_set() else lane.close()
            with self._lock:
                self.lane_leftovers += leftovers

    def _finish(self) -> None:
        for thread in self._threads:
            thread.join()
        for scenario in self.serial:
            if not self._stopping.is_set():
                self._run(scenario, None)

    def result(self, scenario: str) -> ScenarioRun:
        return self.futures[scenario].result(timeout=TIMEOUT * (len(self.futures) + 1))

    def leftovers(self) -> list[str]:
        """After every scenario: the containers the lanes' destroy left (deleted now)."""
        self._done.join(timeout=TIMEOUT * (len(self.futures) + 1))
        return self.lane_leftovers

    def shutdown(self) -> None:
        """After every scenario: wait for the lanes' destroy. Interrupted (Ctrl-C): stop the
        runs in progress and delete their containers."""
        if all(future.done() for future in self.futures.values()):
            self._done.join(timeout=TIMEOUT * (len(self.lanes) + 1))
            return
        self._stopping.set()
        for future in self.futures.values():
            future.cancel()
        with RUNNING_LOCK:
            interrupted = dict(RUNNING)
        for pgid in interrupted:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self._done.join(timeout=TIMEOUT)
        for prefix in {*interrupted.values(), *(lane.prefix for lane in self.lanes)}:
            delete_leftovers(prefix)
