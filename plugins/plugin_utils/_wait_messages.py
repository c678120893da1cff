# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The messages of a wait: why it failed, naming each job concerned, or what it did.

Private to the collection (controller side only): used by the wait engine (``_wait.py``),
given the waiter (its faults, whether it timed out, what it tried to kill, its options).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._wait_report import (
    describe,
    ran_for,
)


def failure_messages(waiter: Any, jobs: list[dict], tally: dict, elapsed: float) -> list[str]:
    """Each reason the wait failed, naming the jobs concerned."""
    found: list[str] = []
    faults = waiter.faults
    if faults:
        what = "lost the host" if faults[-1].unreachable else "could not poll the jobs"
        unfinished = ", ".join(describe(j) for j in jobs if j["state"] in _job.ACTIVE_STATES)
        found.append(
            f"{what} after {len(faults)} failed round trip(s) in a row over "
            f"{waiter.fault_span():.1f}s (the wait ran {elapsed:.1f}s) with "
            f"{tally['pending']} job(s) unfinished ({unfinished}): {faults[-1].message}"
        )
    if waiter.timed_out:
        found.append(timeout_message(waiter, jobs, elapsed))
    if waiter.kill_error:
        found.append(waiter.kill_error)
    failed = [j for j in jobs if j["failed"] and not stopped_by(waiter, j)]
    if failed:
        found.append(
            f"{len(failed)} of {len(jobs)} job(s) failed: "
            + "; ".join(f"{describe(j)}: {j['msg']}" for j in failed)
        )
        if waiter.options.fail_fast and tally["pending"]:
            found.append(f"fail_fast: returned with {tally['pending']} job(s) still running")
    return found


def stopped_by(waiter: Any, job: Mapping) -> bool:
    """A job the wait tried to kill: the timeout message names it, not the failures."""
    return job["jid"] in waiter.kill_targets and job["state"] in (_job.KILLED, _job.KILL_FAILED)


def timeout_message(waiter: Any, jobs: list[dict], elapsed: float) -> str:
    """The timeout, and each unfinished job: killed, not killed, or still running."""
    killed = [j for j in jobs if stopped_by(waiter, j) and j["state"] == _job.KILLED]
    not_killed = [j for j in jobs if stopped_by(waiter, j) and j["state"] == _job.KILL_FAILED]
    running = [j for j in jobs if j["state"] in _job.ACTIVE_STATES and not stopped_by(waiter, j)]
    parts = []
    if killed:
        parts.append(
            f"{len(killed)} job(s) killed: "
            + "; ".join(f"{describe(j)} ran {ran_for(j)}" for j in killed)
        )
    if not_killed:
        parts.append(
            f"{len(not_killed)} job(s) that could not be killed (they may still run): "
            + "; ".join(f"{describe(j)}: {j['msg']}" for j in not_killed)
        )
    if running:
        parts.append(
            f"{len(running)} job(s) still running: "
            + "; ".join(f"{describe(j)} ran {ran_for(j)}" for j in running)
        )
    timeout = waiter.options.timeout or 0.0
    return f"timed out after {elapsed:.1f}s (timeout {timeout:g}s) with " + (
        ", ".join(parts) or "no job left running (they ended before the kill)"
    )


def success_message(tally: dict, elapsed: float, polls: int) -> str:
    """What a wait that did not fail did."""
    if not tally["total"]:
        return "no jobs to wait for"
    if tally["skipped"] == tally["total"]:
        return "every job was skipped: nothing to wait for"
    return f"{tally['finished']} job(s) finished in {elapsed:.1f}s with {polls} poll(s)" + (
        f", {tally['skipped']} skipped" if tally["skipped"] else ""
    )
