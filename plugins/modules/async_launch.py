#!/usr/bin/python
# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start all of a host's jobs in one round trip (the host side of the async_launch action)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: async_launch
short_description: Start many background jobs per host in one round trip, at most N at once
version_added: 0.3.0
description:
  - Starts every job of O(jobs) on each host with one module execution, whatever their
    number, and returns at once with one job id per job. Core's C(loop) + C(async) +
    C(poll=0) costs one launch (module transfer, C(async_wrapper) start) per item, one
    after the other.
  - A supervisor process on the host, detached like ansible-core's C(async_wrapper) (new
    session, double fork, standard streams on C(/dev/null)), outlives the connection that
    started it (local, ssh, C(community.general.incus)). It runs the jobs within
    O(max_parallel) slots (the others queue, in order), each in a process group of its own,
    and kills a job's whole process group when it reaches its O(async) limit.
  - Job files are in ansible-core's format and place (the async directory as core resolves
    it, see below), so M(ansible.builtin.async_status) reads each job id exactly as it reads
    a core job, and M(tplabs.async_tasks.async_wait) waits for them (kill, cleanup and
    orphan detection included). Pass the registered result to async_wait as it is.
  - Each job's result is what M(ansible.builtin.command) (O(jobs[].cmd), O(jobs[].argv)) or
    M(ansible.builtin.shell) (O(jobs[].shell)) returns for the same run, with C(cmd), C(rc),
    C(stdout), C(stderr), C(start), C(end), C(delta), C(msg), C(changed) and C(failed).
  - A job that cannot start (command not found, missing O(jobs[].chdir)) ends C(failed) at
    once with the reason, as command would report it; the other jobs run.
  - With O(wait=true), the same task also waits for the jobs (one module transfer, then one
    long poll on the host), and the result is then the one M(tplabs.async_tasks.async_wait)
    gives, plus each job's C(name).
  - All input is checked on the controller before anything runs on the host; an error names
    the job and the field, for example C(jobs[2].argv[1]).
