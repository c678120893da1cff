# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start all of a host's jobs in one round trip; optionally wait for them in the same task.

Every argument is checked here, on the controller, before anything runs on the host; the
host side (modules/async_launch.py, module_utils/_launch.py) trusts what it receives.
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.tplabs.async_tasks.plugins.module_utils._job import DEFAULT_ASYNC_DIR
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait import JobWaiter
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait_input import (
    WaitOptions,
    from_launch_job,
)

display = Display()

MODULE = "tplabs.async_tasks.async_launch"
COMMAND_KEYS = ("cmd", "shell", "argv")
JOB_KEYS = frozenset((*COMMAND_KEYS, "chdir", "name"))
DEFAULT_LIMIT = 3600.0


def type_name(value: Any) -> str:
    """The plain type a user wrote (not core's tagged subclasses)."""
    for kind in (bool, int, float, str, Mapping, Sequence):
        if isinstance(value, kind):
            return {Mapping: "dict", Sequence: "list"}.get(kind, kind.__name__)
    return "null" if value is None else type(value).__name__


def shown(value: Any, width: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else repr(str(value))
    return text if len(text) <= width else text[: width - 4] + "...'"


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def number(name: str, value: Any, minimum: float, strict: bool) -> float:
    """A finite number of seconds above (strict) or at least `minimum`, else a clear error."""
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    if isinstance(value, bool) or value is None:
        raise AnsibleActionFail(f"{name}: must be a number of seconds {bound}, got {shown(value)}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise AnsibleActionFail(
            f"{name}: must be a number of seconds {bound}, got {shown(value)} ({type_name(value)})"
        ) from None
    if (
        math.isnan(seconds)
        or math.isinf(seconds)
        or seconds < minimum
        or (strict and seconds == minimum)
    ):
        raise AnsibleActionFail(
            f"{name}: must be a finite number of seconds {bound}, got {shown(value)}"
        )
    return seconds


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise AnsibleActionFail(f"{name}: must be an integer >= 1, got {shown(value)}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 1:
        raise AnsibleActionFail(
            f"{name}: must be an integer >= 1, got {shown(value)} ({type_name(value)})"
        )
    return value


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AnsibleActionFail(
            f"{where}: must be a non-empty string, got {shown(value)} ({type_name(value)})"
        )
    return str(value)


def check_job(index: int, job: Any) -> dict:
    """One entry of `jobs`, normalised for the module: name, chdir, and argv or shell."""
    where = f"jobs[{index}]"
    if not isinstance(job, Mapping):
        raise AnsibleActionFail(
            f"{where}: must be a dict with one of cmd, shell or argv, got {shown(job)} ({type_name(job)})"
        )
    unknown = sorted(str(key) for key in job if key not in JOB_KEYS)
    if unknown:
        raise AnsibleActionFail(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(JOB_KEYS))})"
        )
    given = [key for key in COMMAND_KEYS if key in job]
    if not given:
        raise AnsibleActionFail(
            f"{where}: needs one of cmd, shell or argv (got: {', '.join(map(str, job)) or 'nothing'})"
        )
    if len(given) > 1:
        raise AnsibleActionFail(
            f"{where}: has {' and '.join(given)}: give exactly one of cmd, shell or argv"
        )
    out: dict[str, Any] = {}
    if "cmd" in job:
        line = _text(f"{where}.cmd", job["cmd"])
        try:
            out["argv"] = shlex.split(line)
        except ValueError as err:
            raise AnsibleActionFail(
                f"{where}.cmd: cannot be split into arguments ({err})"
            ) from None
    elif "shell" in job:
        out["shell"] = _text(f"{where}.shell", job["shell"])
    else:
        argv = job["argv"]
        if not is_list(argv) or not argv:
            raise AnsibleActionFail(
                f"{where}.argv: must be a non-empty list of strings, got {shown(argv)} ({type_name(argv)})"
            )
        for position, arg in enumerate(argv):
            if not isinstance(arg, str):
                raise AnsibleActionFail(
                    f"{where}.argv[{position}]: must be a string, got {shown(arg)} ({type_name(arg)})"
                )
        out["argv"] = [str(arg) for arg in argv]
    if not out.get("argv", ["-"])[0].strip():
        raise AnsibleActionFail(f"{where}.{given[0]}: the command is empty")
    if job.get("chdir") is not None:
        out["chdir"] = _text(f"{where}.chdir", job["chdir"])
    out["name"] = (
        _text(f"{where}.name", job["name"]) if job.get("name") is not None else f"job{index}"
    )
    return out


def check_jobs(value: Any) -> list[dict]:
    if not is_list(value):
        raise AnsibleActionFail(
            f"jobs: must be a list of jobs (dicts with cmd, shell or argv), got {shown(value)} ({type_name(value)})"
        )
    if not value:
        raise AnsibleActionFail("jobs: the list is empty: nothing to launch")
    jobs = [check_job(index, job) for index, job in enumerate(value)]
    first: dict[str, int] = {}
    for index, job in enumerate(jobs):
        if job["name"] in first:
            raise AnsibleActionFail(
                f"jobs[{index}].name: duplicate name {shown(job['name'])} "
                f"(jobs[{first[job['name']]}] has it too): names must be unique"
            )
        first[job["name"]] = index
    return jobs


