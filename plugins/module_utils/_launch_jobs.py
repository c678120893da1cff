# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""async_launch's jobs on the host: specs, ids, identities, and results as command's.

Private to the collection: no guarantee of a stable interface outside it. Runs on the
managed hosts (standard library only, Python >= 3.7); see ``_launch`` for the whole launch.
"""

from __future__ import annotations

import datetime
import os
import random
from dataclasses import dataclass
from typing import Any

SHELL = "/bin/sh"


@dataclass
class JobSpec:
    """One job as the module received it (already validated on the controller)."""

    name: str
    argv: list[str]
    cmd: Any  # what the result's `cmd` shows: the argv list, or the shell command line
    chdir: str | None = None


def job_specs(jobs: list[dict]) -> list[JobSpec]:
    """Turn the module's `jobs` option into specs: `argv` as given, `shell` through /bin/sh."""
    specs = []
    for job in jobs:
        chdir = os.path.expanduser(job["chdir"]) if job.get("chdir") else None
        if job.get("shell") is not None:
            spec = JobSpec(job["name"], [SHELL, "-c", job["shell"]], job["shell"], chdir)
        else:
            argv = [str(arg) for arg in job["argv"]]
            spec = JobSpec(job["name"], argv, list(argv), chdir)
        specs.append(spec)
    return specs


# -- processes -----------------------------------------------------------------------------


def proc_starttime(pid: int | str = "self", proc: str = "/proc") -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot); None without /proc."""
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
        # The command name (field 2) is in parentheses and may hold spaces or ')'.
        return int(raw[raw.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def identity() -> dict:
    """What ties a job record to this process with certainty (pid reuse included)."""
    return {
        "pid": os.getpid(),
        "starttime": proc_starttime(),
        "pgid": os.getpgid(0),
        "uid": os.getuid(),
    }


def new_jids(count: int, pid: int, rng: random.Random | None = None) -> list[str]:
    """Distinct job ids in core's format, j<12 random digits>.<pid>."""
    rng = rng or random.SystemRandom()
    jids: list[str] = []
    while len(jids) < count:
        jid = f"j{rng.randrange(10**12):012d}.{pid}"
        if jid not in jids:
            jids.append(jid)
    return jids


def _now() -> datetime.datetime:
    return datetime.datetime.now()


def command_result(
    spec: JobSpec, rc: int, out: bytes, err: bytes, start: datetime.datetime, end: datetime.datetime
) -> dict:
    """The result ansible.builtin.command (or shell) returns for the same run."""
    result = {
        "changed": True,
        "cmd": spec.cmd,
        "rc": rc,
        "stdout": out.decode("utf-8", "replace").rstrip("\r\n"),
        "stderr": err.decode("utf-8", "replace").rstrip("\r\n"),
        "start": str(start),
        "end": str(end),
        "delta": str(end - start),
        "msg": "",
    }
    if rc != 0:
        result.update(failed=True, msg="non-zero return code")
    return result


def start_failure(spec: JobSpec, error: OSError, chdir_failed: bool) -> dict:
    """What command returns when it cannot run at all (rc is the errno, as core's)."""
    # Core says "Error executing command." and leaves the reason in an exception that
    # async_status does not show: the reason is part of the message here.
    what = (
        "Unable to change directory before execution" if chdir_failed else "Error executing command"
    )
    msg = f"{what}: {error}"
    return {
        "changed": False,
        "cmd": spec.cmd,
        "rc": error.errno or 2,
        "stdout": "",
        "stderr": "",
        "failed": True,
        "msg": msg,
    }
