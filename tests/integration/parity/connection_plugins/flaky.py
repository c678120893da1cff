# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local connection, with the first transfers of a wait's module failing.

Stands in for ansible-core's async_fail target, whose ``normal`` action plugin made
async_status fail on its first polls. In ansible-core 2.19 async_status has its own action
plugin, so that override is never reached; failing the transfer of the wait's module instead
hits core's ``poll: N`` (async_status) and async_wait (async_job_poll) alike, with the
AnsibleError that the local connection raises when a transfer fails.
"""

from __future__ import annotations

DOCUMENTATION = """
    name: flaky
    short_description: the local connection, failing the first transfers of a wait's module
    description:
        - Fails the transfer of the first O(failures) AnsiballZ files of async_status or
          async_job_poll, counted in the file O(state_file), then behaves as the local connection.
    author: tplabs developers (@tplabs)
    options:
        failures:
            description: How many wait module transfers fail.
            type: int
            default: 2
            vars:
                - name: flaky_failures
        state_file:
            description: Where the transfers are counted (one line per failed transfer).
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

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.connection.local import Connection as LocalConnection  # noqa: E402

WAIT_MODULES = ("AnsiballZ_async_status.py", "AnsiballZ_async_job_poll.py")


class Connection(LocalConnection):
    transport = "flaky"

    def put_file(self, in_path: str, out_path: str) -> None:
        if os.path.basename(out_path) in WAIT_MODULES:
            state = self.get_option("state_file")
            with open(state, "a+", encoding="utf-8") as handle:
                handle.seek(0)
                failed = len(handle.read().splitlines())
                if failed < self.get_option("failures"):
                    handle.write(f"{out_path}\n")
                    raise AnsibleError(f"failed to transfer file to {out_path}: injected by flaky")
        super().put_file(in_path, out_path)
