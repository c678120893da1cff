# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a wait is asked to do: the jobs (from registered results) and the options, checked.

Private to the collection (controller side only): used by the async_wait action and by the
async_launch action when it waits (``wait: true``). Everything here runs before anything is
sent to a host, and every bad input is an ``AnsibleActionFail`` that names the option or the
place in ``jobs`` and the value, never a traceback.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job

# The options of a wait, as the async_wait action declares them (async_launch reuses them).
ARGUMENT_SPEC: dict[str, dict] = {
    "jobs": {"type": "raw", "required": True, "aliases": ["jid"]},
    "timeout": {"type": "raw"},
    "window": {"type": "raw"},
    "poll_interval": {"type": "raw"},
    "cleanup": {"type": "bool", "default": True},
    "fail_on_job_failure": {"type": "bool", "default": True},
    "fail_fast": {"type": "bool", "default": False},
    "on_timeout": {"type": "str", "choices": ["fail", "kill"], "default": "fail"},
    "max_connection_failures": {"type": "raw"},
}
DEFAULT_WINDOW = 5.0
DEFAULT_POLL_INTERVAL = 0.1
DEFAULT_MAX_CONNECTION_FAILURES = 6


def type_name(value: Any) -> str:
    """The plain type a user wrote (not core's tagged subclasses)."""
    for kind in (bool, int, float, str, Mapping, Sequence):
        if isinstance(value, kind):
            return {Mapping: "dict", Sequence: "list"}.get(kind, kind.__name__)
    return type(value).__name__