options:
  jobs:
    description:
      - The jobs to start, in order. Each job has exactly one of O(jobs[].cmd),
        O(jobs[].shell) or O(jobs[].argv).
    type: list
    elements: dict
    required: true
    suboptions:
      cmd:
        description:
          - A command line, split as M(ansible.builtin.command) splits it (no shell, so no
            pipes, redirections or variables).
        type: str
      shell:
        description: A command line run by C(/bin/sh -c), as M(ansible.builtin.shell) runs it.
        type: str
      argv:
        description: The command and its arguments as a list of strings, as in M(ansible.builtin.command).
        type: list
        elements: str
      chdir:
        description: Directory to run the job in (C(~) expanded on the host). By default, where the module runs.
        type: path
      name:
        description:
          - The job's label in results, in C(-v) output and in the P(tplabs.async_tasks.time_saved#callback)
            report. Names must be unique within a task.
          - By default C(job<N>), N being the job's index in O(jobs) (from 0).
        type: str
  async:
    description:
      - "Limit of each job in seconds, as the task keyword C(async). A job still running after
        this long (counted from its own start, not from the launch) has its process group
        killed and its result replaced by C({\"msg\": \"Timeout exceeded\", \"failed\": true,
        \"child_pid\": PID}), as core's C(async_wrapper) does."
    type: float
    default: 3600
  max_parallel:
    description:
      - Most jobs of this task running at the same time on each host; the others wait in a
        queue, in order, and start as soon as a job ends. By default all start at once.
      - Unlike the C(throttle) keyword (how many hosts run a task at once, and with C(poll=0)
        only the launches), this limits the jobs themselves, on each host.
    type: int
  wait:
    description:
      - Wait for the jobs in this task too, as M(tplabs.async_tasks.async_wait) would. The
        launch itself waits on the host for up to O(window) seconds, so jobs shorter than that
        cost one round trip in all.
    type: bool
    default: false
  timeout:
    description: With O(wait=true), the longest time to wait, in seconds (by default, no limit).
    type: float
  window:
    description:
      - With O(wait=true), the longest time one round trip waits on the host (the launch's
        included) before the controller polls again.
    type: float
    default: 30
  cleanup:
    description: With O(wait=true), remove the job file of every job that ended, once read.
    type: bool
    default: true
  fail_on_job_failure:
    description: With O(wait=true), fail the task when any job failed.
    type: bool
    default: true
  on_timeout:
    description:
      - With O(wait=true), what to do with the jobs still running at O(timeout); see
        M(tplabs.async_tasks.async_wait).
    type: str
    choices: [fail, kill]
    default: fail
  _async_dir:
    description:
      - Internal use only, set by the action plugin (the shell option C(async_dir), as
        written); do not set it. C(~) is expanded on the host.
    type: path
    default: ~/.ansible_async
attributes:
  action:
    support: full
  async:
    support: none
    details: The task keyword is not used; the module's own O(async) sets each job's limit.
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Nothing starts; every job is reported C(skipped).
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
notes:
  - "The async directory is found as core's launch finds it: the shell option C(async_dir)
    (C(ANSIBLE_ASYNC_DIR), the C(ansible_async_dir) variable or C(ansible.cfg)), by default
    C(~/.ansible_async), with C(~) expanded on the host for the user the jobs run as."
  - "The job file format, shared with ansible-core (one JSON object per file, named by the job
    id, replaced atomically): while a job runs C({\"started\": true, \"finished\": false,
    \"ansible_job_id\": JID}); while it waits for a slot the same plus C(\"queued\": true)
    (async_status reads it as started and not finished, async_wait as C(queued)); at the end
    the job's result (no C(started) key), or the C(Timeout exceeded) record above."
  - "Running and queued records also hold C(_tplabs_process): the supervisor's C(pid),
    C(starttime) (field 22 of C(/proc/PID/stat)), C(pgid) and C(uid), and once the job runs
    C(job) with its own process group, so that a waiter ties the job to its processes with
    certainty. The job id's number after the dot is the supervisor's pid."
  - "C(no_log) on the task keeps the command lines and outputs out of every output of the
    collection (results, C(-v) lines, the time_saved report); the job files on the host hold
    the results, as core's do."
  - If the supervisor is killed or the host reboots, the jobs it ran are reported C(orphaned)
    by M(tplabs.async_tasks.async_wait). On Linux a job's process is killed with its
    supervisor (nobody would be left to record its end); processes the job started itself may
    outlive it.
  - A job killed from outside (not at its own limit) is recorded as command would report it
    (negative C(rc)) only while its file still holds its running record, so a C(killed)
    record that M(tplabs.async_tasks.async_wait) with C(on_timeout=kill) wrote, or a file its
    cleanup removed, stays as it is. A queued job whose record someone replaced is never
    started.
  - When the host runs out of descriptors or processes, jobs wait in the queue (fewer run at
    once than O(max_parallel)) instead of failing.
seealso:
  - module: tplabs.async_tasks.async_wait
  - module: ansible.builtin.async_status
  - module: ansible.builtin.command
author:
  - tplabs developers (@tplabs)
"""

EXAMPLES = r"""
- name: Start the jobs of each host in one round trip, at most 2 at once
  tplabs.async_tasks.async_launch:
    jobs:
      - cmd: sleep 5
      - shell: tar czf /tmp/logs.tgz /var/log
      - argv: [rsync, -a, /src/, /dst/]
        chdir: /tmp
        name: copy-src
    async: 600
    max_parallel: 2
  register: launched

- name: Wait for all of them (each job id also works with async_status)
  tplabs.async_tasks.async_wait:
    jobs: "{{ launched }}"
    timeout: 900

- name: Or launch and wait in one task
  tplabs.async_tasks.async_launch:
    jobs:
      - {name: fetch, cmd: sleep 2}
      - {name: build, shell: "sleep 3 && echo built"}
    wait: true
    timeout: 60
  register: done

- name: Show each job's output by name
  ansible.builtin.debug:
    msg: "{{ done.jobs | items2dict(key_name='name', value_name='stdout') }}"

- name: Read one of them as a core job
  ansible.builtin.async_status:
    jid: "{{ launched.jobs[0].jid }}"
  register: first
  until: first is finished
  retries: 30
  delay: 1
"""

RETURN = r"""
jobs:
  description:
    - One entry per job of O(jobs), in the same order.
    - With O(wait=true), each entry also has everything M(tplabs.async_tasks.async_wait)
      returns per job (C(finished), C(failed), C(rc), C(stdout), C(stderr), C(stdout_lines),
      C(stderr_lines), C(msg), C(result), C(elapsed), C(ended_ago)).
  returned: always
  type: list
  elements: dict
  contains:
    jid:
      description: The job id (none in check mode); use it with async_status or async_wait.
      returned: always
      type: str
      sample: j483920174625.31415
    name:
      description: The job's label, O(jobs[].name) or C(job<N>).
      returned: always
      type: str
      sample: copy-src
    state:
      description:
        - C(running) or C(queued) at launch; C(failed) when the job could not start;
          C(skipped) in check mode. With O(wait=true), the state the wait ended with.
      returned: always
      type: str
      sample: running
max_parallel:
  description: The per-host limit applied (the number of jobs when O(max_parallel) is not set).
  returned: always
  type: int
  sample: 2
async_dir:
  description: The async directory the job files are in, as expanded on the host.
  returned: unless check mode
  type: str
  sample: /root/.ansible_async
supervisor:
  description: The supervisor process on the host (C(pid), C(starttime), C(pgid), C(uid)).
  returned: unless check mode
  type: dict
counts:
  description: With O(wait=true), how many jobs in all, finished, failed, still pending, skipped.
  returned: when O(wait=true)
  type: dict
elapsed:
  description: With O(wait=true), seconds the task took (launch and wait).
  returned: when O(wait=true)
  type: float
polls:
  description: With O(wait=true), round trips to the host, the launch included (1 when every job ended within O(window)).
  returned: when O(wait=true)
  type: int
msg:
  description: A summary (how many jobs started and queued, or the wait's summary).
  returned: always
  type: str
"""

import os  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.tplabs.async_tasks.plugins.module_utils._job import (  # noqa: E402
    DEFAULT_ASYNC_DIR,
)
from ansible_collections.tplabs.async_tasks.plugins.module_utils._launch import (  # noqa: E402
    launch,
    view,
    wait_for_ends,
)
from ansible_collections.tplabs.async_tasks.plugins.module_utils._launch_jobs import (  # noqa: E402
    JobSpec,
    job_specs,
)

JOB_OPTIONS = {
    "cmd": {"type": "str"},
    "shell": {"type": "str"},
    "argv": {"type": "list", "elements": "str"},
    "chdir": {"type": "path"},
    "name": {"type": "str"},
}

ARGUMENT_SPEC = {
    "jobs": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": JOB_OPTIONS,
        "mutually_exclusive": [["cmd", "shell", "argv"]],
        "required_one_of": [["cmd", "shell", "argv"]],
    },
    "async": {"type": "float", "default": 3600},
    "max_parallel": {"type": "int"},
    "wait": {"type": "bool", "default": False},
    "timeout": {"type": "float"},
    "window": {"type": "float", "default": 30},
    "cleanup": {"type": "bool", "default": True},
    "fail_on_job_failure": {"type": "bool", "default": True},
    "on_timeout": {"type": "str", "choices": ["fail", "kill"], "default": "fail"},
    # Set by the action plugin: the shell option async_dir, unexpanded.
    "_async_dir": {"type": "path", "default": DEFAULT_ASYNC_DIR},
}


def specs_of(jobs: list[dict]) -> list[JobSpec]:
    """The action sends `cmd` already split into `argv`; split it here for direct callers."""
    normalised = []
    for index, job in enumerate(jobs):
        job = dict(job)
        job["name"] = job.get("name") or f"job{index}"
        if job.get("cmd") is not None:
            job["argv"] = shlex.split(job["cmd"])
        normalised.append(job)
    return job_specs(normalised)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if module.check_mode:  # the action answers check mode itself; never start anything
        module.exit_json(changed=False, skipped=True, msg="check mode: nothing started")
    limit = params["async"]
    if not limit or limit <= 0:
        module.fail_json(msg=f"async must be a number of seconds > 0, got {limit}")
    slots = params["max_parallel"] or 0
    if slots < 0:
        module.fail_json(msg=f"max_parallel must be >= 1, got {slots}")
    async_dir = params["_async_dir"]  # type path: "~" expanded here, on the host
    try:
        os.makedirs(async_dir, exist_ok=True)
    except OSError as error:
        module.fail_json(msg=f"could not create the async directory {async_dir}: {error}")
    specs = specs_of(params["jobs"])

    reader, first = launch(specs, async_dir, limit, slots)
    if not first.get("ok"):
        reader.close()
        module.fail_json(msg=f"async_launch: {first.get('msg', 'no answer from the supervisor')}")
    jobs = first["jobs"]
    result = {
        "changed": True,
        "jobs": jobs,
        "async_dir": async_dir,
        "supervisor": first["supervisor"],
        "max_parallel": slots or len(specs),
    }
    if params["wait"]:
        window = params["window"]
        if params["timeout"] is not None:
            window = min(window, params["timeout"])
        ends = wait_for_ends(reader, [job["jid"] for job in jobs], max(0.0, window))
        now = time.time()
        result["polled"] = [
            view(async_dir, job["jid"], ends, now, params["cleanup"]) for job in jobs
        ]
        result["now"] = now
    reader.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
