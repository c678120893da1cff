#!/usr/bin/python
# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote half of tplabs.async_tasks.async_wait: read every job file of a host in one go."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: async_job_poll
short_description: Read, wait for or kill many async jobs at once on a host (internal)
version_added: 0.1.0
description:
  - Internal module of M(tplabs.async_tasks.async_wait); use that action instead.
  - Reads the job files that the async wrapper writes for the given job ids, every O(interval)
    seconds, for up to O(window) seconds, and returns as soon as no job is running any more.
    One reply holds every job, in the order given; a problem with one job's file (unreadable,
    not UTF-8, not JSON, nested too deep, a symbolic link, a FIFO, a job id too long for a
    file name) is reported for that job alone, as C(corrupt) or C(unknown) with the reason.
  - "What is killed (O(mode=kill)): only the processes tied to the job with certainty, and
    only through process groups that hold nothing else. For ansible-core's async_wrapper, a
    wrapper process is one whose command line has the wrapper script followed by exactly the
    job id's prefix (an interpreter shim before it is fine), owned by the job file's owner,
    started before the job file was written; then the members of its session (whose leader
    has exited) and their descendants. For async_launch jobs, the process and group the job
    record names, with the same pid and start time (never the launch's supervisor). Never
    process group 0, 1, a negative one, the module's own group or session. A job is
    reported C(killed) only once its processes are seen gone; otherwise C(kill_failed) with
    the reason (not ours, no C(/proc), not tied with certainty, still alive after SIGKILL)
    and its job file left as it was. A job id without a job file is C(unknown) and nothing
    is signalled. Tests: test_kill_of_a_root_job_by_another_user_is_kill_failed,
    test_kill_of_a_wrong_jid_without_job_file_signals_nothing,
    test_kill_without_proc_is_kill_failed, test_kill_is_reported_only_once_the_processes_are_gone,
    test_kill_spares_processes_that_started_after_the_job_file (unit, hostile host);
    test_forbidden_groups, test_a_group_shared_with_a_stranger_is_never_signalled_whole (unit,
    _proc)."
  - "After a verified kill, the launch's temporary directory named on the wrapper's command
    line (it holds the module and its arguments, secrets included) is removed, as
    async_wrapper itself does at the end of a job, unless the launch kept it
    (C(-preserve_tmp), keep_remote_files). Test: test_kill_removes_the_launch_tmp_dir."
  - "When C(orphaned) is said: the job file says running, no process of the job is left in
    two reads of the process table, and the job file has not changed since before the first
    of them (a job writes its result before its processes exit). The boot time only adds to
    the message. No verdict without a process table (no C(/proc)), or for a job of another
    user whose processes this user cannot see: the job stays C(running) with the reason in
    C(msg). Tests: test_live_job_is_never_orphaned_after (clock-step, restored-snapshot,
    copied-file), test_live_job_is_never_orphaned_behind_an_interpreter_shim,
    test_live_job_is_never_orphaned_without_proc, test_orphan_needs_no_process_and_an_unchanged_file,
    test_a_lookalike_of_another_user_does_not_keep_a_dead_job_alive,
    test_a_job_that_ends_while_it_looks_dead_is_not_orphaned."
  - "What is never written or followed: nothing is written but the job files of the given
    job ids; reads open job files with O_NOFOLLOW and O_NONBLOCK and refuse anything but a
    regular file; the kill record is written to a new file (O_EXCL, a name of its own)
    renamed over the job file, so a planted C(<jid>.tmp) link is never followed; a job id
    that is not C(j<1-18 digits>.<1-10 digits>) is never turned into a path. Tests:
    test_never_follows_a_planted_tmp_link_when_killing, test_never_follows_a_symlinked_job_file,
    test_one_bad_file_stays_that_jobs, test_a_bad_job_id_is_reported_and_never_a_path."
  - The collection's C(docs/async_wait-guarantees.md) details each guarantee and its tests.
options:
  jids:
    description: Job ids to look at.
    type: list
    elements: str
    required: true
  async_dir:
    description:
      - The async directory. C(~) and C(~user) are expanded here, on the host, for the user
        the module runs as (the become user), as async_wrapper expands it.
      - When a job file is not there, the module also looks where a misexpanded async
        directory would have put it (the directory it was run from, the default async
        directory of the user) and says so in C(found_in).
    type: str
    default: ~/.ansible_async
  mode:
    description:
      - V(wait) reads the jobs and waits on the host; V(kill) stops the jobs' processes.
    type: str
    choices: [wait, kill]
    default: wait
  window:
    description:
      - Seconds to wait on the host for the jobs to end before returning. V(0) reads once
        and returns (the caller paces the next call).
    type: float
    default: 5.0
  interval:
    description:
      - Seconds between two reads of the job files (at least 0.01); never more than what is
        left of O(window).
    type: float
    default: 0.1
  fail_fast:
    description: Return as soon as one job failed.
    type: bool
    default: false
  cleanup:
    description:
      - Remove the job file of every job that ended, once it has been read. A file whose
        result was too big to return whole, or that could not be read, is kept.
    type: bool
    default: false
  seen:
    description:
      - Job ids whose job file the caller already saw. A missing file of one of them is
        reported as removed after it was seen (by another waiter with cleanup, or
        async_status C(mode=cleanup)), not as a wrong job id.
    type: list
    elements: str
    default: []
  result_max_bytes:
    description:
      - The most a job's result may weigh in the reply (JSON bytes); longer strings and lists
        are cut, the job says C(truncated), and its file is kept on the host.
    type: int
    default: 1048576
attributes:
  check_mode:
    support: full
    details: In check mode nothing is signalled or removed; O(mode=kill) only reads.
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
author:
  - tplabs developers (@tplabs)
"""

EXAMPLES = r"""
- name: Read two jobs once (what async_wait does on each round trip)
  tplabs.async_tasks.async_job_poll:
    jids: [j1234.5678, j1234.5679]
    async_dir: ~/.ansible_async
    window: 0
"""

RETURN = r"""
jobs:
  description:
    - One entry per job id, in the order given, with C(jid), C(state), C(msg), C(path),
      C(result) (the job's record when it ended, or the kill record), C(started_at),
      C(ended_at), C(running_for), C(erased), C(cleanup_error), C(truncated), C(found_in)
      and C(pids) (the job's processes, when tied with certainty) where they apply.
    - After a kill, C(launch_tmp_removed) lists the launch temp dirs removed and
      C(launch_tmp_error) says why one could not be.
  returned: always
  type: list
  elements: dict
async_dir:
  description: The async directory used, expanded on the host.
  returned: always
  type: str
now:
  description: The host's clock (epoch seconds) when the reply was made.
  returned: always
  type: float
checks:
  description: How many times the job files were read during this call.
  returned: always
  type: int
"""


import math  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job, _poll  # noqa: E402
from ansible_collections.tplabs.async_tasks.plugins.module_utils._poll import (  # noqa: E402, F401  # pylint: disable=unused-import
    Poller,
    wrapper_processes,  # kept importable from this module for its callers
)

ARGUMENT_SPEC = {
    "jids": {"type": "list", "elements": "str", "required": True},
    "async_dir": {"type": "str", "default": _job.DEFAULT_ASYNC_DIR},
    "mode": {"type": "str", "choices": ["wait", "kill"], "default": "wait"},
    "window": {"type": "float", "default": 5.0},
    "interval": {"type": "float", "default": 0.1},
    "fail_fast": {"type": "bool", "default": False},
    "cleanup": {"type": "bool", "default": False},
    "seen": {"type": "list", "elements": "str", "default": []},
    "result_max_bytes": {"type": "int", "default": _job.DEFAULT_RESULT_MAX_BYTES},
}


def check_params(params: dict) -> str | None:
    """The first bad argument, named with its value; None when all are fine."""
    for name in ("window", "interval"):
        value = params[name]
        if not math.isfinite(value) or value < 0:
            return f"{name} must be a finite number of seconds >= 0, got {value!r}"
    if params["result_max_bytes"] < 1024:
        return f"result_max_bytes must be >= 1024, got {params['result_max_bytes']}"
    if not params["async_dir"].strip():
        return "async_dir must not be empty"
    return None


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    problem = check_params(params)
    if problem:
        module.fail_json(msg=problem)
    async_dir = _poll.expand_dir(params["async_dir"])
    poller = Poller(
        params["jids"],
        async_dir,
        fallbacks=_poll.fallback_dirs(async_dir, params["async_dir"]),
        seen=params["seen"],
        result_max_bytes=params["result_max_bytes"],
    )
    if params["mode"] == "kill" and not module.check_mode:
        poller.kill()
    else:
        window = 0.0 if params["mode"] == "kill" else params["window"]
        poller.wait(window, max(params["interval"], _poll.MIN_INTERVAL), params["fail_fast"])
    if params["cleanup"] and not module.check_mode:
        poller.cleanup()
    module.exit_json(
        changed=False,
        jobs=poller.reply_jobs(),
        async_dir=async_dir,
        checks=poller.checks,
        now=time.time(),
    )


if __name__ == "__main__":
    main()
