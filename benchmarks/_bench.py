"""What the benchmarks share: the environment of an ansible-playbook run under measurement."""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
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


def cli_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """The repo's ansible.cfg and collection, the Ansible commands of ``bin_dir``, no colour,
    and ``extra`` variables."""
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=os.environ.get(
            "ANSIBLE_COLLECTIONS_PATH", str(REPO / ".collections")
        ),
        ANSIBLE_NOCOLOR="1",
        **extra,
    )
    return env


def cpu_of(argv: list[str], env: dict[str, str], label: str = "") -> float:
    """CPU seconds of one run of argv from the repo root (it and every process it waited
    for); a failed run ends the benchmark with its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{label}{' '.join(argv)} failed (rc {done.returncode}):\n{done.stdout[-2000:]}")
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def rounds_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the alternated benchmarks' options: --rounds N (1 or more), --json FILE."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--json", type=Path)
    return parser


def parse_rounds(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be 1 or more, got {args.rounds}")
    return args
