"""Run real ansible/ansible-playbook commands from the repo root, timed."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        # make exports the installed copy (.collections); a developer may point this at
        # .cache/collections (a live symlink to the work tree, made by tests/conftest.py).
        ANSIBLE_COLLECTIONS_PATH=os.environ.get(
            "ANSIBLE_COLLECTIONS_PATH", str(REPO / ".collections")
        ),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


def run(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None
) -> Run:
    exe = shutil.which(cmd[0], path=str(VENV_BIN)) or cmd[0]
    start = time.monotonic()
    proc = subprocess.run(
        [exe, *cmd[1:]],
        cwd=cwd or REPO,
        env=env or ansible_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def playbook(
    path: str | Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> Run:
    return run(["ansible-playbook", str(path), *args], env=env, timeout=timeout)


def playbook_json(
    path: str | Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> tuple[Run, dict]:
    """Run with the json stdout callback and return the parsed document."""
    result = playbook(
        path,
        *args,
        env=env or ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json"),
        timeout=timeout,
    )
    return result, json.loads(result.stdout)


def load_file(path: Path, name: str) -> ModuleType:
    """Import a Python file that is not in a package (a script, a benchmark) as `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
