#!/usr/bin/python
# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the tplabs.async_tasks.async_wait action plugin (no code runs here)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: async_wait
short_description: Wait for many async jobs at once, fast, with clear failures
version_added: 0.1.0
description:
  - Waits for jobs started with C(async) and C(poll=0), and replaces the
    M(ansible.builtin.async_status) + C(until) + C(retries) + C(delay) loop.
  - One remote round trip per poll for all of a host's jobs, whatever their number. On the host,
    a small module reads every job file each O(poll_interval) seconds for up to O(window) seconds
    and returns as soon as no job is running, so a finished job is noticed within about 0.2 s
    with few round trips, and nothing fills the log with C(FAILED - RETRYING).
  - Reports every job in input order, with its state, return code, output and the module's own
    result (as M(ansible.builtin.async_status) returns it). The task fails when any job failed
    (unless O(fail_on_job_failure=false)), when the wait timed out (the message names each
    unfinished job and how long it ran), or when the host was lost during the wait.
  - "What a job's module said beyond its result is shown as core shows it for a module run
    without C(async) - each warning as C([WARNING]), each deprecation as C([DEPRECATION WARNING])
    (they are returned in the task's C(warnings) and C(deprecations)); a module that raised an
    exception is reported as C(Module failed: <message>), from the structured exception that
    ansible-core 2.19 writes in the job file, or from the traceback string of 2.17 and 2.18."
  - A job whose process is gone while its job file still says it runs (killed with SIGKILL, the
    host rebooted) is reported as C(orphaned) within a poll instead of being waited for until a
    timeout. A job that already failed is not polled again.
  - Finds the async directory as the async wrapper that wrote the job files does - the shell
    option C(async_dir), that is C(ANSIBLE_ASYNC_DIR), C(ansible_async_dir) or C(ansible.cfg) -
    and passes it unexpanded; the module expands C(~) on the host for the user the job ran as
    (the become user with C(become)). So no separate round trip expands it, and an empty reply
    to that expansion cannot send the wait to the wrong directory (see the notes).
  - "Connection faults during the wait are ridden out as core's C(poll: N) rides them out: a
    round trip that fails (the connection fails, a file transfer fails, or the poll module
    fails) is retried after a pause of 1, 2, 4, then 5 s, the connection reset where the
    plugin supports it, until O(timeout) is reached (without one, until the jobs' own
    C(async) limits have passed, when the host reports them) or O(max_connection_failures)
    round trips in a row have failed. Each retry is shown with C(-vvv). Then the host is reported
    unreachable (or the task failed, for a module that keeps failing) with a message that says
    how many round trips failed over how long and which jobs were unfinished."
  - With C(-v), prints the progress of each host after each poll (jobs done, pending, elapsed).
options:
  jobs:
    description:
      - What to wait for. A registered async launch result, a loop of them (the registered
        variable or its C(results)), a result of M(tplabs.async_tasks.async_launch), a list of
        any of these, a job id string, or a list of job ids.
      - Skipped loop items are reported as C(skipped) and not waited for; items whose launch
        failed are reported as C(launch_failed). A result that is not an async launch (no
        C(ansible_job_id)) is an error.
      - A registered C(poll=N) result (the job already ended, and core removed its file) is
        reported from that result, without a round trip; one where core gave up at the C(async)
        limit (C(async task did not complete within the requested time)) is waited for by the job
        id it holds.
      - Job ids must look like core's, C(j<digits>.<digits>); anything else (such as a path) is
        rejected before anything is read on the host.
      - An empty list succeeds with nothing to wait for.
    type: raw
    required: true
    aliases: [jid]
  timeout:
    description:
      - Longest time to wait, in seconds, for the whole wait (not per job). V(0) reads the jobs
        once and returns.
      - By default there is none, since each job ends by its own C(async) limit and orphaned
        jobs are detected. The async wrapper checks its own limit only every 5 seconds, so a job
        may run up to 5 s past its C(async).
    type: float
  cleanup:
    description:
      - Remove the job file of every job that ended (in C(~/.ansible_async) by default), in the
        same round trip that read it. Running jobs keep theirs.
    type: bool
    default: true
  fail_on_job_failure:
    description: Fail the task when any job failed. With V(false) the task reports and succeeds.
    type: bool
    default: true
  fail_fast:
    description: Return as soon as one job failed, leaving the others running, instead of waiting for all.
    type: bool
    default: false
  on_timeout:
    description:
      - What to do with the jobs that are still running when O(timeout) is reached.
      - V(fail) leaves them running; V(kill) stops their processes on the host and marks them
        C(killed) once they are seen gone, or C(kill_failed) (named in the message, the job file
        left as it was) when they could not be stopped. The kill's round trip is counted in
        C(elapsed). Core's async_status has no kill mode.
    type: str
    choices: [fail, kill]
    default: fail
  max_connection_failures:
    description:
      - How many round trips in a row may fail (connection failure, failed file transfer,
        failed poll module) before the wait gives up on the host. A round trip that succeeds
        resets the count.
      - With the default V(6), the pauses between retries add up to 17 s (1, 2, 4, 5, 5 s), plus
        the time the failed round trips took; a container or host that restarts within that
        time is waited for, one that stays down is reported within about 20 to 30 s.
      - V(0) sets no count, only a deadline - O(timeout), or without one the moment every
        unfinished job has passed its own C(async) limit (when the host reports the limits,
        as C(async_limit)); when neither is known, the default count applies, so that a lost
        host is never waited for forever.
      - O(timeout) always wins - the wait never runs past it for a fault.
    type: int
    default: 6
  window:
    description:
      - Longest time, in seconds, that one round trip waits on the host for the jobs to end
        (long poll). Larger means fewer round trips; the task still returns as soon as the jobs end.
    type: float
    default: 5.0
  poll_interval:
    description: Seconds between two reads of the job files on the host, within a window.
    type: float
    default: 0.1
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - Reads the jobs; neither removes job files nor kills jobs.
      - A job launched in check mode whose module skipped (core writes C(skipped) in its job
        file) is reported C(skipped), and the task is skipped when every job was, as core's
        async_status says C(skipping).
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
notes:
  - C(finished) and C(started) in job results are booleans (as in ansible-core 2.19); test them
    with C(is finished).
  - "Differences from M(ansible.builtin.async_status) that remain, and why: the task result has
    C(jobs) (one per job) and C(counts) rather than one job's keys at the top, since it waits for
    many; top-level C(failed) and C(finished) are the task's own status, not a job's; a job id
    with no job file is the job state C(unknown) (async_status fails with C(could not find job));
    a job file that cannot be parsed is C(corrupt) at once (async_status says the job still runs
    until it has written something parsable); job files are removed once read (O(cleanup),
    which async_status does only in C(mode=cleanup)); a job that reached its own C(async) limit
    is C(timeout), not C(failed); a job whose processes are gone is C(orphaned) instead of
    running until a timeout; and the task never becomes C(changed)."
  - "Tip for lab and CI inventories: set an absolute C(ansible_async_dir) (for example
    C(/root/.ansible_async)). Core's async launch and M(ansible.builtin.async_status) then never
    expand C(~) on the host, which saves a round trip per async task and avoids a wrong path:
    when the remote C(echo ~) prints nothing (seen with C(incus exec) under load), core falls
    back to the working directory and drops the rest of the path, and async_status then fails
    with C(could not find job). async_wait is not affected (it expands on the host, in the
    poll module), but it reports where it looked in C(async_dir)."
  - A job is C(running) while it runs and C(queued) while an M(tplabs.async_tasks.async_launch)
    job waits for a free slot; both are waited for.
  - "Guarantees on the host (each proved by a test named in C(docs/async_wait-guarantees.md)):
    only the job's own processes are signalled, identified by what its launch recorded (owner,
    session, start time), never by a command-line pattern alone; a job is C(killed) only once
    none of its processes is left, otherwise C(kill_failed) with the pids still alive; a job is
    C(orphaned) only when its job file says it runs and none of its processes exists (never
    while a look-alike or a wrapper behind an interpreter shim runs); a bad job file (not UTF-8,
    too big, too deeply nested, a FIFO, a symbolic link) is C(corrupt) for that job alone; job
    files are read and written without following symbolic links, written whole or not at all,
    and a kill never writes through a planted link; the poll module leaves no temporary
    directory behind, and a kill removes the launch's own."
