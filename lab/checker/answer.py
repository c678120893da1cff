# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The trainee's file, checked before anything runs: there, YAML, a playbook, aimed at the lab."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from .messages import say

IMPORTS = {"import_playbook", "ansible.builtin.import_playbook"}


class BadInput(Exception):
    """Input the checker cannot grade; the message says why, in the trainee's language."""


def readable(path: Path) -> str:
    if not path.exists():
        raise BadInput(say("no_file", file=path))
    if not path.is_file():
        raise BadInput(say("not_a_file", file=path))
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(say("not_yaml", file=path, reason=err)) from None


def _loader() -> Any:
    from ansible.parsing.dataloader import DataLoader

    return DataLoader()


def plays(path: Path) -> list[dict[str, Any]]:
    """The plays of a playbook file, or BadInput saying why it is not one."""
    readable(path)
    try:
        data = _loader().load_from_file(str(path))
    except Exception as err:  # Ansible's parser errors carry the line and column
        reason = " ".join(str(getattr(err, "message", err)).split())[:400]
        raise BadInput(say("not_yaml", file=path, reason=reason)) from None
    if data is None:
        raise BadInput(say("not_playbook", file=path, reason=say("why_empty")))
    if not isinstance(data, list):
        kind = type(data).__name__.replace("Ansible", "").replace("Unicode", "").lower()
        raise BadInput(say("not_playbook", file=path, reason=say("why_not_list", kind=kind)))
    for index, play in enumerate(data, 1):
        if not isinstance(play, dict) or not ("hosts" in play or IMPORTS & set(play)):
            raise BadInput(say("not_playbook", file=path, reason=say("why_no_hosts", index=index)))
    return data


def patterns(path: Path, data: list[dict[str, Any]], seen: set[Path] | None = None) -> list[str]:
    """The host patterns of every play, imported playbooks included."""
    seen = seen or set()
    found: list[str] = []
    for play in data:
        target = next((play[k] for k in IMPORTS if k in play), None)
        if target is not None:
            sub = (path.parent / str(target)).resolve()
            if sub.is_file() and sub not in seen and "{{" not in str(target):
                seen.add(sub)
                found += patterns(sub, plays(sub), seen)
            continue
        hosts = play.get("hosts")
        found += [str(h) for h in hosts] if isinstance(hosts, list) else [str(hosts)]
    return found


def lab_hosts(inventory: Path) -> tuple[list[str], Any]:
    from ansible import constants
    from ansible.inventory.manager import InventoryManager

    constants.HOST_PATTERN_MISMATCH = "ignore"  # in this process only: the checker says it itself

    # a file or a directory of sources (Molecule's: ansible_inventory.yml and group_vars/)
    if not inventory.exists():
        raise BadInput(say("no_inventory", inventory=inventory))
    manager = InventoryManager(loader=_loader(), sources=[str(inventory)])
    lab = sorted(h.name for h in manager.get_hosts("lab"))
    if not lab:
        raise BadInput(say("inventory_no_lab", inventory=inventory))
    return lab, manager


def targeted(path: Path, inventory: Path) -> list[str]:
    """The lab hosts the playbook's plays aim at (BadInput when none)."""
    found = patterns(path, plays(path))
    lab, manager = lab_hosts(inventory)
    if any("{{" in p for p in found):
        return lab  # a templated pattern: the run will tell
    hit = sorted({h.name for p in found for h in manager.list_hosts(p)} & set(lab))
    if not hit:
        raise BadInput(
            say(
                "no_lab_host",
                file=path,
                patterns=", ".join(found),
                lab=", ".join(lab),
                inventory=inventory,
            )
        )
    return hit


def adhoc(path: Path, step: str) -> list[str]:
    """The ad hoc command of an answer file (steps 1-2): one line starting with `ansible`."""
    lines = [
        line.strip()
        for line in readable(path).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    line = lines[0] if lines else ""
    try:
        argv = shlex.split(line.rstrip("\\"))
    except ValueError:
        argv = []
    if len(lines) != 1 or not argv or argv[0] != "ansible":
        raise BadInput(say("not_adhoc", file=path, step=step, line=line[:120]))
    return argv
