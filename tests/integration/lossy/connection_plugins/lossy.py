# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local connection, losing the standard output of the first commands that match.

Stands in for `incus exec` on a loaded CPU (docs/known-issues.md, 2): the command runs on the
host and exits 0, and its output does not come back.
"""

from __future__ import annotations

DOCUMENTATION = """
    name: lossy
    short_description: the local connection, losing the output of the first matching commands
    description:
        - Runs each command as the local connection does; of the first O(losses) commands that
          contain O(match), counted in the file O(state_file), the standard output is dropped.
    author: tplabs developers (@tplabs)
    options:
        losses:
            description: How many outputs are lost.
            type: int
            default: 1
            vars:
                - name: lossy_losses
        match:
            description: Only commands containing this text lose their output.
            type: str
            required: true
            vars:
                - name: lossy_match
        state_file:
            description: Where the losses are counted (one line per lost output, its time first).
            type: path
            required: true
            vars:
                - name: lossy_state_file
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

import time  # noqa: E402

from ansible.plugins.connection.local import Connection as LocalConnection  # noqa: E402


class Connection(LocalConnection):
    transport = "lossy"

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        rc, stdout, stderr = super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if self.get_option("match") in cmd:
            with open(self.get_option("state_file"), "a+", encoding="utf-8") as handle:
                handle.seek(0)
                if len(handle.read().splitlines()) < self.get_option("losses"):
                    handle.write(f"{time.time():.6f} {len(stdout)} bytes lost\n")
                    return rc, b"", stderr
        return rc, stdout, stderr
