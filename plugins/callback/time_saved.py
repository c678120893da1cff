# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Measure what async jobs, forks and throttle saved compared with a one-by-one run."""

from __future__ import annotations

DOCUMENTATION = r"""
name: time_saved
type: aggregate
short_description: measure the time async jobs, forks and throttle saved
version_added: 0.1.0
description:
  - Measures, on a monotonic clock, when every task starts and ends on every host and how long
    every async job really ran, then compares the wall time of each play with a
    B(sequential baseline), the time the same work would have taken done one host and one job
    after another.
  - At the end of the playbook it prints a recap for each play and for the playbook (wall
    time, sequential baseline, time saved, speed-up, an estimate of the wall with every async
    task synchronous and the critical path), then the tasks that saved the most. It can also
    write a JSON report, a self-contained HTML or SVG timeline and a Chrome trace.
  - B(Tasks.) A task on a host runs from C(v2_runner_on_start) to its result. A failure
    ansible forgives (C(ignore_errors), a block's C(rescue)) and a skip count as work; failed
    and unreachable hosts do not, and the recap shows their time apart.
  - B(Jobs.) An async job (C(async) with C(poll=0), or M(tplabs.async_tasks.async_launch))
    is matched to its waits (M(ansible.builtin.async_status), C(poll > 0),
    M(tplabs.async_tasks.async_wait)) by job id; a C(no_log) launch hides its job id and is
    matched by the time its job started. Its real end comes, best first, from the module's
    own C(start)/C(end)/C(delta) (when the host's clock agrees with the controller's),
    async_wait's C(ended_ago), the job file when the controller can read it (local hosts),
    else it is only bounded by the wait that saw it ended, and the recap says so.
  - Every job state of the collection's job model is reported as itself (finished, failed,
    timeout, killed, kill_failed, orphaned, unknown, corrupt, queued, running...), plus
    C(not_waited) (never waited for, end unknown) and C(censored) (a no_log wait hid it).
    A job no wait saw end is read from its job file at the end of the playbook when the
    controller can read it.
  - B(Sequential baseline) is the length of every host's work; an async launch counts its
    job's measured run, a wait only its time when none of its jobs was running. A job that
    did not end with success counts only its launch. A play's baseline is the work that fell
    between its start and the next play's, so a job launched in one play and waited for in
    the next counts where it ran. Serial batches are one play.
  - B(Wall time) runs from the first task start of the play (or playbook) to the end of the
    play. B(Time saved) is baseline minus wall, B(speed-up) baseline divided by wall.
  - B(Concurrency.) "At once" figures and a task's saved time use one definition of overlap
    (the collection's C(max_running) filter) with a hand-off tolerance of 0.15 s, as ansible
    hands a freed worker to the next host just before it reports the previous result; a start
    beyond C(forks) or the task's C(throttle) ends the open run whose worker slot it took
    (under load ansible reports results seconds after their worker ended).
  - For C(no_log) tasks only the task name and times are kept, in every output.
  - Files are written atomically; a path that cannot be written gives a warning, never a
    failed play. Under ansible-runner (AWX, execution environments) the files go to the
    run's artifacts directory when no path is set, and the summary is added to the run's
    custom stats under C(time_saved) (AWX shows them as the job's artifacts); there the
    callback handles the stats event before the stdout callback, so its recap comes just
    before the C(PLAY RECAP).
  - docs/time_saved.md in the collection says what each figure means and its error bound.
requirements:
  - enable in configuration
options:
  output_json:
    description:
      - Path of a JSON report with every figure, per play, per task, per host and per job.
      - The document has a C(version) field (currently C(2)) and follows
        C(docs/schemas/time_saved.schema.json) in the collection.
    type: path
    env:
      - name: ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON
    ini:
      - section: callback_time_saved
        key: output_json
  output_timeline:
    description:
      - Path of a timeline (Gantt chart), one lane per host, with bars for tasks and for
        async jobs; hovering a bar shows its name and times.
      - A path ending in C(.svg) gives a standalone SVG image, any other path a
        self-contained HTML page (SVG plus tables of figures) that needs no network.
    type: path
    env:
      - name: ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TIMELINE
    ini:
      - section: callback_time_saved
        key: output_timeline
  output_trace:
    description:
      - Path of a Chrome trace-event JSON file of the run, for Perfetto (ui.perfetto.dev,
        which opens it in the browser without uploading it) or C(chrome://tracing).
      - One process per play, one track per host, a slice per host-task and per async job.
    type: path
    env:
      - name: ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TRACE
    ini:
      - section: callback_time_saved
        key: output_trace
  fold_hosts:
    description:
      - Above this many hosts, the timeline folds hosts by inventory group, one summary
        lane per group. C(0) never folds.
    type: int
    default: 50
    env:
      - name: ANSIBLE_CALLBACK_TIME_SAVED_FOLD_HOSTS
    ini:
      - section: callback_time_saved
        key: fold_hosts
  top:
    description: Number of tasks listed in the recap, those that saved the most time first.
    type: int
    default: 5
    env:
      - name: ANSIBLE_CALLBACK_TIME_SAVED_TOP
    ini:
      - section: callback_time_saved
        key: top
"""

