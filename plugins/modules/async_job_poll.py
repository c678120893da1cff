#!/usr/bin/python
# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote half of tplabs.async_tasks.async_wait: read every job file of a host in one go."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: async_job_poll
short_description: Read the state of many async jobs at once, waiting on the host (internal)
version_added: 0.1.0
description:
  - Internal module of M(tplabs.async_tasks.async_wait); use that action instead.
  - Reads the job files that the async wrapper writes for the given job ids, every O(interval)
    seconds, for up to O(window) seconds, and returns as soon as no job is running any more.
  - A job whose file says it runs but whose wrapper processes are gone (killed, or the host
    rebooted since it started) is reported as C(orphaned).
  - Never reads, writes or deletes anything outside O(async_dir); a job id that does not match
    C(j<digits>.<digits>) is rejected.
options:
  jids:
    description: Job ids to look at.
    type: list
    elements: str
    required: true
  async_dir:
    description: The async directory, already expanded (as the action plugin finds it).
    type: path
    required: true
  mode:
    description:
      - V(wait) reads the jobs and waits on the host; V(kill) stops the jobs' processes.
    type: str
    choices: [wait, kill]
    default: wait
  window:
    description: Seconds to wait on the host for the jobs to end before returning.
    type: float
    default: 5.0
  interval:
    description: Seconds between two reads of the job files.
    type: float
    default: 0.1
  fail_fast:
    description: Return as soon as one job failed.
    type: bool
    default: false
  cleanup:
    description: Remove the job file of every job that ended, once it has been read.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
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
    async_dir: /root/.ansible_async
    window: 0
"""

RETURN = r"""
jobs:
  description: One entry per job id, in the order given.
  returned: always
  type: list
  elements: dict
checks:
  description: How many times the job files were read during this call.
  returned: always
  type: int
"""

import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import stat  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

JID_RE = re.compile(r"j[0-9]+\.[0-9]+")
ENDED = ("finished", "failed", "timeout", "orphaned", "corrupt", "killed")
PROC_SCAN_EVERY = 1.0  # seconds between two reads of the process table while jobs run


def valid_jid(jid: object) -> bool:
    return isinstance(jid, str) and bool(JID_RE.fullmatch(jid))


def job_path(async_dir: str, jid: str) -> str:
    if not valid_jid(jid):
        raise ValueError(f"invalid job id {jid!r}: expected j<digits>.<digits>")
    return os.path.join(async_dir, jid)


def boot_time(proc_stat: str = "/proc/stat") -> float | None:
    """Epoch second the host (or container) booted, when the kernel tells it."""
    try:
        with open(proc_stat) as handle:
            for line in handle:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def wrapper_processes(prefixes: set[str], proc: str = "/proc") -> dict[str, list[int]] | None:
    """Pids of async_wrapper processes per jid prefix; None when the table cannot be read.

    The wrapper runs as `python .../async_wrapper.py <jid prefix> <limit> <module> <args>`,
    and both its supervisor and the forked child that runs the module keep that command line.
    """
    found: dict[str, list[int]] = {prefix: [] for prefix in prefixes}
    try:
        entries = os.listdir(proc)
    except OSError:
        return None
    me = os.getpid()
    for entry in sorted((e for e in entries if e.isdigit()), key=int):
        if int(entry) == me:
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        args = raw.decode("utf-8", "replace").split("\0")
        if len(args) < 3 or not any(
            os.path.basename(a).startswith("async_wrapper") for a in args[:3]
        ):
            continue
        for prefix in prefixes:
            if prefix in args:
                found[prefix].append(int(entry))
    return found


def read_job(path: str) -> tuple[str, dict | str | None, float | None]:
    """(kind, data, mtime): kind is missing, corrupt, running or done."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "missing", None, None
    if not stat.S_ISREG(info.st_mode):
        return "corrupt", "not a regular file", info.st_mtime
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as err:
        return "corrupt", f"cannot read it: {err}", info.st_mtime
    if not text.strip():
        return "corrupt", "empty file", info.st_mtime
    try:
        data = json.loads(text)
    except ValueError as err:
        return "corrupt", f"not JSON ({err}): {text[:200]!r}", info.st_mtime
    if not isinstance(data, dict):
        return "corrupt", f"not a JSON object: {text[:200]!r}", info.st_mtime
    for key in ("started", "finished"):
        if key in data:
            data[key] = bool(data[key])
    # The wrapper writes {"started": true, "finished": false} at start and the module's
    # own result (without "started") at the end; a "Timeout exceeded" record has neither.
    if data.get("started") and not data.get("finished"):
        return "running", data, info.st_mtime
    return "done", data, info.st_mtime


