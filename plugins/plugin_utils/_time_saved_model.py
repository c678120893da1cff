# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the time_saved callback records: plays, tasks, host runs and async jobs.

Private to the collection (controller side only). The records hold monotonic times taken
on the controller; ``_time_saved_recorder`` fills them from the callback's events and
``_time_saved_report`` turns them into the report every renderer reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job

# -- actions the callback reads results of ----------------------------------------------------

ASYNC_STATUS_ACTIONS = frozenset(
    {"async_status", "ansible.builtin.async_status", "ansible.legacy.async_status"}
)
ASYNC_WAIT_ACTIONS = frozenset(
    {"async_wait", "tplabs.async_tasks.async_wait", "ansible.legacy.async_wait"}
)
ASYNC_LAUNCH_ACTIONS = frozenset(
    {"async_launch", "tplabs.async_tasks.async_launch", "ansible.legacy.async_launch"}
)

# -- job states ---------------------------------------------------------------------------------

# Every state of the job model is reported as itself. Two more say what the controller does
# not know, rather than guess: they are the callback's, not the job's.
NOT_WAITED = "not_waited"
CENSORED = "censored"
REPORT_STATES: dict[str, str] = {
    **{name: state.meaning for name, state in _job.STATES.items()},
    NOT_WAITED: "never waited for, and its end could not be read: only its launch is counted",
    CENSORED: "a no_log task hid whether it ended: only its launch is counted",
}

# Host-run statuses. ``ignored`` and ``rescued`` are failures Ansible does not count as such
# (ignore_errors, a block's rescue): the host carries on, so their time counts as work.
RUN_STATUSES = ("ok", "changed", "failed", "ignored", "rescued", "skipped", "unreachable")
LOST_STATUSES = frozenset({"failed", "unreachable", "running"})

# Where a job's end time comes from, best first (see docs/time_saved.md for the bounds).
END_FROM_WAIT = "async_wait"  # async_wait's ended_ago: host clock, no skew
END_FROM_MODULE = "module"  # the module's own start/end stamps (command, shell)
END_FROM_JOB_FILE = "job_file"  # the job file's modification time (local hosts only)
END_FROM_POLL = "poll"  # the worker's own poll (poll > 0): within one poll interval
END_FROM_SEEN = "seen"  # when a wait saw it ended: an upper bound only


def item_label(data: dict[str, Any]) -> str | None:
    """The loop item of a result, as the default callback shows it (200 characters at most)."""
    label = data.get("_ansible_item_label", data.get(data.get("ansible_loop_var") or "item"))
    if label is None:
        return None
    text = label if isinstance(label, str) else json.dumps(label, default=str, sort_keys=True)
    return text[:200]


@dataclass
class TaskInfo:
    """What the recorder needs from a task, read once from ansible's Task by the callback."""

    uuid: str
    name: str
    action: str
    no_log: bool = False
    async_val: int = 0
    poll: int = 0
    rescuable: bool = False  # inside the block section of a block that has a rescue
    # ``async`` given as a template the callback cannot read (a looped task's fields stay
    # raw): whether it launched jobs, and with what limit, only its result can tell
    async_templated: bool = False
    throttle: int = 0


@dataclass(eq=False)
class PlayRecord:
    key: str
    name: str
    opened: float
    start: float | None = None
    end: float | None = None
    batches: int = 1
    tasks: list[TaskRecord] = field(default_factory=list)
    by_uuid: dict[str, TaskRecord] = field(default_factory=dict)


@dataclass(eq=False)
class TaskRecord:
    uuid: str
    name: str
    action: str
    play: PlayRecord
    no_log: bool = False
    kind: str = "task"  # task | launch | poll | wait
    async_val: int = 0
    runs: list[HostRun] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)


@dataclass(eq=False)
class HostRun:
    task: TaskRecord
    host: str
    start: float
    end: float | None = None
    status: str = "running"
    item_ends: list[float] | None = None
    waited: list[Job] = field(default_factory=list)


@dataclass(eq=False)
class Job:
    """One async job, from its launch to the best estimate of its real run."""

    host: str
    jid: str | None
    task: TaskRecord
    launched: float
    launch_end: float
    mode: str = "background"  # background (poll 0) | poll (poll > 0) | async_launch
    state: str = _job.RUNNING
    item: str | None = None
    name: str | None = None
    hidden: bool = False  # no_log: no job id, item, name or module output in any output
    limit: float | None = None  # its async limit in seconds, when known
    results_file: str | None = None
    seen: float | None = None  # when a wait (or the poll) saw it ended
    last_running: float | None = None  # the last time something saw it running
    start: float | None = None  # its real start, when known
    end: float | None = None  # its real end, when known
    end_source: str | None = None
    own: float | None = None  # how long it ran, as the module or async_wait measured it
    reported: dict[str, str] | None = None
    waited_by: str | None = None
    polls: int = 0
    msg: str = ""

    @property
    def ended(self) -> bool:
        return self.state in _job.ENDED_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == _job.FINISHED

    @property
    def launch_length(self) -> float:
        return max(0.0, self.launch_end - self.launched)

    def run_span(self) -> tuple[float, float] | None:
        """When the job really ran, as far as measured; None unless it ended with success.

        A job that did not end with success adds nothing beyond its launch: failures are
        never turned into time saved. Without a measured start, the job counts from the end
        of its launch (the part inside the launch counts with the launch): with an end only
        bounded by the wait that saw it, that is an upper bound.
        """
        if not self.succeeded:
            return None
        end = self.end if self.end is not None else self.seen
        if end is None:
            return None
        if self.seen is not None:
            end = min(end, self.seen)
        if self.start is not None:
            start = self.start
        elif self.own is not None:
            start = end - self.own
        else:
            start = self.launch_end
        start = min(max(start, self.launched), end)
        return start, end
