"""What the benchmarks share: the environment of an ansible-playbook run under measurement."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def playbook_env(workdir: Path, callback: str, forks: int, **extra: str) -> dict[str, str]:
    """The repo's ansible.cfg and collection, the measuring callback ``callback`` (a plugin
    file in ``workdir``), a quiet stdout, ``forks`` workers, and ``extra`` variables."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=os.environ.get(
            "ANSIBLE_COLLECTIONS_PATH", str(REPO / ".collections")
        ),
        ANSIBLE_CALLBACK_PLUGINS=str(workdir),
        ANSIBLE_CALLBACKS_ENABLED=callback,
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
        ANSIBLE_FORKS=str(forks),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        **extra,
    )
    return env
