# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the trainee's answer (a playbook or an ad hoc command) with the recorder enabled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .record import Record

REPO = Path(__file__).resolve().parents[2]
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
LIVE = REPO / ".cache" / "collections"


def live_collections() -> Path:
    """A collections path whose tplabs.async_tasks is the work tree itself (edits count at once)."""
    link = LIVE / "ansible_collections" / "tplabs" / "async_tasks"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    return LIVE


def ansible_env(record: Path) -> dict[str, str]:
    env = dict(os.environ)
    enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    env.update(
        ANSIBLE_CONFIG=env.get("ANSIBLE_CONFIG") or str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=env.get("ANSIBLE_COLLECTIONS_PATH") or str(live_collections()),
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_CALLBACKS_ENABLED=",".join([*enabled, "lab_checker"]),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_HOST_KEY_CHECKING="False",
        LAB_CHECKER_RECORD=str(record),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    if "UTF-8" not in env.get("LC_ALL", "") + env.get("LANG", "").upper().replace("UTF8", "UTF-8"):
        env["LC_ALL"] = "C.UTF-8"
    return env


@dataclass
class Run:
    rc: int
    output: str
    started: float
    ended: float
    record: Record

    def first_error(self) -> str:
        for line in self.output.splitlines():
            if "ERROR" in line or "fatal:" in line or "FAILED!" in line:
                return line.strip()[:400]
        return self.output.strip().splitlines()[-1][:400] if self.output.strip() else ""


def run(argv: list[str], quiet: bool = False, timeout: float = 900) -> Run:
    """Run an ansible/ansible-playbook command, showing its output as it comes."""
    with tempfile.TemporaryDirectory(prefix="lab-checker-") as tmp:
        record = Path(tmp) / "record.json"
        started = time.time()
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=ansible_env(record),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not quiet:
                sys.stdout.write("    | " + line)
                sys.stdout.flush()
        rc = proc.wait(timeout=timeout)
        ended = time.time()
        doc = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    return Run(rc, "".join(lines), started, ended, Record(doc))
