# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wait engine: poll many async jobs of one host until they end, kill the rest, report.

Private to the collection (controller side only). Used by the async_wait action and by the
async_launch action when it waits (``wait: true``); works from any ``ActionBase`` subclass,
which it is given (nothing global):

    from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait import wait_for_jobs

    report = wait_for_jobs(self, jobs, task_vars, WaitOptions(timeout=60.0))
    result.update(report)

One round trip runs the ``async_job_poll`` module on the host for every unfinished job at once;
the module reads the job files there for up to ``window`` seconds and returns as soon as no
job runs. The steps, as core's reboot action separates them: ``wait_until_done`` (the poll
loop against a monotonic deadline, riding out connection faults), ``kill_unfinished``
(``on_timeout: kill``) and ``summarise`` (the task result).

Connection faults: a round trip that raises ``AnsibleConnectionFailure`` or ``AnsibleError``
(a file transfer that fails raises the latter), or whose module fails, is retried after a
pause (1, 2, 4, then 5 s), the connection reset where the plugin can, until the wait's
``timeout`` (without one: until the unfinished jobs' own async limits have passed, when the
host reported them as ``async_limit``) or ``max_connection_failures`` failures in a row.
Each retry is shown at -vvv.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait_input import (
    DEFAULT_MAX_CONNECTION_FAILURES,
    JobEntry,
    WaitOptions,
    collect_jobs,
    ended_state,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait_messages import (
    failure_messages,
    success_message,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait_report import (
    counts,
    job_messages,
    job_report,
)

display = Display()

POLL_MODULE = "tplabs.async_tasks.async_job_poll"
RETRY_PAUSE = 1.0  # first pause after a failed round trip; doubled each time ...
MAX_RETRY_PAUSE = 5.0  # ... up to this
WRAPPER_LIMIT_SLACK = 5.0  # async_wrapper checks a job's limit every 5 s


@dataclass
class Fault:
    """One failed round trip."""

    kind: str  # connection | transfer (both: the host is unreachable) | error | module
    message: str
    at: float  # controller monotonic time it was seen

    @property
    def unreachable(self) -> bool:
        return self.kind in ("connection", "transfer")


TRANSFER_FRAMES = frozenset({"put_file", "fetch_file", "_transfer_file", "_transfer_data"})


def raised_in_transfer(err: BaseException) -> bool:
    """Whether an error came from a file transfer (as the local and ssh put_file raise them)."""
    frame = err.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name in TRANSFER_FRAMES:
            return True
        frame = frame.tb_next
    return False


def _fault_of(reply: Any) -> str:
    if not isinstance(reply, Mapping):
        return f"no reply (got a {type(reply).__name__})"
    text = reply.get("msg") or reply.get("module_stderr") or "the reply holds no jobs"
    return str(text).strip()


class JobWaiter:
    """One wait for the jobs of one host; ``run`` does the three steps and returns the report."""

    def __init__(
        self,
        action: Any,
        task_vars: Mapping | None,
        options: WaitOptions,
        entries: list[JobEntry],
        *,
        async_dir: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        started_at: float | None = None,
    ) -> None:
        """``started_at``: when the wait began on ``clock`` (default: when wait_until_done runs);
        ``timeout`` and ``elapsed`` count from it (async_launch passes its launch time)."""
        self.action = action
        self.task_vars = dict(task_vars or {})
        self.options = options
        self.host = self.task_vars.get("inventory_hostname")
        # Passed as written (maybe with "~"): the module expands it on the host, for the user
        # the job ran as, exactly as async_wrapper did when it wrote the job file.
        self.async_dir = async_dir or action.get_shell_option(
            "async_dir", default=_job.DEFAULT_ASYNC_DIR
        )
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.check_mode = bool(getattr(action._task, "check_mode", False))
        self.entries = list(entries)
        self.views: dict[str, dict] = {}  # jid -> the latest view from the host
        self.host_async_dir: str | None = None
        self.polls = 0
        self.faults: list[Fault] = []  # failed round trips in a row
        self.started_at = started_at
        self.started = self.clock() if started_at is None else started_at
        self.deadline: float | None = None
        self.timed_out = False
        self.kill_error = ""
        self.kill_targets: set[str] = set()
        self.stale_tmpdirs: list[str] = []

    # -- the three steps ---------------------------------------------------------------

    def run(self) -> dict:
        self.wait_until_done()
        self.kill_unfinished()
        return self.summarise()

    def wait_until_done(self) -> None:
        """Poll until no job runs, the deadline, a fail_fast failure, or the host is lost."""
        options = self.options
        self.started = self.clock() if self.started_at is None else self.started_at
        self.deadline = None if options.timeout is None else self.started + options.timeout
        while True:
            jids = self.pending_jids()
            if not jids:
                return
            window = options.window if self.deadline is None else min(options.window, self.left())
            reply = self.round_trip(
                jids,
                window=window,
                interval=options.poll_interval,
                fail_fast=options.fail_fast,
                cleanup=options.cleanup,
            )
            if reply is None:
                if self.give_up():
                    return
                self.pause_before_retry()
                continue
            self.remember(reply)
            self.show_progress()
            if options.fail_fast and self.any_failed():
                return
            if self.deadline is not None and self.clock() >= self.deadline:
                self.timed_out = bool(self.pending_jids())
                return
            if window == 0 and self.pending_jids():
                # No long poll on the host: pause here, or the round trips would never stop;
                # never past the deadline (one last poll then sees how the jobs stand).
                pause = options.poll_interval
                if self.deadline is not None:
                    pause = min(pause, max(0.0, self.left()))
                self.sleep(pause)

    def kill_unfinished(self) -> None:
        """With on_timeout=kill, stop what still runs after a timeout (one more round trip)."""
        still = self.pending_jids()
        if not (self.timed_out and still and self.options.on_timeout == "kill"):
            return
        if self.check_mode:
            return
        self.kill_targets = set(still)
        reply, fault = self.call(still, mode="kill", cleanup=self.options.cleanup)
        if fault is not None:
            self.kill_error = f"could not kill the unfinished jobs: {fault.message}"
            return
        self.remember(reply)

    def summarise(self) -> dict:
        """The task result: every job in input order, counts, and one message."""
        returned_at = self.clock()
        elapsed = returned_at - self.started
        jobs = [job_report(e, self.views.get(e.jid or "", {}), returned_at) for e in self.entries]
        tally = counts(jobs)
        result: dict[str, Any] = {
            "changed": False,
            "jobs": jobs,
            "counts": tally,
            "finished": tally["pending"] == 0,
            "pending": tally["pending"],
            "elapsed": round(elapsed, 3),
            "polls": self.polls,
        }
        if self.host_async_dir:
            result["async_dir"] = self.host_async_dir
        warnings, deprecations = job_messages(jobs)
        if warnings:
            result["warnings"] = warnings
        if deprecations:
            result["deprecations"] = deprecations
        if self.faults:
            # The host is gone: removing the remote tmp dir after the task would raise again
            # and replace this result (which names the jobs) with a bare connection error.
            self.action._connection._shell.tmpdir = None
            if self.faults[-1].unreachable:
                result["unreachable"] = True
        problems = failure_messages(self, jobs, tally, elapsed)
        failed_jobs = any(j["failed"] for j in jobs)
        result["failed"] = bool(
            self.faults
            or self.timed_out
            or self.kill_error
            or (failed_jobs and self.options.fail_on_job_failure)
        )
        result["msg"] = (
            "; ".join(problems) if problems else success_message(tally, elapsed, self.polls)
        )
        if not problems and tally["total"] and tally["skipped"] == tally["total"]:
            result["skipped"] = True
            result["skip_reason"] = result["msg"]
        return result

    # -- round trips -------------------------------------------------------------------

    def call(self, jids: list[str], **args: Any) -> tuple[dict, Fault | None]:
        """One run of the poll module; a fault is returned, never raised."""
        self.polls += 1
        try:
            reply = self.action._execute_module(
                module_name=POLL_MODULE,
                module_args={"jids": jids, "async_dir": self.async_dir, **args},
                task_vars=self.task_vars,
            )
        except AnsibleConnectionFailure as err:
            return {}, Fault("connection", f"connection failure: {err}", self.clock())
        except AnsibleError as err:  # a failed file transfer raises it (local, ssh put_file)
            kind = "transfer" if raised_in_transfer(err) else "error"
            return {}, Fault(kind, f"could not run the poll module: {err}", self.clock())
        if (
            not isinstance(reply, Mapping)
            or reply.get("failed")
            or not isinstance(reply.get("jobs"), list)
        ):
            return {}, Fault("module", _fault_of(reply), self.clock())
        return dict(reply), None

    def round_trip(self, jids: list[str], **args: Any) -> dict | None:
        """A poll; on a fault, it is counted (in a row) and None is returned."""
        reply, fault = self.call(jids, **args)
        if fault is not None:
            self.faults.append(fault)
            if fault.kind == "transfer":
                self.forget_tmpdir()
            return None
        self.faults.clear()
        self.remove_stale_tmpdirs()
        return reply

    def forget_tmpdir(self) -> None:
        """After a failed transfer, make the next round trip use a new remote temp dir.

        The one in use may be gone (a host rebooted with its temp dirs on tmpfs): every
        transfer into it would fail until the wait gives up.
        """
        shell = self.action._connection._shell
        if shell.tmpdir:
            self.stale_tmpdirs.append(shell.tmpdir)
            shell.tmpdir = None

    def remove_stale_tmpdirs(self) -> None:
        """Best effort, once the host answers again: the temp dirs left by failed transfers."""
        while self.stale_tmpdirs:
            path = self.stale_tmpdirs.pop()
            try:
                command = self.action._connection._shell.remove(path, recurse=True)
                self.action._low_level_execute_command(command, sudoable=False)
            except Exception as err:  # a leftover temp dir must not fail the wait
                display.vvv(f"async_wait: could not remove {path}: {err}", host=self.host)

    def give_up(self) -> bool:
        """After a fault: stop after max_connection_failures in a row, or at the deadline."""
        limit = self.options.max_connection_failures
        if limit and len(self.faults) >= limit:
            return True
        deadline = self.fault_deadline()
        if deadline is not None:
            return self.clock() >= deadline
        # No count (0) and no deadline known: the default count, rather than forever.
        return not limit and len(self.faults) >= DEFAULT_MAX_CONNECTION_FAILURES

    def fault_deadline(self) -> float | None:
        """The wait's timeout, else when the unfinished jobs' own async limits have passed."""
        return self.deadline if self.deadline is not None else self.limits_deadline()

    def limits_deadline(self) -> float | None:
        """When every unfinished job has passed its own async limit, on the controller's clock.

        Known only when the host reported each job's ``async_limit`` and ``started_at``
        (host clock, mapped to the controller's through the reply's ``now``).
        """
        ends = []
        for jid in self.pending_jids():
            view = self.views.get(jid, {})
            try:
                on_host = float(view["started_at"]) + float(view["async_limit"])
                ends.append(float(view["_received"]) + on_host - float(view["_host_now"]))
            except (KeyError, TypeError, ValueError):
                return None
        return max(ends) + WRAPPER_LIMIT_SLACK if ends else None

    def pause_before_retry(self) -> None:
        failures = len(self.faults)
        pause = min(RETRY_PAUSE * 2 ** (failures - 1), MAX_RETRY_PAUSE)
        deadline = self.fault_deadline()
        if deadline is not None:
            pause = min(pause, max(0.0, deadline - self.clock()))
        limit = self.options.max_connection_failures or "none: the deadline"
        display.vvv(
            f"async_wait: round trip {self.polls} failed ({self.faults[-1].message}); "
            f"{failures} failure(s) in a row (limit {limit}) over {self.fault_span():.1f}s, "
            f"retrying in {pause:.1f}s",
            host=self.host,
        )
        self.sleep(pause)
        self.reset_connection()

    def reset_connection(self) -> None:
        """Reset before a retry, where the connection plugin can (the base one only warns)."""
        connection = self.action._connection
        if type(connection).reset is ConnectionBase.reset:
            return
        try:
            connection.reset()
        except Exception as err:  # a reset that fails is retried by the next poll
            display.vvv(f"async_wait: connection reset failed: {err}", host=self.host)

    # -- what the host said --------------------------------------------------------------

    def remember(self, reply: Mapping) -> None:
        """Keep the latest view of each job, its first start time, and when the reply came."""
        received = self.clock()
        host_now = reply.get("now")
        if isinstance(reply.get("async_dir"), str):
            self.host_async_dir = reply["async_dir"]
        for job in reply["jobs"]:
            jid = job.get("jid") if isinstance(job, Mapping) else None
            if not isinstance(jid, str):
                continue
            first_start = self.views.get(jid, {}).get("started_at")
            view = dict(job, _received=received, _host_now=host_now)
            if first_start is not None and view.get("started_at") is None:
                view["started_at"] = first_start
            if view.get("state") == _job.FINISHED and isinstance(view.get("result"), Mapping):
                view["state"] = ended_state(view["result"])  # a check-mode skip: skipped
            self.views[jid] = view
            if self.host_async_dir is None and isinstance(job.get("path"), str):
                self.host_async_dir = posixpath.dirname(job["path"])

    def state_of(self, entry: JobEntry) -> str:
        if entry.state:
            return entry.state
        return str(self.views.get(entry.jid or "", {}).get("state") or _job.RUNNING)

    def pending_jids(self) -> list[str]:
        """Job ids still to read, once each, in input order."""
        jids = [e.jid for e in self.entries if e.pending and self.state_of(e) in _job.ACTIVE_STATES]
        return list(dict.fromkeys(j for j in jids if j))

    def any_failed(self) -> bool:
        return any(self.state_of(e) in _job.FAILED_STATES for e in self.entries)

    def left(self) -> float:
        return 0.0 if self.deadline is None else max(0.0, self.deadline - self.clock())

    def fault_span(self) -> float:
        return self.faults[-1].at - self.faults[0].at if self.faults else 0.0

    def show_progress(self) -> None:
        states = [self.state_of(e) for e in self.entries]
        pending = sum(1 for s in states if s in _job.ACTIVE_STATES)
        display.v(
            f"async_wait: {len(states) - pending}/{len(states)} jobs done, {pending} pending, "
            f"{self.clock() - self.started:.1f}s elapsed, {self.polls} poll(s)",
            host=self.host,
        )


def wait_for_jobs(
    action: Any,
    jobs: Any,
    task_vars: Mapping | None,
    options: WaitOptions | None = None,
    *,
    async_dir: str | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    started_at: float | None = None,
) -> dict:
    """Wait for ``jobs`` (what async_wait's ``jobs`` accepts, or ``collect_jobs`` entries).

    Returns the wait's report (contract: async_wait's result without ActionBase's own keys).
    """
    entries = jobs if _are_entries(jobs) else collect_jobs(jobs)
    waiter = JobWaiter(
        action,
        task_vars,
        options or WaitOptions(),
        entries,
        async_dir=async_dir,
        clock=clock,
        sleep=sleep,
        started_at=started_at,
    )
    return waiter.run()


def _are_entries(jobs: Any) -> bool:
    return isinstance(jobs, list) and bool(jobs) and all(isinstance(j, JobEntry) for j in jobs)