def label(value: Any, width: int = 60) -> str:
    """A value short enough for a message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def seconds(name: str, value: Any, default: float | None) -> float | None:
    """A finite number of seconds >= 0, or a clear error naming the option."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise AnsibleActionFail(f"{name} must be a number of seconds, got the boolean {value}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnsibleActionFail(
            f"{name} must be a number of seconds, got {value!r} ({type_name(value)})"
        ) from None
    if math.isnan(number) or number < 0 or math.isinf(number):
        raise AnsibleActionFail(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return number


def count(name: str, value: Any, default: int) -> int:
    """A whole number >= 0, or a clear error naming the option."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AnsibleActionFail(
            f"{name} must be a whole number >= 0, got {value!r} ({type_name(value)})"
        )
    try:
        number = float(value)
    except ValueError:
        raise AnsibleActionFail(f"{name} must be a whole number >= 0, got {value!r}") from None
    if math.isnan(number) or math.isinf(number) or number < 0 or number != int(number):
        raise AnsibleActionFail(f"{name} must be a whole number >= 0, got {value!r}")
    return int(number)


@dataclasses.dataclass(frozen=True)
class WaitOptions:
    """How to wait; ``timeout`` None means no overall limit (each job has its own)."""

    timeout: float | None = None
    window: float = DEFAULT_WINDOW
    poll_interval: float = DEFAULT_POLL_INTERVAL
    cleanup: bool = True
    fail_on_job_failure: bool = True
    fail_fast: bool = False
    on_timeout: str = "fail"
    max_connection_failures: int = DEFAULT_MAX_CONNECTION_FAILURES

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> WaitOptions:
        """Options from validated task arguments (ARGUMENT_SPEC); raw numbers are checked here."""
        interval = seconds("poll_interval", args.get("poll_interval"), DEFAULT_POLL_INTERVAL)
        if interval == 0:
            raise AnsibleActionFail("poll_interval must be > 0, got 0")
        options = cls(
            timeout=seconds("timeout", args.get("timeout"), None),
            window=seconds("window", args.get("window"), DEFAULT_WINDOW),
            poll_interval=interval,
            cleanup=bool(args.get("cleanup", True)),
            fail_on_job_failure=bool(args.get("fail_on_job_failure", True)),
            fail_fast=bool(args.get("fail_fast", False)),
            on_timeout=str(args.get("on_timeout") or "fail"),
            max_connection_failures=count(
                "max_connection_failures",
                args.get("max_connection_failures"),
                DEFAULT_MAX_CONNECTION_FAILURES,
            ),
        )
        if options.on_timeout not in ("fail", "kill"):
            raise AnsibleActionFail(f"on_timeout must be fail or kill, got {options.on_timeout!r}")
        return options


_NO_ITEM = object()


@dataclasses.dataclass
class JobEntry:
    """One job to report, in input order. ``state`` is set when nothing is left to poll."""

    where: str
    jid: str | None
    state: str | None = None
    msg: str = ""
    result: dict | None = None
    item: Any = _NO_ITEM
    name: str | None = None

    @property
    def has_item(self) -> bool:
        return self.item is not _NO_ITEM

    @property
    def pending(self) -> bool:
        """Still to be read on the host."""
        return self.state is None and self.jid is not None


def check_jid(jid: Any, where: str) -> str:
    """A job id in core's format, or an error naming where it was found."""
    if not _job.is_jid(jid):
        shown = repr(label(jid)) if isinstance(jid, str) else label(jid)
        raise AnsibleActionFail(
            f"{where}: {shown} is not an async job id (expected {_job.JID_FORMAT}, the "
            "ansible_job_id of a task run with async: N and poll: 0); nothing was read on the host"
        )
    return str(jid)


def _skip_reason(result: Mapping) -> str:
    return str(
        result.get("skip_reason")
        or result.get("skipped_reason")
        or (f"when: {result['false_condition']}" if result.get("false_condition") else "")
        or result.get("msg")
        or "skipped"
    )


def ended_state(record: Mapping) -> str:
    """The state of a job record that ended; a check-mode skip is ``skipped`` (as core says)."""
    state = _job.record_state(dict(record))
    if state == _job.FINISHED and _job.flag(record.get("skipped")):
        return _job.SKIPPED
    return state


def from_result(result: Mapping, where: str) -> JobEntry:
    """One entry from one registered task result (a launch, or one item of a loop)."""
    entry = JobEntry(where=where, jid=None)
    if "ansible_loop_var" in result or "item" in result:
        entry.item = result.get(result.get("ansible_loop_var", "item"))
    jid = result.get("ansible_job_id")
    if jid is None and result.get("skipped"):
        entry.state = _job.SKIPPED
        entry.msg = f"skipped at launch: {_skip_reason(result)}"
        return entry
    if jid is None:
        gave_up = result.get("async_result")
        if isinstance(gave_up, Mapping) and gave_up.get("ansible_job_id") is not None:
            # core's poll: N gave up at the async limit; the job may still be on the host.
            entry.jid = check_jid(gave_up["ansible_job_id"], f"{where}.async_result")
            return entry
        if result.get("failed") or result.get("unreachable"):
            entry.state = _job.LAUNCH_FAILED
            entry.msg = f"the launch failed, nothing to wait for: {result.get('msg', 'failed')}"
            entry.result = dict(result)
            return entry
        keys = ", ".join(sorted(str(k) for k in result)[:8])
        raise AnsibleActionFail(
            f"{where} is not an async launch result (no ansible_job_id; keys: {keys}): "
            "register a task run with async: N and poll: 0"
        )
    entry.jid = check_jid(jid, where)
    if _job.flag(result.get("finished")):
        # A `poll: N` result: the job already ended and core already removed its file.
        entry.result = dict(result)
        entry.state = ended_state(result)
        if entry.state == _job.SKIPPED:
            entry.msg = f"skipped: {_skip_reason(result)}"
    return entry


def from_launch_job(job: Mapping, where: str) -> JobEntry:
    """One job of an async_launch result (``jobs[n]``: jid, name, state, maybe the wait's fields)."""
    entry = JobEntry(where=where, jid=None, name=job.get("name"))
    state = job.get("state")
    if state == _job.SKIPPED:
        entry.state = state
        entry.msg = str(job.get("msg") or "skipped at launch")
        return entry
    if state == _job.LAUNCH_FAILED or job.get("jid") is None:
        entry.state = _job.LAUNCH_FAILED
        entry.msg = f"the launch failed, nothing to wait for: {job.get('msg', 'failed')}"
        return entry
    entry.jid = check_jid(job.get("jid"), f"{where}.jid")
    if state in _job.ENDED_STATES and isinstance(job.get("result"), Mapping):
        entry.state = state
        entry.result = dict(job["result"])
        entry.msg = str(job.get("msg") or "")
    return entry


def _loop_results(thing: Mapping, where: str) -> list[JobEntry]:
    results = thing["results"]
    entries = []
    if not results and thing.get("skipped"):
        entries.append(from_result(thing, where))
    for index, item in enumerate(results):
        if not isinstance(item, Mapping):
            raise AnsibleActionFail(
                f"{where}.results[{index}] is a {type_name(item)}, not a task result"
            )
        entries.append(from_result(item, f"{where}.results[{index}]"))
    return entries


def _launch_jobs(thing: Mapping, where: str) -> list[JobEntry]:
    entries = []
    for index, job in enumerate(thing["jobs"]):
        if not isinstance(job, Mapping):
            raise AnsibleActionFail(
                f"{where}.jobs[{index}] is a {type_name(job)}, not a job of an async_launch result"
            )
        entries.append(from_launch_job(job, f"{where}.jobs[{index}]"))
    return entries


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _collect(thing: Any, where: str, top: bool) -> list[JobEntry]:
    if isinstance(thing, str):
        return [JobEntry(where=where, jid=check_jid(thing, where))]
    if isinstance(thing, Mapping):
        if "ansible_job_id" not in thing and _is_list(thing.get("results")):
            return _loop_results(thing, where)
        if "ansible_job_id" not in thing and _is_list(thing.get("jobs")):
            return _launch_jobs(thing, where)
        return [from_result(thing, where)]
    if _is_list(thing) and top:
        entries = []
        for index, element in enumerate(thing):
            entries += _collect(element, f"{where}[{index}]", top=False)
        return entries
    raise AnsibleActionFail(
        f"{where} is a {type_name(thing)} ({label(thing)}); expected a registered async result, "
        "a loop result, an async_launch result, a list of them, a job id string or a list of job ids"
    )


def collect_jobs(value: Any) -> list[JobEntry]:
    """Flatten what ``jobs`` may hold into entries, in input order."""
    return _collect(value, "jobs", top=True)
