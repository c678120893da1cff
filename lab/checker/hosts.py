# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-side look-ups through pytest-ansible's host manager (ad hoc modules, in process)."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROBE = (Path(__file__).parent / "probe.py").read_text(encoding="utf-8")


class HostError(Exception):
    """A host did not answer (unreachable, no Python): the message says which and why."""


@dataclass
class HostView:
    """One host as the probe saw it."""

    name: str
    now: float
    async_dir: str
    python: str = ""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


class Hosts:
    """The lab hosts of an inventory, reached the way the trainee's play reaches them."""

    def __init__(self, inventory: str, pattern: str = "lab") -> None:
        os.environ.setdefault("ANSIBLE_DEPRECATION_WARNINGS", "False")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pytest_ansible.host_manager.utils import get_host_manager

            self._manager = get_host_manager(inventory=inventory, host_pattern=pattern)
        self.pattern = pattern

    def names(self) -> list[str]:
        return sorted(
            h.name for h in self._manager.options["inventory_manager"].list_hosts(self.pattern)
        )

    def _run(self, hosts: list[str], **args: Any) -> dict[str, dict[str, Any]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                reply = self._manager[":".join(hosts)].command(**args)
            except Exception as err:  # pytest-ansible raises its own and Ansible's errors
                raise HostError(
                    str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                ) from None
        return {h: dict(reply.contacted.get(h, {})) for h in hosts}

    def probe(
        self,
        hosts: list[str],
        jobs: dict[str, dict[str, str]] | None = None,
        files: list[str] | None = None,
        touch: list[str] | None = None,
    ) -> dict[str, HostView]:
        """Look at each host's job files (jobs: host -> {jid: command-line needle}) and files."""
        jobs = jobs or {}
        views: dict[str, HostView] = {}
        from ansible.template import trust_as_template

        requests = {
            h: {
                "jobs": jobs.get(h, {}),
                "files": files or [],
                "touch": touch or [],
            }
            for h in hosts
        }
        argv = [
            trust_as_template("{{ ansible_python_interpreter | default('/usr/bin/python3') }}"),
            "-c",
            PROBE,
            json.dumps(requests),
            trust_as_template("{{ inventory_hostname }}"),
            # the async dir the host's jobs use (core's default; Molecule's lab hosts set one)
            trust_as_template("{{ ansible_async_dir | default('~/.ansible_async') }}"),
            "lab-checker-probe",
        ]
        replies = self._run(hosts, argv=argv)
        for host, reply in replies.items():
            if reply.get("rc") != 0 or "stdout" not in reply:
                reasons = [reply.get(k) for k in ("msg", "module_stderr", "stderr")]
                reason = "; ".join(str(r).strip() for r in reasons if r and str(r).strip())
                raise HostError(f"{host}: {(reason or 'no answer')[:400]}")
            data = json.loads(reply["stdout"])
            views[host] = HostView(
                host, data["now"], data["async_dir"], data["python"], data["jobs"], data["files"]
            )
        return views