seealso:
  - module: ansible.builtin.async_status
  - ref: playbooks_async
    description: Asynchronous actions and polling.
author:
  - tplabs developers (@tplabs)
"""

EXAMPLES = r"""
- name: Start three jobs in the background
  ansible.builtin.shell: "{{ item }}"
  loop: ["sleep 3", "sleep 5", "exit 3"]
  async: 600
  poll: 0
  register: jobs
  changed_when: true

- name: Wait for all of them at once (fails, naming the job that exited 3)
  tplabs.async_tasks.async_wait:
    jobs: "{{ jobs }}"
    timeout: 120
  register: waited

- name: Wait, report, and do not fail on failed jobs
  tplabs.async_tasks.async_wait:
    jobs: "{{ jobs.results }}"
    fail_on_job_failure: false
  register: waited

- name: Show the jobs that failed
  ansible.builtin.debug:
    msg: "{{ waited.jobs | selectattr('failed') | map(attribute='jid') }}"

- name: Stop what still runs after 10 minutes
  tplabs.async_tasks.async_wait:
    jobs: "{{ jobs }}"
    timeout: 600
    on_timeout: kill

- name: Ride out a container restart of up to 2 minutes, but no longer than 10 minutes in all
  tplabs.async_tasks.async_wait:
    jobs: "{{ jobs }}"
    timeout: 600
    max_connection_failures: 0  # only the timeout bounds the retries

- name: Return at the first failure
  tplabs.async_tasks.async_wait:
    jid: "{{ jobs }}"
    fail_fast: true

