# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for many async jobs of a host at once: one long-polling round trip per poll."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

POLL_MODULE = "tplabs.async_tasks.async_job_poll"
JID_RE = re.compile(r"j[0-9]+\.[0-9]+")
ENDED_OK = "finished"
# States where the job ended (or can never be waited for) with a failure.
FAILED_STATES = frozenset(
    {"failed", "timeout", "orphaned", "unknown", "corrupt", "killed", "launch_failed"}
)
# States where the job's own result was read from its job file.
FINISHED_STATES = frozenset({"finished", "failed", "timeout"})
MAX_CONSECUTIVE_ERRORS = 3
RETRY_PAUSE = 1.0
DELTA_RE = re.compile(r"^(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


def seconds(name: str, value: Any, default: float | None) -> float | None:
    """A non-negative number of seconds, or a clear error naming the option."""
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
    if number != number or number < 0 or number == float("inf"):
        raise AnsibleActionFail(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return number


def check_jid(jid: Any, where: str) -> str:
    if not isinstance(jid, str) or not JID_RE.fullmatch(jid):
        raise AnsibleActionFail(
            f"{where}: {jid!r} is not an async job id (expected j<digits>.<digits>, the "
            "ansible_job_id of a task run with async: N and poll: 0); nothing was read on the host"
        )
    return str(jid)


def type_name(value: Any) -> str:
    """The plain type a user wrote (not core's tagged subclasses)."""
    for kind in (bool, int, float, str, Mapping, Sequence):
        if isinstance(value, kind):
            return {Mapping: "dict", Sequence: "list"}.get(kind, kind.__name__)
    return type(value).__name__


def label(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _from_result(result: Mapping, where: str) -> dict:
    """One entry from one registered task result (a launch, or one item of a loop)."""
    entry: dict[str, Any] = {"where": where}
    if "ansible_loop_var" in result or "item" in result:
        entry["item"] = result.get(result.get("ansible_loop_var", "item"))
    if result.get("skipped"):
        entry.update(
            jid=None,
            state="skipped",
            msg=f"skipped at launch: {result.get('skip_reason') or result.get('false_condition') or 'skipped'}",
        )
        return entry
    jid = result.get("ansible_job_id")
    if jid is None:
        if result.get("failed") or result.get("unreachable"):
            entry.update(
                jid=None,
                state="launch_failed",
                msg=f"the launch failed, nothing to wait for: {result.get('msg', 'failed')}",
                result=dict(result),
            )
            return entry
        keys = ", ".join(sorted(str(k) for k in result)[:8])
        raise AnsibleActionFail(
            f"{where} is not an async launch result (no ansible_job_id; keys: {keys}): "
            "register a task run with async: N and poll: 0"
        )
    entry["jid"] = check_jid(jid, where)
    if result.get("finished"):
        # A `poll: N` result: the job already ended and core already removed its file.
        own = dict(result)
        entry.update(
            state="failed" if own.get("failed") else "finished", result=own, done_before=True
        )
    return entry


def collect_jobs(value: Any) -> list[dict]:
    """Flatten what `jobs` may hold into entries, in input order."""
    entries: list[dict] = []

    def one(thing: Any, where: str, depth: int) -> None:
        if isinstance(thing, str):
            entries.append({"jid": check_jid(thing, where), "where": where})
        elif isinstance(thing, Mapping):
            results = thing.get("results")
            if (
                "ansible_job_id" not in thing
                and isinstance(results, Sequence)
                and not isinstance(results, str)
            ):
                if not thing.get("results") and thing.get("skipped"):
                    entries.append(_from_result(thing, where))
                for index, item in enumerate(results):
                    if not isinstance(item, Mapping):
                        raise AnsibleActionFail(
                            f"{where}.results[{index}] is a {type_name(item)}, not a task result"
                        )
                    entries.append(_from_result(item, f"{where}.results[{index}]"))
            else:
                entries.append(_from_result(thing, where))
        elif isinstance(thing, Sequence) and depth == 0:
            for index, element in enumerate(thing):
                one(element, f"{where}[{index}]", depth + 1)
        else:
            raise AnsibleActionFail(
                f"{where} is a {type_name(thing)} ({label(thing)}); expected a registered "
                "async result, a loop result, a list of them, a job id string or a list of job ids"
            )

    one(value, "jobs", 0)
    return entries


def parse_delta(delta: Any) -> float | None:
    match = DELTA_RE.match(str(delta)) if delta is not None else None
    if not match:
        return None
    hours, minutes, secs = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    ARGUMENT_SPEC: ClassVar[dict[str, dict]] = {
        "jobs": {"type": "raw", "required": True, "aliases": ["jid"]},
        "timeout": {"type": "raw"},
        "window": {"type": "raw"},
        "poll_interval": {"type": "raw"},
        "cleanup": {"type": "bool", "default": True},
        "fail_on_job_failure": {"type": "bool", "default": True},
        "fail_fast": {"type": "bool", "default": False},
        "on_timeout": {"type": "str", "choices": ["fail", "kill"], "default": "fail"},
    }
    DEFAULT_WINDOW = 5.0
    DEFAULT_POLL_INTERVAL = 0.1

    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def _get_async_dir(self) -> str:
        """Exactly as core's async_status finds it (shell option, become user's home)."""
        async_dir = self.get_shell_option("async_dir", default="~/.ansible_async")
        return self._remote_expand_user(async_dir)

    def _reset_connection(self, host: str | None) -> None:
        """Reset before a retry, where the connection plugin can (the base one only warns)."""
        if type(self._connection).reset is ConnectionBase.reset:
            return
        try:
            self._connection.reset()
        except Exception as err:  # a reset that fails is retried by the next poll
            display.vvv(f"async_wait: connection reset failed: {err}", host=host)

    def _poll(self, jids: list[str], async_dir: str, task_vars: dict, **args: Any) -> dict:
        return self._execute_module(
            module_name=POLL_MODULE,
            module_args={"jids": jids, "async_dir": async_dir, **args},
            task_vars=task_vars,
        )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        timeout = seconds("timeout", args.get("timeout"), None)
        window = seconds("window", args.get("window"), self.DEFAULT_WINDOW)
        interval = seconds("poll_interval", args.get("poll_interval"), self.DEFAULT_POLL_INTERVAL)
        if interval == 0:
            raise AnsibleActionFail("poll_interval must be > 0, got 0")
        entries = collect_jobs(args["jobs"])
        host = task_vars.get("inventory_hostname")

        start = self.clock()
        deadline = None if timeout is None else start + timeout
        polls = 0
        errors: list[str] = []
        unreachable = False
        seen: dict[str, dict] = {}  # jid -> latest remote view, with the first started_at kept
        async_dir: str | None = None

        def pending_jids() -> list[str]:
            jids = [e["jid"] for e in entries if "state" not in e]
            return [
                j
                for j in dict.fromkeys(jids)
                if seen.get(j, {}).get("state", "running") == "running"
            ]

        def any_failed() -> bool:
            return any(
                e.get("state") in FAILED_STATES
                or seen.get(e.get("jid") or "", {}).get("state") in FAILED_STATES
                for e in entries
            )

        while True:
            jids = pending_jids()
            if not jids:
                break
            now = self.clock()
            remaining = None if deadline is None else max(0.0, deadline - now)
            this_window = window if remaining is None else min(window, remaining)
            try:
                if async_dir is None:
                    async_dir = self._get_async_dir()
                polls += 1
                reply = self._poll(
                    jids,
                    async_dir,
                    task_vars,
                    window=this_window,
                    interval=interval,
                    fail_fast=args["fail_fast"],
                    cleanup=args["cleanup"],
                )
            except AnsibleConnectionFailure as err:
                reply = {"failed": True, "msg": f"connection failure: {err}", "_unreachable": True}
            if reply.get("failed") or not isinstance(reply.get("jobs"), list):
                errors.append(
                    str(
                        reply.get("msg") or reply.get("module_stderr") or "no jobs in reply"
                    ).strip()
                )
                unreachable = bool(reply.get("_unreachable") or reply.get("unreachable"))
                if len(errors) >= MAX_CONSECUTIVE_ERRORS or (
                    deadline is not None and self.clock() >= deadline
                ):
                    break
                display.vvv(f"async_wait: poll failed ({errors[-1]}), retrying", host=host)
                self.sleep(
                    RETRY_PAUSE
                    if deadline is None
                    else min(RETRY_PAUSE, max(0.0, deadline - self.clock()))
                )
                self._reset_connection(host)
                continue
            errors.clear()
            unreachable = False
            self._remember(seen, reply)
            self._progress(entries, seen, host, self.clock() - start, polls)
            if args["fail_fast"] and any_failed():
                break
            if deadline is not None and self.clock() >= deadline:
                break
            if this_window == 0 and pending_jids():
                # No long poll on the host: pause here, or the round trips would never stop.
                self.sleep(interval)

        elapsed = self.clock() - start
        if errors:
            # The host is gone: removing the remote tmp dir after the task would raise again
            # and replace this result (which names the jobs) with a bare connection error.
            self._connection._shell.tmpdir = None
        still = pending_jids()
        timed_out = bool(still) and not errors and not (args["fail_fast"] and any_failed())
        killed: list[str] = []
        kill_error = ""
        if timed_out and args["on_timeout"] == "kill" and not self._task.check_mode and async_dir:
            polls += 1
            try:
                reply = self._poll(
                    still, async_dir, task_vars, mode="kill", cleanup=args["cleanup"]
                )
            except AnsibleConnectionFailure as err:
                reply = {"failed": True, "msg": str(err)}
            if reply.get("failed") or not isinstance(reply.get("jobs"), list):
                kill_error = f"could not kill the unfinished jobs: {reply.get('msg', 'no reply')}"
            if isinstance(reply.get("jobs"), list):
                self._remember(seen, reply)
            killed = [j for j in still if seen.get(j, {}).get("state") == "killed"]

        returned_at = self.clock()
        jobs = [self._shape(entry, seen, returned_at) for entry in entries]
        counts = {
            "total": len(jobs),
            "finished": sum(1 for j in jobs if j["finished"]),
            "failed": sum(1 for j in jobs if j["failed"]),
            "pending": sum(1 for j in jobs if j["state"] == "running"),
            "skipped": sum(1 for j in jobs if j["state"] == "skipped"),
        }
        result.update(
            changed=False,
            jobs=jobs,
            counts=counts,
            finished=counts["pending"] == 0,
            pending=counts["pending"],
            elapsed=round(elapsed, 3),
            polls=polls,
        )
        if async_dir:
            result["async_dir"] = async_dir

        problems: list[str] = []
        if errors:
            what = "lost the host" if unreachable else "could not poll the jobs"
            problems.append(
                f"{what} after {elapsed:.1f}s with {counts['pending']} job(s) unfinished "
                f"({', '.join(self._describe(j) for j in jobs if j['state'] == 'running')}): {errors[-1]}"
            )
        if timed_out:
            running = [j for j in jobs if j["state"] == "running" or j["jid"] in killed]
            verb = "killed" if killed else "still running"
            problems.append(
                f"timed out after {elapsed:.1f}s (timeout {timeout:g}s) with {len(running)} job(s) {verb}: "
                + "; ".join(f"{self._describe(j)} ran {self._ran(j)}" for j in running)
            )
        if kill_error:
            problems.append(kill_error)
        failed_jobs = [j for j in jobs if j["failed"] and not (timed_out and j["jid"] in killed)]
        if failed_jobs:
            problems.append(
                f"{len(failed_jobs)} of {len(jobs)} job(s) failed: "
                + "; ".join(f"{self._describe(j)}: {j['msg']}" for j in failed_jobs)
            )
            if args["fail_fast"] and counts["pending"]:
                problems.append(
                    f"fail_fast: returned with {counts['pending']} job(s) still running"
                )

        if unreachable and errors:
            result["unreachable"] = True
        result["failed"] = bool(
            errors or timed_out or (failed_jobs and args["fail_on_job_failure"])
        )
        if problems:
            result["msg"] = "; ".join(problems)
        elif counts["total"] and counts["skipped"] == counts["total"]:
            result["skipped"] = True
            result["skip_reason"] = "every job was skipped at launch: nothing to wait for"
            result["msg"] = result["skip_reason"]
        elif not jobs:
            result["msg"] = "no jobs to wait for"
        else:
            result["msg"] = (
                f"{counts['finished']} job(s) finished in {elapsed:.1f}s with {polls} poll(s)"
                + (f", {counts['skipped']} skipped" if counts["skipped"] else "")
            )
        return result

    @staticmethod
    def _describe(job: dict) -> str:
        text = job["jid"] or "(no job id)"
        if "item" in job:
            text += f" (item {label(job['item'])})"
        return text

    @staticmethod
    def _ran(job: dict) -> str:
        return "an unknown time" if job.get("elapsed") is None else f"{job['elapsed']:.1f}s"

    def _progress(
        self, entries: list[dict], seen: dict, host: str | None, elapsed: float, polls: int
    ) -> None:
        states = [e.get("state") or seen.get(e["jid"], {}).get("state", "running") for e in entries]
        running = states.count("running")
        done = len(states) - running
        display.v(
            f"async_wait: {done}/{len(states)} jobs done, {running} pending, "
            f"{elapsed:.1f}s elapsed, {polls} poll(s)",
            host=host,
        )

    def _remember(self, seen: dict, reply: dict) -> None:
        """Keep the latest view of each job, its first start time, and when the reply came."""
        received = self.clock()
        host_now = reply.get("now")
        for job in reply["jobs"]:
            jid = job.get("jid") if isinstance(job, dict) else None
            if not isinstance(jid, str):
                continue
            first_start = seen.get(jid, {}).get("started_at")
            seen[jid] = dict(job, _received=received, _host_now=host_now)
            if first_start is not None and job.get("started_at") is None:
                seen[jid]["started_at"] = first_start

    @staticmethod
    def _ended_ago(remote: dict, returned_at: float) -> float | None:
        """Seconds from the job's end to this task's return: host clock, then the controller's."""
        ended_at, host_now = remote.get("ended_at"), remote.get("_host_now")
        if ended_at is None or host_now is None:
            return None
        try:
            on_host = max(0.0, float(host_now) - float(ended_at))
        except (TypeError, ValueError):
            return None
        return round(on_host + max(0.0, returned_at - remote["_received"]), 3)

    @staticmethod
    def _shape(entry: dict, seen: dict, returned_at: float) -> dict:
        remote = seen.get(entry.get("jid") or "", {})
        state = entry.get("state") or remote.get("state", "running")
        own = entry.get("result") if "result" in entry else remote.get("result")
        own = dict(own) if isinstance(own, Mapping) else {}
        if state == "running":
            own = {}
        msg = entry.get("msg") or remote.get("msg")
        if not msg:
            if state == "finished":
                msg = "finished"
            elif state == "running":
                msg = "running"
            else:
                msg = str(own.get("msg") or ("non-zero return code" if own.get("rc") else state))
                if own.get("rc") not in (None, 0):
                    msg = f"rc={own['rc']}: {msg}"
        elapsed = None
        if remote.get("started_at") is not None and remote.get("ended_at") is not None:
            elapsed = max(0.0, float(remote["ended_at"]) - float(remote["started_at"]))
        elif state == "running" and remote.get("running_for") is not None:
            elapsed = float(remote["running_for"])
        elif own.get("delta") is not None:
            elapsed = parse_delta(own["delta"])
        job = {
            "jid": entry.get("jid"),
            "state": state,
            "finished": state in FINISHED_STATES,
            "failed": state in FAILED_STATES,
            "rc": own.get("rc"),
            "stdout": own.get("stdout", ""),
            "stderr": own.get("stderr", ""),
            "msg": msg,
            "result": own,
            "elapsed": None if elapsed is None else round(elapsed, 3),
            "ended_ago": ActionModule._ended_ago(remote, returned_at),
        }
        if "item" in entry:
            job["item"] = entry["item"]
        if remote.get("erased"):
            job["erased"] = True
        return job