@dataclass
class Launch:
    """The task's arguments once checked."""

    jobs: list[dict]
    limit: float
    max_parallel: int | None
    wait: bool
    timeout: float | None
    window: float
    cleanup: bool
    fail_on_job_failure: bool
    on_timeout: str

    def module_args(self, async_dir: str) -> dict:
        args: dict[str, Any] = {
            "jobs": self.jobs,
            "async": self.limit,
            "wait": self.wait,
            "window": self.window,
            "cleanup": self.cleanup,
            "_async_dir": async_dir,
        }
        if self.max_parallel is not None:
            args["max_parallel"] = self.max_parallel
        if self.timeout is not None:
            args["timeout"] = self.timeout
        return args


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    ARGUMENT_SPEC: ClassVar[dict[str, dict]] = {
        "jobs": {"type": "raw", "required": True},
        "async": {"type": "raw", "default": DEFAULT_LIMIT},
        "max_parallel": {"type": "raw"},
        "wait": {"type": "bool", "default": False},
        "timeout": {"type": "raw"},
        "window": {"type": "raw", "default": 30.0},
        "cleanup": {"type": "bool", "default": True},
        "fail_on_job_failure": {"type": "bool", "default": True},
        "on_timeout": {"type": "str", "choices": ["fail", "kill"], "default": "fail"},
    }

    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def _check_args(self) -> Launch:
        _unused, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        jobs = check_jobs(args["jobs"])
        limit = number("async", args["async"], 0, strict=True)
        slots = (
            None
            if args["max_parallel"] is None
            else positive_int("max_parallel", args["max_parallel"])
        )
        timeout = (
            None if args["timeout"] is None else number("timeout", args["timeout"], 0, strict=False)
        )
        if timeout is not None and not args["wait"]:
            raise AnsibleActionFail("timeout: only with wait: true (async_wait takes it otherwise)")
        window = number("window", args["window"], 0, strict=False)
        return Launch(
            jobs,
            limit,
            slots,
            args["wait"],
            timeout,
            window,
            args["cleanup"],
            args["fail_on_job_failure"],
            args["on_timeout"],
        )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        launch = self._check_args()
        host = task_vars.get("inventory_hostname")
        slots = launch.max_parallel or len(launch.jobs)
        if self._task.check_mode:
            result.update(
                changed=False,
                skipped=True,
                skip_reason="check mode: nothing started",
                msg=f"check mode: {len(launch.jobs)} job(s) not started",
                max_parallel=slots,
                jobs=[
                    {"jid": None, "name": job["name"], "state": "skipped"} for job in launch.jobs
                ],
            )
            return result

        start = self.clock()
        # As core's launch: the shell option, unexpanded; the module expands `~` on the host.
        async_dir = self.get_shell_option("async_dir", default=DEFAULT_ASYNC_DIR)
        reply = self._execute_module(
            module_name=MODULE, module_args=launch.module_args(async_dir), task_vars=task_vars
        )
        if reply.get("failed") or not isinstance(reply.get("jobs"), list):
            result.update(failed=True, changed=False, msg=self._launch_failure(reply))
            return result
        jobs = [
            {"jid": job.get("jid"), "name": job.get("name"), "state": job.get("state")}
            for job in reply["jobs"]
        ]
        result.update(
            changed=True,
            jobs=jobs,
            max_parallel=reply.get("max_parallel", slots),
            async_dir=reply.get("async_dir"),
            supervisor=reply.get("supervisor"),
        )
        self._show_launch(jobs, slots, host)
        if not launch.wait:
            result["msg"] = self._summary(jobs, slots)
            return result
        return self._wait(result, reply, launch, start, task_vars)

    @staticmethod
    def _launch_failure(reply: dict) -> str:
        msg = str(reply.get("msg") or "no jobs in the reply").strip()
        if "module_stdout" in reply or "module_stderr" in reply:
            # No JSON came back: the host (or the connection) went away during the launch.
            stderr = str(reply.get("module_stderr") or "").strip()[-300:]
            msg = (
                "the launch gave no result (the host or its connection may be gone; whether "
                f"the jobs started is unknown): {msg}" + (f"; stderr: {stderr}" if stderr else "")
            )
        return msg

    def _show_launch(self, jobs: list[dict], slots: int, host: str | None) -> None:
        if self._task.no_log:
            display.v(f"async_launch: {len(jobs)} job(s) launched", host=host)
            return
        listed = ", ".join(f"{job['name']} {job['jid']} ({job['state']})" for job in jobs)
        display.v(f"async_launch: {self._summary(jobs, slots)}: {listed}", host=host)

    @staticmethod
    def _summary(jobs: list[dict], slots: int) -> str:
        states = [job["state"] for job in jobs]
        text = (
            f"{len(jobs)} job(s) launched, {states.count('running')} running, "
            f"{states.count('queued')} queued (max_parallel {slots})"
        )
        if states.count("failed"):
            text += f", {states.count('failed')} could not start"
        return text

    def _wait(
        self, result: dict, reply: dict, launch: Launch, start: float, task_vars: dict
    ) -> dict:
        """wait: true, with what the launch already saw on the host, then async_wait's engine."""
        options = WaitOptions(
            timeout=launch.timeout,
            window=launch.window,
            cleanup=launch.cleanup,
            fail_on_job_failure=launch.fail_on_job_failure,
            on_timeout=launch.on_timeout,
        )
        entries = [
            from_launch_job(job, f"jobs[{index}]") for index, job in enumerate(result["jobs"])
        ]
        waiter = JobWaiter(
            self,
            task_vars,
            options,
            entries,
            async_dir=reply.get("async_dir"),
            clock=self.clock,
            sleep=self.sleep,
            started_at=start,  # timeout and elapsed count from the launch
        )
        waiter.polls = 1  # the launch itself waited on the host
        waiter.remember(
            {
                "jobs": reply.get("polled") or [],
                "now": reply.get("now"),
                "async_dir": reply.get("async_dir"),
            }
        )
        report = waiter.run()
        result.update(report)
        result["changed"] = True  # the jobs ran, whatever the wait says
        result["elapsed"] = round(self.clock() - start, 3)
        return result
