# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local connection, with faults: the first transfers of a wait's module fail, and the
output of the first commands that match is lost.

Failed transfers stand in for ansible-core's async_fail target, whose ``normal`` action
plugin made async_status fail on its first polls. In ansible-core 2.19 async_status has its
own action plugin, so that override is never reached; failing the transfer of the wait's
module instead hits core's ``poll: N`` (async_status) and async_wait (async_job_poll) alike,
with the AnsibleError that the local connection raises when a transfer fails.

Lost outputs stand in for `incus exec` on a loaded CPU (docs/known-issues.md, 2): the command
runs on the host and exits 0, and its output does not come back
(tests/integration/test_lab_measure.py).
"""

from __future__ import annotations

DOCUMENTATION = """
    name: flaky
    short_description: the local connection, with failed transfers and lost outputs
    description:
        - Fails the transfer of the first O(failures) AnsiballZ files of async_status or
          async_job_poll, and drops the standard output of the first O(losses) commands that
          contain O(loss_match), each counted in the file O(state_file); otherwise behaves as
          the local connection.
    author: tplabs developers (@tplabs)
    options:
        failures:
            description: How many wait module transfers fail.
            type: int
            default: 2
            vars:
                - name: flaky_failures
        losses:
            description: How many outputs of commands containing O(loss_match) are lost.
            type: int
            default: 0
            vars:
                - name: flaky_losses
        loss_match:
            description: The text a command contains for its output to be lost.
            type: str
            default: ""
            vars:
                - name: flaky_loss_match
        state_file:
            description: >-
                Where the faults are counted: one line per failed transfer (C(transfer PATH)),
                one per lost output (C(lost TIME BYTES)).
            type: path
            required: true
            vars:
                - name: flaky_state_file
        become_success_timeout:
            type: int
            default: 10
            description: As for the local connection.
            vars:
                - name: ansible_local_become_success_timeout
        become_strip_preamble:
            type: bool
            default: true
            description: As for the local connection.
            vars:
                - name: ansible_local_become_strip_preamble
    extends_documentation_fragment:
        - connection_pipelining
"""

import os  # noqa: E402
import time  # noqa: E402

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.connection.local import Connection as LocalConnection  # noqa: E402

WAIT_MODULES = ("AnsiballZ_async_status.py", "AnsiballZ_async_job_poll.py")


class Connection(LocalConnection):
    transport = "flaky"

    def _fault(self, kind: str, limit: int, line: str) -> bool:
        """Count one more fault of this kind in the state file, unless `limit` are there."""
        with open(self.get_option("state_file"), "a+", encoding="utf-8") as handle:
            handle.seek(0)
            done = sum(1 for seen in handle.read().splitlines() if seen.startswith(kind + " "))
            if done >= limit:
                return False
            handle.write(f"{kind} {line}\n")
            return True

    def put_file(self, in_path: str, out_path: str) -> None:
        if os.path.basename(out_path) in WAIT_MODULES and self._fault(
            "transfer", self.get_option("failures"), out_path
        ):
            raise AnsibleError(f"failed to transfer file to {out_path}: injected by flaky")
        super().put_file(in_path, out_path)

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        rc, stdout, stderr = super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        match = self.get_option("loss_match")
        if (
            match
            and match in cmd
            and self._fault("lost", self.get_option("losses"), f"{time.time():.6f} {len(stdout)}")
        ):
            return rc, b"", stderr
        return rc, stdout, stderr