# Ad hoc, with a job id printed by `ansible all -B 600 -P 0 ...`:
#   ansible all -m tplabs.async_tasks.async_wait -a jid=j123456789.4242
"""

RETURN = r"""
jobs:
  description: One entry per input job, in input order.
  returned: always
  type: list
  elements: dict
  contains:
    jid:
      description: The job id (null for a skipped or failed launch).
      type: str
      sample: j440699518422.16278
    state:
      description:
        - V(finished) (ended well), V(failed) (ended with a failure), V(timeout) (reached its
          own async limit), V(orphaned) (its process is gone but its file says running),
          V(unknown) (no job file), V(corrupt) (a job file that cannot be parsed), V(killed)
          (stopped by O(on_timeout=kill)), V(kill_failed) (O(on_timeout=kill) could not stop
          it; it may still run), V(running) or V(queued) (still running, or waiting for a slot
          of M(tplabs.async_tasks.async_launch), when the wait returned), V(skipped) (skipped at
          launch, or its module skipped in check mode) or V(launch_failed).
      type: str
      sample: finished
    finished:
      description: Whether the job's own result was read (V(finished), V(failed), V(timeout)).
      type: bool
    failed:
      description: Whether the job failed or can never succeed.
      type: bool
    rc:
      description: The job's return code, when its module reports one.
      type: int
    stdout:
      description: The job's standard output, when its module reports one.
      type: str
    stderr:
      description: The job's standard error, when its module reports one.
      type: str
    stdout_lines:
      description: The job's standard output, split into lines.
      type: list
      elements: str
    stderr_lines:
      description: The job's standard error, split into lines.
      type: list
      elements: str
    msg:
      description: What happened to the job, naming the cause of a failure.
      type: str
      sample: "rc=3: non-zero return code"
    result:
      description:
        - The job's result as M(ansible.builtin.async_status) returns it (and C(register)
          keeps it) - the module's own result plus C(ansible_job_id), C(started),
          C(finished), C(results_file), C(stdout_lines) and C(stderr_lines), C(changed) and
          C(failed). While the job runs, what async_status says then (C(finished=false)).
        - Empty for a job that has no job id (skipped or failed at launch).
      type: dict
    elapsed:
      description: Seconds the job ran (or has run, for a running job), when known.
      type: float
    ended_ago:
      description:
        - Seconds between the job's end and the moment this task returned, when known (null for a
          job still running, or one whose end time was not read on the host).
        - Measured on the host's clock from the job's end to the host's reply, then on the
          controller's monotonic clock from the reply to the task's return, so no clock needs to
          agree with another.
      type: float
      sample: 0.412
    item:
      description: The loop item, when the input was a loop result.
      type: raw
    name:
      description: The job's name, when the input was an M(tplabs.async_tasks.async_launch) result that gave one.
      type: str
    erased:
      description: True when O(cleanup) removed the job file.
      type: bool
    found_in:
      description:
        - Where the job file was found, when not in the async directory (for example where
          core's C(~) expansion fallback would have put it; see the notes).
      type: str
    cleanup_error:
      description: Why the job file could not be removed, when O(cleanup) failed for it.
      type: str
counts:
  description: How many jobs are in each situation.
  returned: always
  type: dict
  contains:
    total:
      description: Input jobs.
      type: int
    finished:
      description: Jobs whose result was read (including failed ones).
      type: int
    failed:
      description: Jobs that failed.
      type: int
    pending:
      description: Jobs still running when the wait returned.
      type: int
    skipped:
      description: Jobs skipped at launch.
      type: int
  sample: {total: 3, finished: 3, failed: 1, pending: 0, skipped: 0}
finished:
  description: True when no job is still running (so C(is finished) works on the result).
  returned: always
  type: bool
pending:
  description: Jobs still running when the wait returned.
  returned: always
  type: int
elapsed:
  description: Seconds the wait took, on a monotonic clock.
  returned: always
  type: float
  sample: 5.123
polls:
  description: Remote round trips that ran the polling module (one per poll for all jobs).
  returned: always
  type: int
  sample: 2
async_dir:
  description: The async directory where the job files were read, as expanded on the host.
  returned: when a job was polled
  type: str
  sample: /root/.ansible_async
warnings:
  description:
    - The warnings of every job's module (also in each C(jobs[].result)), shown by ansible-core
      as it shows a module's own.
  returned: when a job's module warned
  type: list
  elements: str
deprecations:
  description:
    - The deprecations of every job's module (also in each C(jobs[].result)), shown by
      ansible-core as it shows a module's own.
  returned: when a job's module emitted one
  type: list
  elements: dict
skipped:
  description: True when every job was skipped (at launch, or by check mode), as core's async_status says skipping.
  returned: when every job was skipped
  type: bool
unreachable:
  description: True when the host was lost during the wait (the message says how many round trips failed over how long).
  returned: when the host was lost
  type: bool
msg:
  description: A summary; on failure it names each job concerned and the cause.
  returned: always
  type: str
"""
