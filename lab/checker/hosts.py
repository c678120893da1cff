# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-side look-ups through pytest-ansible's host manager (ad hoc modules, in process)."""

from __future__ import annotations

import base64
import json
import os
import shlex
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .probe import MARK

PROBE = (Path(__file__).parent / "probe.py").read_text(encoding="utf-8")
# Run on the host as `python -c LOADER SOURCE REQUESTS HOST ASYNC_DIR MARK` (base64 SOURCE and
# REQUESTS); MARK keeps probes out of the processes a probe counts as a job's.
LOADER = (
    "import base64, sys; sys.argv[1:3] = [base64.b64decode(a).decode() for a in sys.argv[1:3]]; "
    "exec(compile(sys.argv.pop(1), 'probe.py', 'exec'))"
)


def _reply(reply: dict[str, Any]) -> dict[str, Any] | None:
    """The probe's JSON answer, or None (a failed command, or an output lost on the way)."""
    if reply.get("rc") != 0 or not reply.get("stdout", "").strip():
        return None
    try:
        data = json.loads(reply["stdout"].strip().splitlines()[-1])
    except ValueError:
        return None
    return data if isinstance(data, dict) and "now" in data else None


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
                reply = self._manager[":".join(hosts)].raw(**args)
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
        # `raw`: one shell command per host, no module (about 0.5 CPU-s less per host than
        # `command`, which imports Ansible's module code on the host). The probe and its
        # requests travel base64-encoded: nothing in them is read as a template.
        source = base64.b64encode(PROBE.encode("utf-8")).decode("ascii")
        payload = base64.b64encode(json.dumps(requests).encode("utf-8")).decode("ascii")
        command = trust_as_template(
            "{{ ansible_python_interpreter | default('/usr/bin/python3') | quote }} -c "
            + shlex.quote(LOADER)
            + f" {source} {payload} "
            + "{{ inventory_hostname | quote }} "
            # the async dir the host's jobs use (core's default; Molecule's lab hosts set one)
            + "{{ ansible_async_dir | default('~/.ansible_async') | quote }} "
            + MARK
        )
        replies = self._run(hosts, _raw_params=command)
        for host, reply in replies.items():
            data = _reply(reply)
            if data is None:  # no usable answer: once more (the probe only reads and touches)
                data = _reply(self._run([host], _raw_params=command)[host])
            if data is None:
                reasons = [reply.get(k) for k in ("msg", "stderr", "stdout")]
                reason = "; ".join(str(r).strip() for r in reasons if r and str(r).strip())
                raise HostError(f"{host}: {(reason or 'no answer')[:400]}")
            views[host] = HostView(
                host, data["now"], data["async_dir"], data["python"], data["jobs"], data["files"]
            )
        return views
