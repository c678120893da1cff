# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a wait reports about each job: state, output, the job's own result, why it failed.

Private to the collection (controller side only): used by the wait engine (``_wait.py``).

The job's own result is reported as ``ansible.builtin.async_status`` returns it, and what a
module says beyond its result is read the way ansible-core reads it:

- 2.19 writes a module's exception as a structured error summary
  (``{"event": {"msg": ..., "chain": ...}}``, decoded on the controller into an object with the
  same fields); 2.17 and 2.18 write a traceback string, or, when the module printed no JSON,
  async_wrapper's own traceback in ``msg`` and the module's in ``stderr``. Both give the
  message core would show (``Module failed: <message>``).
- ``warnings`` and ``deprecations`` of every job are returned at the top of the task result,
  where core's result processing shows each one as it shows a module's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait_input import (
    JobEntry,
    label,
)

TRACEBACK_HEAD = "Traceback (most recent call last)"
MODULE_FAILED = "Module failed"


def _field(thing: Any, name: str, default: Any = None) -> Any:
    """A field of an event, whether decoded into an object (2.19) or left as a dict."""
    if isinstance(thing, Mapping):
        return thing.get(name, default)
    return getattr(thing, name, default)


def _concat(left: str, right: str) -> str:
    return f"{left.rstrip('. ')}: {right}"


def event_message(event: Any) -> str:
    """The brief message of a 2.19 error event: its chain of causes, repeats removed."""
    parts: list[str] = []
    while event is not None and len(parts) < 20:
        msg = _field(event, "msg")
        if msg:
            parts.append(str(msg))
        chain = _field(event, "chain")
        if chain is None or not _field(chain, "follow", True):
            break
        event = _field(chain, "event")
    if not parts:
        return ""
    parts.reverse()
    message = parts.pop(0)
    for part in parts:
        message = part if part.endswith(message) else _concat(part, message)
    return message


def last_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def exception_message(exception: Any) -> str:
    """What an ``exception`` value says: a 2.19 error summary, or a 2.17/2.18 traceback."""
    if exception is None or exception == "":
        return ""
    if isinstance(exception, str):
        return last_line(exception)
    event = _field(exception, "event")
    return event_message(event) if event is not None else ""


def failure_reason(record: Mapping) -> str:
    """Why a job that ended failed, in the words core would use."""
    msg = record.get("msg")
    stderr = record.get("stderr")
    if isinstance(msg, str) and msg.startswith(TRACEBACK_HEAD):
        # async_wrapper could not read the module's output (2.17/2.18: the module raised).
        if isinstance(stderr, str) and TRACEBACK_HEAD in stderr:
            return _concat(MODULE_FAILED, last_line(stderr))
        output = record.get("data", record.get("outdata", ""))
        return (
            f"the module's output is not JSON (async_wrapper: {last_line(msg)}): {label(output)!r}"
        )
    text = str(msg) if msg else ""
    if not text:
        reason = exception_message(record.get("exception"))
        text = _concat(MODULE_FAILED, reason) if reason else ""
    rc = record.get("rc")
    if not text:
        text = "non-zero return code" if rc not in (None, 0, "0") else "failed"
    if rc not in (None, 0, "0"):
        text = f"rc={rc}: {text}"
    return text


def _lines(value: Any) -> list[str]:
    return value.splitlines() if isinstance(value, str) else []


def status_result(
    jid: str | None, record: Mapping | None, results_file: str | None, failed: bool = False
) -> dict:
    """The job's result as ``ansible.builtin.async_status`` returns it (and register keeps it)."""
    result: dict[str, Any] = {
        "ansible_job_id": jid,
        "started": True,
        "finished": False,
        "stdout": "",
        "stderr": "",
    }
    if results_file:
        result["results_file"] = results_file
    if record:
        result.update(record)
        if "started" not in record:
            result["finished"] = True
        result["ansible_job_id"] = record.get("ansible_job_id", jid)
    for key in ("started", "finished"):
        result[key] = _job.flag(result.get(key))
    # What core's task executor adds to every registered result that lacks them.
    result.setdefault("changed", False)
    result.setdefault("failed", failed or result.get("rc") not in (None, 0, "0"))
    for key in ("stdout", "stderr"):
        if f"{key}_lines" not in result:
            result[f"{key}_lines"] = _lines(result.get(key) or "")
    return result


def job_elapsed(view: Mapping, record: Mapping, state: str) -> float | None:
    """Seconds the job ran (or has run), from the host's times, else the module's delta."""
    started, ended = view.get("started_at"), view.get("ended_at")
    try:
        if started is not None and ended is not None:
            return round(max(0.0, float(ended) - float(started)), 3)
        if state in _job.ACTIVE_STATES and view.get("running_for") is not None:
            return round(float(view["running_for"]), 3)
    except (TypeError, ValueError):
        return None
    delta = _job.parse_delta(record.get("delta"))
    return None if delta is None else round(delta, 3)


