# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for many async jobs of a host at once: one long-polling round trip per poll.

The steps (wait until done, kill the unfinished, summarise) live in the wait engine,
``plugins/plugin_utils/_wait.py``, which async_launch also uses when it waits.
"""

from __future__ import annotations

import time
from typing import ClassVar

from ansible.plugins.action import ActionBase

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait import JobWaiter
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait_input import (
    ARGUMENT_SPEC,
    DEFAULT_MAX_CONNECTION_FAILURES,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WINDOW,
    WaitOptions,
    collect_jobs,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    ARGUMENT_SPEC: ClassVar[dict[str, dict]] = ARGUMENT_SPEC
    DEFAULT_WINDOW = DEFAULT_WINDOW
    DEFAULT_POLL_INTERVAL = DEFAULT_POLL_INTERVAL
    DEFAULT_MAX_CONNECTION_FAILURES = DEFAULT_MAX_CONNECTION_FAILURES

    # The engine's clock and pause (unit tests replace them).
    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _unused, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        options = WaitOptions.from_args(args)
        entries = collect_jobs(args["jobs"])  # every input checked before the host is touched
        waiter = JobWaiter(self, task_vars, options, entries, clock=self.clock, sleep=self.sleep)
        waiter.wait_until_done()
        waiter.kill_unfinished()
        result.update(waiter.summarise())
        return result