EXAMPLES = r"""
# ansible.cfg: enable the callback beside the default stdout callback
# [defaults]
# callbacks_enabled = tplabs.async_tasks.time_saved
#
# [callback_time_saved]
# output_json = reports/time_saved.json
# output_timeline = reports/timeline.html
# output_trace = reports/time_saved.trace.json
# top = 10

# Or for one run, from the shell:
# ANSIBLE_CALLBACKS_ENABLED=tplabs.async_tasks.time_saved \
# ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TIMELINE=timeline.svg \
#   ansible-playbook playbooks/step5.yml
"""

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402

from ansible import constants as C  # noqa: E402
from ansible import context  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import (  # noqa: E402
    _time_saved_output as output,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_html import (  # noqa: E402
    render_html,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_model import (  # noqa: E402
    ASYNC_LAUNCH_ACTIONS,
    ASYNC_STATUS_ACTIONS,
    ASYNC_WAIT_ACTIONS,
    TaskInfo,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_recorder import (  # noqa: E402
    Recorder,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_report import (  # noqa: E402
    build_report,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_svg import (  # noqa: E402
    render_svg,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_text import (  # noqa: E402
    recap,
)
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_trace import (  # noqa: E402
    render_trace,
)

# -- reading ansible's objects (the only place that knows them; 2.17 to 2.19) ----------------

READ_ACTIONS = ASYNC_STATUS_ACTIONS | ASYNC_WAIT_ACTIONS | ASYNC_LAUNCH_ACTIONS


def result_parts(result: Any) -> tuple[Any, Any, dict[str, Any]]:
    """host, task, task fields of a task result (public names since ansible-core 2.19)."""
    host = getattr(result, "host", None) or result._host
    task = getattr(result, "task", None) or result._task
    fields = getattr(result, "task_fields", None)
    if fields is None:
        fields = getattr(result, "_task_fields", None) or {}
    return host, task, fields


def result_data(result: Any) -> dict[str, Any]:
    """The result's data; read only when needed: ansible-core 2.19 copies it on first read."""
    data = getattr(result, "result", None)
    return result._result if data is None else data


def _same(one: Any, other: Any) -> bool:
    return one is other or getattr(one, "_uuid", None) == getattr(other, "_uuid", False)


def rescuable(task: Any) -> bool:
    """The task sits in the ``block`` part of a block that has a ``rescue``."""
    node, parent = task, getattr(task, "_parent", None)
    while parent is not None:
        body = getattr(parent, "block", None)
        if (
            getattr(parent, "rescue", None)
            and isinstance(body, list)
            and any(_same(node, child) for child in body)
        ):
            return True
        node, parent = parent, getattr(parent, "_parent", None)
    return False


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _templated(value: Any) -> bool:
    """A task keyword the worker left as a template (a looped task's fields are not templated)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def task_info(task: Any, fields: dict[str, Any] | None = None, failed: bool = False) -> TaskInfo:
    """What the recorder needs of a task; ``fields`` (the worker's view) win when given."""
    fields = fields or {}
    name = fields.get("name")  # templated by the worker, unlike the task's own
    if not isinstance(name, str) or not name:
        name = task.get_name()
    elif getattr(task, "_role", None) is not None:
        name = f"{task._role.get_name()} : {name}"  # as ansible shows it
    no_log = fields["no_log"] if "no_log" in fields else task.no_log  # noqa: SIM401 (lazy)
    return TaskInfo(
        uuid=task._uuid,
        name=name,
        action=str(fields.get("action") or task.action),
        no_log=no_log is True,
        async_val=_int(fields.get("async_val", 0)),
        async_templated=_templated(fields.get("async_val")),
        poll=_int(fields.get("poll", 0)),
        rescuable=failed and rescuable(task),
    )


def go_first(plugin: Any, frame: Any) -> bool:
    """Put ``plugin`` first in the callback list of the TaskQueueManager sending the event.

    Ansible sends every event to the stdout callback first. Under ansible-runner that is
    awx_display, which turns the stats event's custom stats into the job's artifact data
    (what AWX shows) before any other callback sees the event: to publish the summary
    there, time_saved must handle the stats event first. Moving an item to the front keeps
    the items after it at their index, so the event being sent reaches every callback once.
    """
    while frame is not None:
        plugins = getattr(frame.f_locals.get("self"), "_callback_plugins", None)
        if isinstance(plugins, list) and any(p is plugin for p in plugins):
            plugins.remove(plugin)
            plugins.insert(0, plugin)
            return True
        frame = frame.f_back
    return False


def host_groups(host: Any) -> list[tuple[str, int]]:
    try:
        return [(group.name, int(group.depth)) for group in host.get_groups()]
    except (AttributeError, TypeError, ValueError):
        return []


class CallbackModule(CallbackBase):
    """Forwards ansible's events to a Recorder and writes what the report renders."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tplabs.async_tasks.time_saved"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: Any = None) -> None:
        super().__init__(display=display)
        self._lock = threading.Lock()
        self.recorder = Recorder()
        self._starts: dict[str, TaskInfo] = {}
        self._paths: dict[str, str | None] = {"json": None, "timeline": None, "trace": None}
        self._top = 5
        self._fold = 50
        self._stderr = False  # a machine-read stdout (json, jsonl): the recap goes to stderr

    # -- options -------------------------------------------------------------------------

    def set_options(self, task_keys=None, var_options=None, direct=None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        defaults = output.default_paths(os.environ)
        for kind in self._paths:
            self._paths[kind] = self.get_option(f"output_{kind}") or defaults.get(kind)
        stdout_callback = str(C.config.get_config_value("DEFAULT_STDOUT_CALLBACK") or "")
        self._stderr = stdout_callback.rsplit(".", 1)[-1] in ("json", "jsonl")
        self._top = self._count_option("top", 5)
        self._fold = self._count_option("fold_hosts", 50)
        self.recorder.forks = _int(context.CLIARGS.get("forks"))

    def _count_option(self, name: str, default: int) -> int:
        value = self.get_option(name)
        try:
            number = int(value)
        except (TypeError, ValueError):
            self._display.warning(
                f"time_saved: option {name}={value!r} is not an integer, using {default}"
            )
            return default
        if number < 0:
            self._display.warning(f"time_saved: option {name}={value!r} is negative, using 0")
            return 0
        return number

    # -- events ----------------------------------------------------------------------------

    def v2_playbook_on_start(self, playbook: Any) -> None:
        name = os.path.basename(getattr(playbook, "_file_name", "") or "") or "playbook"
        if output.runner_artifacts(os.environ) is not None:
            go_first(self, sys._getframe(1))
        with self._lock:
            self.recorder.playbook_start(name)

    def v2_playbook_on_play_start(self, play: Any) -> None:
        name = play.get_name().strip() if hasattr(play, "get_name") else str(play)
        key = str(getattr(play, "_uuid", "") or id(play))
        with self._lock:
            self.recorder.play_start(key, name)

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        # hot path: a task's name and action are read once, a host's groups once
        info = self._starts.get(task._uuid)
        if info is None:
            throttle = 0 if getattr(task, "run_once", False) is True else _int(task.throttle)
            info = TaskInfo(task._uuid, task.get_name(), str(task.action), throttle=throttle)
            self._starts[task._uuid] = info
        name = host.get_name()
        groups = host_groups(host) if name not in self.recorder.host_groups else ()
        with self._lock:
            self.recorder.task_start(name, info, groups)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._end(result, "changed" if result.is_changed() else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._end(result, "failed", ignore_errors)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._end(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._end(result, "unreachable")

    def _end(self, result: Any, status: str, ignore_errors: bool = False) -> None:
        host, task, fields = result_parts(result)
        info = task_info(task, fields, failed=status == "failed" and not ignore_errors)
        # hot path: only async launches and waits have result data the report reads
        wanted = info.async_val or info.async_templated or info.action in READ_ACTIONS
        data = result_data(result) if wanted else {}
        with self._lock:
            self.recorder.task_end(host.get_name(), info, status, data, bool(ignore_errors))

    def _item_end(self, result: Any) -> None:
        host, task, _fields = result_parts(result)
        with self._lock:
            self.recorder.item_end(host.get_name(), task._uuid)

    v2_runner_item_on_ok = _item_end
    v2_runner_item_on_failed = _item_end
    v2_runner_item_on_skipped = _item_end

    def v2_runner_retry(self, result: Any) -> None:
        host, task, fields = result_parts(result)
        info = task_info(task, fields)
        if info.action in READ_ACTIONS:
            data = result_data(result)
            with self._lock:
                self.recorder.retry(host.get_name(), info, data)

    def v2_runner_on_async_poll(self, result: Any) -> None:
        host, _task, _fields = result_parts(result)
        data = result_data(result)
        with self._lock:
            self.recorder.async_poll(host.get_name(), data)

    def _async_end(self, result: Any) -> None:
        host, _task, _fields = result_parts(result)
        data = result_data(result)
        with self._lock:
            self.recorder.async_end(host.get_name(), data)

    v2_runner_on_async_ok = _async_end
    v2_runner_on_async_failed = _async_end

    # -- end of playbook ---------------------------------------------------------------------

    def v2_playbook_on_stats(self, stats: Any) -> None:
        with self._lock:
            self.recorder.close(getattr(stats, "failures", None), getattr(stats, "rescued", None))
            report = build_report(self.recorder)
        self._print_recap(report)
        output.publish(stats, report)
        self.write_outputs(report)

    def write_outputs(self, report: dict[str, Any]) -> None:
        paths = self._paths
        if paths["json"]:
            self._write(paths["json"], json.dumps(report, indent=2) + "\n", "JSON report")
        if paths["timeline"]:
            if paths["timeline"].lower().endswith(".svg"):
                text = render_svg(report, standalone=True, fold_above=self._fold)
            else:
                text = render_html(report, fold_above=self._fold)
            self._write(paths["timeline"], text, "timeline")
        if paths["trace"]:
            trace = json.dumps(render_trace(report), separators=(",", ":")) + "\n"
            self._write(paths["trace"], trace, "Chrome trace")

    def _write(self, path: str, text: str, what: str) -> None:
        try:
            output.write_atomically(path, text)
        except (OSError, ValueError) as err:
            self._display.warning(f"time_saved: could not write the {what} to {path}: {err}")
        else:
            self._say(f"time_saved: {what} written to {path}")

    # -- recap ---------------------------------------------------------------------------------

    def _say(self, msg: str, color: str | None = None) -> None:
        self._display.display(msg, color=color, stderr=self._stderr)

    def _print_recap(self, report: dict[str, Any]) -> None:
        width = max(60, int(getattr(self._display, "columns", None) or 80))
        colours = {"ok": C.COLOR_OK, "warn": C.COLOR_WARN, "error": C.COLOR_ERROR}
        for line in recap(report, self._top, width):
            if not line.banner:
                self._say(line.text, color=colours.get(line.colour or ""))
            elif self._stderr:
                self._say(f"\n{line.text} " + "*" * max(3, width - len(line.text) - 1))
            else:
                self._display.banner(line.text)