def classify_done(data: dict) -> str:
    if data.get("msg") == "Timeout exceeded" and "child_pid" in data:
        return "timeout"
    if data.get("killed_by_async_wait"):
        return "killed"
    return "failed" if data.get("failed") else "finished"


class Poller:
    """State of one call: which jobs ended, and what was seen of each."""

    def __init__(self, jids: list[str], async_dir: str, clock=time.time, proc: str = "/proc"):
        self.jids = list(dict.fromkeys(jids))
        self.async_dir = async_dir
        self.clock = clock
        self.proc = proc
        self.boot = boot_time(os.path.join(proc, "stat"))
        self.jobs: dict[str, dict] = {}
        self.procs: dict[str, list[int]] | None = None
        self.scanned_at = float("-inf")
        self.checks = 0

    def pending(self) -> list[str]:
        return [
            j for j in self.jids if self.jobs.get(j, {}).get("state") not in (*ENDED, "unknown")
        ]

    def _scan(self, force: bool = False) -> dict[str, list[int]] | None:
        now = time.monotonic()
        if force or now - self.scanned_at >= PROC_SCAN_EVERY:
            prefixes = {jid.split(".")[0] for jid in self.jids}
            self.procs = wrapper_processes(prefixes, self.proc)
            self.scanned_at = now
        return self.procs

    def _alive(self, jid: str, force: bool = False) -> bool | None:
        procs = self._scan(force)
        if procs is None:
            return None
        return bool(procs.get(jid.split(".")[0]))

    def _can_judge_orphans(self, path: str) -> bool:
        """Only where the job's processes would be visible to us."""
        if os.geteuid() == 0:
            return True
        try:
            return os.lstat(path).st_uid == os.geteuid()
        except OSError:
            return False

    def inspect(self, jid: str) -> dict:
        path = job_path(self.async_dir, jid)
        kind, data, mtime = read_job(path)
        now = self.clock()
        entry: dict = {"jid": jid, "path": path}
        if kind == "missing":
            if self._alive(jid):
                entry.update(state="running", msg="job starting: no job file yet")
            else:
                entry.update(state="unknown", msg=f"unknown job: no job file {path}")
        elif kind == "corrupt":
            if self._alive(jid):
                entry.update(state="running", msg=f"job file unreadable while the job runs: {data}")
            else:
                entry.update(state="corrupt", msg=f"job file {path} cannot be parsed: {data}")
        elif kind == "running":
            entry.update(state="running", started_at=mtime, running_for=max(0.0, now - mtime))
            rebooted = self.boot is not None and mtime < self.boot
            if rebooted:
                entry.update(
                    state="orphaned",
                    msg=f"orphaned: the host rebooted after the job started ({now - mtime:.1f}s ago)",
                )
            elif (
                self._can_judge_orphans(path)
                # The table is read at most every PROC_SCAN_EVERY seconds; a job that seems
                # gone is confirmed on a fresh read before it is called orphaned.
                and self._alive(jid) is False
                and self._alive(jid, force=True) is False
            ):
                # Re-read: the job may have written its result and exited between the two reads.
                kind2, data2, mtime2 = read_job(path)
                if kind2 == "running":
                    entry.update(
                        state="orphaned",
                        msg="orphaned: the job file says running but no async_wrapper process "
                        f"of this job is left (killed?), {now - mtime:.1f}s after it started",
                    )
                else:
                    kind, data, mtime = kind2, data2, mtime2
            if kind == "running":
                entry["result"] = data
        if kind == "done" and isinstance(data, dict):
            entry.update(state=classify_done(data), ended_at=mtime, result=data)
            if entry["state"] == "timeout":
                entry["msg"] = (
                    "the job reached its own async limit (Timeout exceeded) and was killed"
                )
        return entry

    def check(self) -> None:
        self.checks += 1
        for jid in self.pending():
            entry = self.inspect(jid)
            previous = self.jobs.get(jid)
            if previous and "started_at" in previous and "started_at" not in entry:
                entry["started_at"] = previous["started_at"]
            self.jobs[jid] = entry

    def any_failed(self) -> bool:
        return any(e.get("state") not in ("finished", "running") for e in self.jobs.values())

    def wait(self, window: float, interval: float, fail_fast: bool) -> None:
        deadline = time.monotonic() + max(0.0, window)
        while True:
            self.check()
            if not self.pending() or (fail_fast and self.any_failed()):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(interval, remaining))

    def cleanup(self) -> None:
        for entry in self.jobs.values():
            if entry["state"] in ENDED:
                try:
                    os.unlink(entry["path"])
                    entry["erased"] = True
                except FileNotFoundError:
                    pass
                except OSError as err:
                    entry["cleanup_error"] = str(err)

    def kill(self, grace: float = 1.0) -> None:
        """Stop each job's process groups (the supervisor's and the module's)."""
        procs = self._scan(force=True) or {}
        own = os.getpgid(0)
        for jid in self.jids:
            pids = procs.get(jid.split(".")[0], [])
            groups = set()
            for pid in pids:
                with contextlib.suppress(OSError):
                    groups.add(os.getpgid(pid))
            groups.discard(own)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for group in groups:
                    with contextlib.suppress(OSError):
                        os.killpg(group, sig)
                if sig == signal.SIGTERM:
                    end = time.monotonic() + grace
                    while time.monotonic() < end and self._alive(jid, force=True):
                        time.sleep(0.05)
            path = job_path(self.async_dir, jid)
            kind, data, mtime = read_job(path)
            entry = {"jid": jid, "path": path, "killed_pids": sorted(pids)}
            if kind == "running":
                record = {
                    "started": True,
                    "finished": True,
                    "failed": True,
                    "killed_by_async_wait": True,
                    "ansible_job_id": jid,
                    "msg": "killed by tplabs.async_tasks.async_wait after the wait timed out",
                }
                tmp = path + ".tmp"
                with open(tmp, "w") as handle:
                    json.dump(record, handle)
                os.rename(tmp, path)
                entry.update(state="killed", started_at=mtime, ended_at=self.clock(), result=record)
                entry["msg"] = record["msg"]
            elif kind == "done" and isinstance(data, dict):
                entry.update(state=classify_done(data), ended_at=mtime, result=data)
            elif kind == "missing":
                entry.update(state="unknown" if not pids else "killed", msg="no job file")
            else:
                entry.update(state="corrupt", msg=f"job file {path} cannot be parsed: {data}")
            self.jobs[jid] = entry


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "jids": {"type": "list", "elements": "str", "required": True},
            "async_dir": {"type": "path", "required": True},
            "mode": {"type": "str", "choices": ["wait", "kill"], "default": "wait"},
            "window": {"type": "float", "default": 5.0},
            "interval": {"type": "float", "default": 0.1},
            "fail_fast": {"type": "bool", "default": False},
            "cleanup": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    bad = [jid for jid in params["jids"] if not valid_jid(jid)]
    if bad:
        module.fail_json(msg=f"invalid job id(s) {bad}: expected j<digits>.<digits>")
    for name in ("window", "interval"):
        if params[name] < 0:
            module.fail_json(msg=f"{name} must be >= 0, got {params[name]}")
    poller = Poller(params["jids"], params["async_dir"])
    if params["mode"] == "kill":
        if not module.check_mode:
            poller.kill()
    else:
        poller.wait(params["window"], max(params["interval"], 0.01), params["fail_fast"])
    if params["cleanup"] and not module.check_mode:
        poller.cleanup()
    module.exit_json(
        changed=False,
        jobs=[poller.jobs[jid] for jid in poller.jids if jid in poller.jobs],
        checks=poller.checks,
        now=time.time(),
    )


if __name__ == "__main__":
    main()
