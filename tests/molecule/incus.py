"""Is Incus usable here, and which instances exist (shared by the Incus tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from tests.helpers import VENV_BIN

IMAGE = os.environ.get("MOLECULE_LAB_IMAGE") or "tplabs/debian-bookworm"


def incus_statuses(prefix: str = "") -> dict[str, str]:
    """Status (Running, Stopped, Frozen...) of each instance whose name starts with prefix."""
    proc = subprocess.run(
        ["incus", "list", *([prefix] if prefix else []), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {inst["name"]: inst["status"] for inst in json.loads(proc.stdout)}


def incus_instances() -> list[str]:
    return list(incus_statuses())


def incus_problem() -> str | None:
    """Why Molecule cannot run here, or None when Incus and the image are usable."""
    if shutil.which("incus") is None:
        return "the incus command is missing: run `make incus` (scripts/incus-setup.sh) as root"
    try:
        info = subprocess.run(
            ["incus", "info"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "incusd does not answer (incus info timed out): run `make incus`"
    if info.returncode != 0:
        return f"incusd does not answer ({info.stderr.strip()}): run `make incus`"
    image = subprocess.run(
        ["incus", "image", "info", IMAGE], capture_output=True, text=True, timeout=30, check=False
    )
    if image.returncode != 0:
        return f"Incus image {IMAGE} is missing: run `make incus` to build it"
    if not (VENV_BIN / "molecule").exists() and shutil.which("molecule") is None:
        return "molecule is not installed: run `make venv`"
    return None