def ended_ago(view: Mapping, returned_at: float) -> float | None:
    """Seconds from the job's end to the task's return: host clock, then the controller's."""
    ended, host_now, received = view.get("ended_at"), view.get("_host_now"), view.get("_received")
    if ended is None or host_now is None or received is None:
        return None
    try:
        on_host = max(0.0, float(host_now) - float(ended))
    except (TypeError, ValueError):
        return None
    return round(on_host + max(0.0, returned_at - float(received)), 3)


def job_message(state: str, entry: JobEntry, view: Mapping, record: Mapping) -> str:
    """What happened to the job, naming the cause of a failure."""
    if entry.msg:
        return entry.msg
    remote = view.get("msg")
    if state == _job.FAILED or (state == _job.FINISHED and not remote):
        return failure_reason(record) if state == _job.FAILED else "finished"
    if state == _job.SKIPPED:
        return f"skipped: {record.get('msg') or 'check mode'}"
    if remote:
        return str(remote)
    if state in (_job.RUNNING, _job.QUEUED):
        return state
    return _job.STATES[state].meaning if state in _job.STATES else state


def found_elsewhere(view: Mapping) -> str:
    """A note when the job file was not in the async directory (see docs/known-issues.md)."""
    where = view.get("found_in")
    if not where:
        return ""
    return (
        f" (its job file was found in {where}, not in the async directory: where a wrong "
        "expansion of ~ would have put it)"
    )


def job_report(entry: JobEntry, view: Mapping, returned_at: float) -> dict:
    """One job of the wait's result (contract: jobs[n] of async_wait)."""
    state = entry.state or str(view.get("state") or _job.RUNNING)
    record = entry.result if entry.result is not None else view.get("result")
    record = dict(record) if isinstance(record, Mapping) else {}
    own = record if state not in _job.ACTIVE_STATES else {}
    read = state in _job.RESULT_STATES or (state == _job.SKIPPED and bool(own))
    failed = state in _job.FAILED_STATES
    result = status_result(entry.jid, own, view.get("path"), failed) if entry.jid else own
    job: dict[str, Any] = {
        "jid": entry.jid,
        "state": state,
        "finished": read,
        "failed": failed,
        "rc": own.get("rc"),
        "stdout": own.get("stdout") or "",
        "stderr": own.get("stderr") or "",
        "stdout_lines": result.get("stdout_lines", []) if entry.jid else _lines(own.get("stdout")),
        "stderr_lines": result.get("stderr_lines", []) if entry.jid else _lines(own.get("stderr")),
        "msg": job_message(state, entry, view, own) + found_elsewhere(view),
        "result": result,
        "elapsed": job_elapsed(view, own, state),
        "ended_ago": ended_ago(view, returned_at),
    }
    if entry.has_item:
        job["item"] = entry.item
    if entry.name is not None:
        job["name"] = entry.name
    for key in ("erased", "found_in", "cleanup_error", "truncated", "pids"):
        if view.get(key):
            job[key] = view[key]
    return job


def job_messages(jobs: Sequence[Mapping]) -> tuple[list, list]:
    """Every job's warnings and deprecations, for the task result (core shows each)."""
    warnings: list = []
    deprecations: list = []
    for job in jobs:
        result = job.get("result") or {}
        found = result.get("warnings")
        if isinstance(found, (str, Mapping)) or not isinstance(found, Sequence):
            found = [found] if found else []
        warnings.extend(found)
        found = result.get("deprecations")
        if isinstance(found, Mapping) or not isinstance(found, Sequence) or isinstance(found, str):
            found = [found] if found else []
        # Copies: core's result processing pops keys from the dicts it is given.
        deprecations.extend(dict(d) if isinstance(d, Mapping) else d for d in found)
    return warnings, deprecations


def describe(job: Mapping) -> str:
    """A job as messages name it: its id, and its loop item or name."""
    text = job.get("jid") or "(no job id)"
    if "item" in job:
        text += f" (item {label(job['item'])})"
    elif job.get("name"):
        text += f" ({label(job['name'])})"
    return text


def ran_for(job: Mapping) -> str:
    """How long a job ran, for a message."""
    return "an unknown time" if job.get("elapsed") is None else f"{job['elapsed']:.1f}s"


def counts(jobs: Sequence[Mapping]) -> dict[str, int]:
    states = [job["state"] for job in jobs]
    return {
        "total": len(jobs),
        "finished": sum(1 for state in states if state in _job.RESULT_STATES),
        "failed": sum(1 for job in jobs if job["failed"]),
        "pending": sum(1 for state in states if state in _job.ACTIVE_STATES),
        "skipped": states.count(_job.SKIPPED),
    }
