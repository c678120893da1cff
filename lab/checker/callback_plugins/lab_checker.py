# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab checker's recorder: what the trainee's play did, for the checker to grade.

Not part of the collection: `make check` enables it for the run it grades
(ANSIBLE_CALLBACK_PLUGINS + ANSIBLE_CALLBACKS_ENABLED) next to the usual output. It writes one
JSON document to LAB_CHECKER_RECORD: every task (name, action, async, poll, throttle, the
raw failed_when) and every result the hosts sent back (the fields the checker grades), with
controller times.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: lab_checker
type: aggregate
short_description: Records tasks and results for the lab checker
description:
  - Writes the tasks and results of a run to the file named by E(LAB_CHECKER_RECORD).
requirements:
  - enabled by the lab checker (lab/checker)
"""

KEPT = (
    "ansible_job_id",
    "started",
    "finished",
    "failed",
    "changed",
    "skipped",
    "unreachable",
    "msg",
    "rc",
    "attempts",
    "results_file",
    "stdout",
    "stderr",
    "start",
    "end",
    "delta",
    "failed_when_result",
    "state",
    "jobs",
    "counts",
    "polls",
    "elapsed",
    "ansible_loop_var",
    "item",
)


def _kept(result: dict[str, Any]) -> dict[str, Any]:
    kept = {k: result[k] for k in KEPT if k in result}
    if isinstance(result.get("results"), list):
        kept["results"] = [_kept(r) for r in result["results"] if isinstance(r, dict)]
    return kept


def _text(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return str(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lab_checker"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("LAB_CHECKER_RECORD", "")
        self._doc: dict[str, Any] = {
            "started": time.time(),
            "plays": [],
            "tasks": [],
            "results": [],
        }

    def _write(self) -> None:
        if not self._path:
            return
        tmp = f"{self._path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self._doc, handle, default=str)
        os.replace(tmp, self._path)

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._doc["plays"].append(
            {"name": play.get_name(), "hosts": _text(play.hosts), "at": time.time()}
        )

    def _task_start(self, task: Any) -> None:
        self._doc["tasks"].append(
            {
                "uuid": task._uuid,
                "name": task.get_name(),
                "action": task.resolved_action or task.action,
                "async": _text(task.async_val),
                "poll": _text(task.poll),
                "throttle": _text(task.throttle),
                "until": _text(task.until),
                "failed_when": _text(task.failed_when),
                "register": _text(task.register),
                "loop": task.loop is not None,
                "play": len(self._doc["plays"]) - 1,
                "at": time.time(),
            }
        )

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task_start(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task_start(task)

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._doc["results"].append(
            {"task": task._uuid, "host": host.get_name(), "status": "start", "at": time.time()}
        )

    def _result(self, status: str, result: Any) -> None:
        self._doc["results"].append(
            {
                "task": result._task._uuid,
                "host": result._host.get_name(),
                "status": status,
                "at": time.time(),
                "result": _kept(result._result),
                # the task's attributes as the worker templated them (async: "{{ x }}" -> 600)
                "fields": {
                    k: _text(result._task_fields.get(k))
                    for k in ("async_val", "poll", "throttle")
                    if k in (result._task_fields or {})
                },
            }
        )

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result("ok", result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result("skipped", result)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result("unreachable", result)

    def v2_runner_on_async_ok(self, result: Any) -> None:
        self._result("async_ok", result)

    def v2_runner_on_async_failed(self, result: Any) -> None:
        self._result("async_failed", result)

    def v2_runner_item_on_ok(self, result: Any) -> None:
        self._result("item_ok", result)

    def v2_runner_item_on_failed(self, result: Any) -> None:
        self._result("item_failed", result)

    def v2_runner_retry(self, result: Any) -> None:
        self._result("retry", result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = sorted(stats.processed.keys())
        self._doc["stats"] = {h: stats.summarize(h) for h in hosts}
        self._doc["ended"] = time.time()
        self._write()
