# Copyright: (c) 2026, tplabs
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Measure what async jobs, forks and throttle saved compared with a one-by-one run."""

from __future__ import annotations

DOCUMENTATION = r"""
name: time_saved
type: aggregate
short_description: measure the time async jobs, forks and throttle saved
version_added: 0.1.0
description:
  - Measures, on a monotonic clock, when every task starts and ends on every host and how long
    every async job really runs, then compares the wall time of each play with a
    B(sequential baseline), the time the same work would have taken done one host and one job
    after another.
  - At the end of the playbook it prints a recap for each play and for the playbook, wall
    time, sequential baseline, time saved, speed-up, then the tasks that saved the most with
    their concurrency. It can also write a JSON report and a self-contained HTML or SVG
    timeline (a Gantt chart with one lane per host).
  - B(The model.) A task on a host runs from C(v2_runner_on_start) to its C(ok), C(failed),
    C(skipped) or C(unreachable) result.
  - An async job (C(async) with C(poll=0)) runs from the start of its launch (the launch task
    on that host, or its loop item) to the moment a wait saw it finished. A wait is an
    M(ansible.builtin.async_status) result, a C(poll > 0) async task, or a
    M(tplabs.async_tasks.async_wait) result; jobs are matched to their waits by job id.
    Where the module reports its own C(start), C(end) and C(delta) (M(ansible.builtin.command),
    M(ansible.builtin.shell)) or C(elapsed) (M(tplabs.async_tasks.async_wait)), the report
    shows them too.
  - A job nobody waited for is reported as C(running_at_end) (still running at the end of the
    playbook); it adds only its launch to the baseline, as its full run is unknown.
  - B(Sequential baseline) is the sum of every host's task times, where an async launch counts
    its job's full run instead of its sub-second launch, and a wait counts only the part of
    its time when none of the jobs it reports on was running (that time is already counted
    with the jobs).
  - A job's full run is the run time the module reports itself (C(delta) of
    M(ansible.builtin.command) or M(ansible.builtin.shell), C(elapsed) of
    M(tplabs.async_tasks.async_wait)), which neither the poll delay nor the load of the
    controller inflates; when the module reports none, it is the time from the launch until a
    wait saw the job finished, an upper bound by at most one poll interval. It is never less
    than the launch itself.
  - Failed, unreachable and skipped hosts are counted as such and add nothing to the
    baseline; the recap shows the time they took separately, so they never turn into time
    saved. The same holds for failed and timed-out jobs, which count only their launch.
  - B(Wall time) runs from the first task start of the play (or playbook) to the end of the
    play (the start of the next play, or the end of the playbook). B(Time saved) is baseline
    minus wall, B(speed-up) is baseline divided by wall.
  - B(Concurrency.) For each task, the largest number of hosts running it at once and, for
    async tasks, the largest number of its jobs running at once. A job runs from its own
    start to its own end when the module reports them and the host's clock agrees with the
    controller's (within a second), else from its launch to when a wait saw it finished. With C(throttle=2) and
    C(poll=0) the first is at most 2 while the second can reach every host, which is what
    really happens. Ansible hands a freed worker slot to the next host a few milliseconds
    before it reports the previous host's result, so overlaps shorter than 0.15 s are not
    counted as concurrency.
  - Figures are measured, never estimated from C(async), C(poll) or C(delay) settings.
  - For C(no_log) tasks only the task name and times are kept, in every output (no job id,
    no loop item, no result data).
  - Files are written atomically (temporary file then rename); a path that cannot be written
    gives a warning, never a failed play.
  - Works beside any stdout callback, ansible-runner included.
requirements:
  - enable in configuration
options:
  output_json:
    description:
      - Path of a JSON report with every figure, per play, per task, per host and per job.
      - The document has a C(version) field (currently C(1)) and follows
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
        self-contained HTML page (SVG plus a table of figures) that needs no network.
    type: path
    env:
      - name: ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TIMELINE
    ini:
      - section: callback_time_saved
        key: output_timeline
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
# top = 10

# Or for one run, from the shell:
# ANSIBLE_CALLBACKS_ENABLED=tplabs.async_tasks.time_saved \
# ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_TIMELINE=timeline.svg \
#   ansible-playbook playbooks/step5.yml
#
# Sample recap (three 5 s jobs on 3 hosts, launched with poll 0, waited for with async_wait,
# on a heavily loaded 2-core machine where each launch took seconds):
# TIME SAVED [play: Time saved - async job on every host, then async_wait] *******
# wall 13.12 s (first task start to end of play), sequential baseline 15.72 s
# time saved 2.60 s, speed-up 1.20x
# hosts 3: 3 ok; jobs 3 finished
#     saved  baseline      span hosts  jobs  task
#    2.61 s   15.72 s   13.10 s     3     3  Launch the job in the background
# (hosts/jobs: most hosts running the task / most of its jobs running at once)
"""

import contextlib  # noqa: E402
import html  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

from ansible import constants as C  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402

REPORT_VERSION = 1
# Ansible starts the next host in a freed worker slot, then reports the previous host's
# result: overlaps shorter than this are a hand-off, not concurrency.
HANDOFF_TOLERANCE = 0.15
WAIT_ACTIONS = frozenset(
    {"async_status", "ansible.builtin.async_status", "ansible.legacy.async_status"}
)
ASYNC_WAIT_ACTIONS = frozenset(
    {"async_wait", "tplabs.async_tasks.async_wait", "ansible.legacy.async_wait"}
)
_DELTA = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def now() -> float:
    """The clock every measure uses (monotonic); tests patch it."""
    return time.monotonic()


@dataclass(slots=True, eq=False)
class PlayRecord:
    name: str
    opened: float
    start: float | None = None
    end: float | None = None
    tasks: list[TaskRecord] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class TaskRecord:
    uuid: str
    name: str
    action: str
    play: PlayRecord
    no_log: bool = False
    kind: str = "task"  # task | launch | poll | wait
    runs: list[HostRun] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class HostRun:
    task: TaskRecord
    host: str
    start: float
    end: float | None = None
    status: str = "running"  # ok | changed | failed | skipped | unreachable
    item_ends: list[float] | None = None
    waited: list[Job] | None = None
    counted: float = 0.0


@dataclass(slots=True, eq=False)
class Job:
    host: str
    jid: str | None
    task: TaskRecord
    launched: float | None
    launch_end: float | None
    mode: str = "background"  # background (poll: 0) | poll (poll > 0)
    finished: float | None = None
    state: str = "running"  # running | finished | failed | timeout | unknown | running_at_end
    waited_by: str | None = None
    polls: int = 0
    own: float | None = None
    reported: dict[str, Any] | None = None
    item: str | None = None
    counted: float = 0.0


def _fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def parse_delta(value: Any) -> float | None:
    """Seconds of a command module `delta` ("0:00:05.004112"), None when absent or odd."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    match = _DELTA.match(value.strip())
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def union_length(spans: list[tuple[float, float]]) -> float:
    total = 0.0
    cur_start = cur_end = None
    for start, end in sorted(spans):
        if end <= start:
            continue
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def max_overlap(spans: list[tuple[float, float]], tolerance: float = HANDOFF_TOLERANCE) -> int:
    """Largest number of spans open at once; a span's last `tolerance` seconds don't count."""
    events: list[tuple[float, int]] = []
    for start, end in spans:
        events.append((start, 1))
        events.append((max(end - tolerance, start + 1e-9), -1))
    events.sort()
    best = current = 0
    for _stamp, delta in events:
        current += delta
        best = max(best, current)
    return best


def _item_label(data: dict[str, Any]) -> str | None:
    label = data.get("_ansible_item_label", data.get(data.get("ansible_loop_var") or "item"))
    if label is None:
        return None
    text = label if isinstance(label, str) else json.dumps(label, default=str, sort_keys=True)
    return text[:200]


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".time_saved-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class CallbackModule(CallbackBase):
    """Measures task and async job times per host and reports the time parallelism saved."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tplabs.async_tasks.time_saved"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: Any = None) -> None:
        super().__init__(display=display)
        self._lock = threading.Lock()
        self._playbooks: list[str] = []
        self._started_at: float | None = None  # epoch, for the report
        self._origin: float | None = None  # monotonic time of the playbook start
        self._first_start: float | None = None
        self._end: float | None = None
        self._plays: list[PlayRecord] = []
        self._tasks: dict[str, TaskRecord] = {}
        self._open: dict[tuple[str, str], HostRun] = {}
        self._current: dict[str, HostRun] = {}
        self._jobs: dict[tuple[str, str], Job] = {}
        self._hidden: dict[str, list[Job]] = {}  # no_log launches, job id unknown
        self._hidden_waits: dict[str, float] = {}  # last no_log wait per host
        self._async_done: dict[tuple[str, str], tuple[float, int]] = {}
        self._polls: dict[tuple[str, str], int] = {}
        self._output_json: str | None = None
        self._output_timeline: str | None = None
        self._top = 5
        # a machine-read stdout (json, jsonl) must stay parsable: the recap goes to stderr
        self._stderr = False

    # -- options -----------------------------------------------------------------------

    def set_options(self, task_keys=None, var_options=None, direct=None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._output_json = self.get_option("output_json") or None
        self._output_timeline = self.get_option("output_timeline") or None
        stdout_callback = str(C.config.get_config_value("DEFAULT_STDOUT_CALLBACK") or "")
        self._stderr = stdout_callback.rsplit(".", 1)[-1] in ("json", "jsonl")
        top = self.get_option("top")
        try:
            self._top = int(top)
        except (TypeError, ValueError):
            self._display.warning(f"time_saved: option top={top!r} is not an integer, using 5")
            self._top = 5
        if self._top < 0:
            self._display.warning(f"time_saved: option top={top!r} is negative, using 0")
            self._top = 0

    # -- playbook and play events ----------------------------------------------------------

    def v2_playbook_on_start(self, playbook: Any) -> None:
        name = os.path.basename(getattr(playbook, "_file_name", "") or "") or "playbook"
        self._playbooks.append(name)
        if self._origin is None:
            self._origin = now()
            self._started_at = time.time()

    def v2_playbook_on_play_start(self, play: Any) -> None:
        stamp = now()
        with self._lock:
            if self._origin is None:
                self._origin = stamp
                self._started_at = time.time()
            if self._plays and self._plays[-1].end is None:
                self._plays[-1].end = stamp
            name = play.get_name().strip() if hasattr(play, "get_name") else str(play)
            self._plays.append(PlayRecord(name=name or "play", opened=stamp))

    # -- runner events (hot path: no I/O, no copies) -------------------------------------

    def _play(self, stamp: float) -> PlayRecord:
        if not self._plays:
            self._plays.append(PlayRecord(name="play", opened=stamp))
        return self._plays[-1]

    def _task(self, task: Any, stamp: float) -> TaskRecord:
        uuid = task._uuid
        record = self._tasks.get(uuid)
        if record is None:
            play = self._play(stamp)
            record = TaskRecord(
                uuid=uuid,
                name=task.get_name(),
                action=str(task.action),
                play=play,
                no_log=task.no_log is True,
            )
            self._tasks[uuid] = record
            play.tasks.append(record)
        return record

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        stamp = now()
        with self._lock:
            record = self._task(task, stamp)
            name = host.get_name()
            run = HostRun(task=record, host=name, start=stamp)
            record.runs.append(run)
            self._open[(name, record.uuid)] = run
            self._current[name] = run
            play = record.play
            if play.start is None:
                play.start = stamp
            if self._first_start is None:
                self._first_start = stamp

    def v2_runner_on_ok(self, result: Any) -> None:
        self._finish(result, "changed" if result.is_changed() else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._finish(result, "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._finish(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._finish(result, "unreachable")

    def _item_done(self, result: Any) -> None:
        stamp = now()
        with self._lock:
            run = self._open.get((result.host.get_name(), result.task._uuid))
            if run is not None:
                if run.item_ends is None:
                    run.item_ends = []
                run.item_ends.append(stamp)

    v2_runner_item_on_ok = _item_done
    v2_runner_item_on_failed = _item_done
    v2_runner_item_on_skipped = _item_done

    def v2_runner_on_async_poll(self, result: Any) -> None:
        # result.task is core's internal async_status task here: key on the host's run.
        jid = result.result.get("ansible_job_id")
        if jid:
            key = (result.host.get_name(), str(jid))
            with self._lock:
                self._polls[key] = self._polls.get(key, 0) + 1

    def _async_end(self, result: Any) -> None:
        stamp = now()
        data = result.result
        jid = data.get("ansible_job_id") or (data.get("async_result") or {}).get("ansible_job_id")
        if jid:
            with self._lock:
                self._async_done[(result.host.get_name(), str(jid))] = (stamp, 1)

    v2_runner_on_async_ok = _async_end
    v2_runner_on_async_failed = _async_end

    def _finish(self, result: Any, status: str) -> None:
        stamp = now()
        host = result.host.get_name()
        task = result.task
        fields = result.task_fields
        with self._lock:
            run = self._open.pop((host, task._uuid), None)
            if run is None:  # a result without a start (meta tasks, strategy skips)
                record = self._task(task, stamp)
                run = HostRun(task=record, host=host, start=stamp)
                record.runs.append(run)
                if record.play.start is None:
                    record.play.start = stamp
                if self._first_start is None:
                    self._first_start = stamp
            if self._current.get(host) is run:
                del self._current[host]
            run.end = stamp
            run.status = status
            record = run.task
            if fields.get("no_log") is True:
                record.no_log = True
            name = fields.get("name")
            if name and isinstance(name, str) and name != record.name:
                record.name = name
            action = task.action
            if action in WAIT_ACTIONS or action in ASYNC_WAIT_ACTIONS:
                record.kind = "wait"
                self._read_wait(run, result, stamp)
            elif fields.get("async_val") and status not in ("skipped", "unreachable"):
                self._read_launch(run, result, stamp, fields)

    # -- result readers (only for async launches and waits) ---------------------------------

    def _pieces(self, run: HostRun, data: dict[str, Any], stamp: float):
        """(item data, item start, item end) for a result, one per loop item."""
        items = data.get("results")
        if not isinstance(items, list):
            yield data, run.start, stamp
            return
        ends = run.item_ends or []
        previous = run.start
        for index, item in enumerate(items):
            end = ends[index] if index < len(ends) else stamp
            if isinstance(item, dict):
                yield item, previous, end
            previous = end

    def _read_launch(self, run: HostRun, result: Any, stamp: float, fields: Any) -> None:
        record = run.task
        data = result.result
        if record.no_log or data.get("censored"):
            # The job id is censored: keep a job we can only match by order on this host.
            if run.status == "failed":
                return
            record.kind = "launch" if not fields.get("poll") else "poll"
            for _item, start, end in self._pieces(run, data, stamp):
                job = Job(run.host, None, record, start, end)
                if fields.get("poll"):
                    job.mode = "poll"
                    job.finished = end
                    job.state = "unknown"
                else:
                    self._hidden.setdefault(run.host, []).append(job)
                record.jobs.append(job)
            return
        for item, start, end in self._pieces(run, data, stamp):
            jid = item.get("ansible_job_id") or (item.get("async_result") or {}).get(
                "ansible_job_id"
            )
            if not jid or item.get("skipped"):
                continue
            # core strips `failed` from the top of a result: the event says it
            failed = bool(item.get("failed")) or (item is data and run.status == "failed")
            if failed and not (fields.get("poll") or "async_result" in item):
                continue  # the launch itself failed: no job runs
            jid = str(jid)
            job = Job(run.host, jid, record, start, end, item=_item_label(item))
            if item.get("finished") or fields.get("poll") or "async_result" in item:
                # poll > 0: the task itself waited; the job ran inside the task
                record.kind = "poll"
                job.mode = "poll"
                done = self._async_done.pop((run.host, jid), None)
                job.finished = done[0] if done else end
                job.polls = self._polls.pop((run.host, jid), 0)
                job.waited_by = record.name
                self._settle(job, item, failed)
            else:
                record.kind = "launch"
            self._jobs[(run.host, jid)] = job
            record.jobs.append(job)

    def _read_wait(self, run: HostRun, result: Any, stamp: float) -> None:
        record = run.task
        data = result.result
        if record.no_log or data.get("censored"):
            self._hidden_waits[run.host] = stamp
            return
        waited: list[Job] = []
        for item, _start, end in self._pieces(run, data, stamp):
            if record.action in ASYNC_WAIT_ACTIONS:
                for entry in item.get("jobs") or []:
                    if isinstance(entry, dict) and entry.get("jid"):
                        job = self._seen(run, str(entry["jid"]), entry, end, async_wait=True)
                        if job is not None:
                            waited.append(job)
            elif item.get("ansible_job_id"):
                failed = bool(item.get("failed")) or (item is data and run.status == "failed")
                job = self._seen(run, str(item["ansible_job_id"]), item, end, False, failed)
                if job is not None:
                    waited.append(job)
        run.waited = waited

    def _seen(
        self,
        run: HostRun,
        jid: str,
        data: dict[str, Any],
        stamp: float,
        async_wait: bool,
        failed: bool = False,
    ) -> Job | None:
        job = self._jobs.get((run.host, jid))
        if job is None:
            hidden = self._hidden.get(run.host)
            if hidden:  # a no_log launch on this host: match in launch order
                job = hidden.pop(0)
                self._jobs[(run.host, jid)] = job
            else:  # launched outside this run of ansible-playbook
                job = Job(run.host, jid, run.task, None, None)
                self._jobs[(run.host, jid)] = job
        if job.finished is not None:
            return job
        if async_wait:
            state = data.get("state")
            if state in ("skipped", "launch_failed"):
                return None
            if not (data.get("finished") or state in ("failed", "timeout", "finished")):
                return job
            job.finished = stamp
            job.waited_by = run.task.name
            if state == "timeout":
                job.state = "timeout"
            elif data.get("failed") or state == "failed":
                job.state = "failed"
            else:
                job.state = "finished"
            inner = data.get("result")
            if isinstance(inner, dict) and not job.task.no_log:
                self._report(job, inner)  # the module's own delta first
            own = data.get("elapsed")
            if job.own is None and isinstance(own, int | float) and not isinstance(own, bool):
                job.own = float(own)
            return job
        if not data.get("finished"):
            return job
        job.finished = stamp
        job.waited_by = run.task.name
        self._settle(job, data, failed)
        return job

    def _settle(self, job: Job, data: dict[str, Any], failed: bool) -> None:
        msg = str(data.get("msg") or "")
        if "did not complete within the requested time" in msg or msg == "Timeout exceeded":
            job.state = "timeout"
        elif failed or data.get("failed_when_result"):
            job.state = "failed"
        else:
            job.state = "finished"
        inner = data.get("async_result")
        if not job.task.no_log:
            self._report(job, inner if isinstance(inner, dict) else data)

    @staticmethod
    def _report(job: Job, data: dict[str, Any]) -> None:
        reported = {k: data[k] for k in ("start", "end", "delta") if isinstance(data.get(k), str)}
        if reported:
            job.reported = reported
            if job.own is None:
                job.own = parse_delta(reported.get("delta"))

    # -- end of playbook -------------------------------------------------------------------

    def v2_playbook_on_stats(self, stats: Any) -> None:
        stamp = now()
        with self._lock:
            self._end = stamp
            if self._plays and self._plays[-1].end is None:
                self._plays[-1].end = stamp
            report = self.build_report()
        self._print_recap(report)
        if self._output_json:
            self._write(self._output_json, json.dumps(report, indent=2) + "\n", "JSON report")
        if self._output_timeline:
            text = (
                render_svg(report, standalone=True)
                if self._output_timeline.lower().endswith(".svg")
                else render_html(report)
            )
            self._write(self._output_timeline, text, "timeline")

    def _write(self, path: str, text: str, what: str) -> None:
        try:
            write_atomically(path, text)
        except (OSError, ValueError) as err:
            self._display.warning(f"time_saved: could not write the {what} to {path}: {err}")
        else:
            self._say(f"time_saved: {what} written to {path}")

    # -- figures -------------------------------------------------------------------------------

    def _close_jobs(self, end: float) -> None:
        for play in self._plays:
            for task in play.tasks:
                for job in task.jobs:
                    if job.finished is not None or job.launched is None:
                        continue
                    hidden_wait = self._hidden_waits.get(job.host)
                    if hidden_wait is not None and hidden_wait >= job.launched:
                        job.state = "unknown"  # a no_log wait may have seen it finish
                    else:
                        job.state = "running_at_end"

    @staticmethod
    def _job_counted(job: Job) -> float:
        """What the job adds to the baseline, its launch included."""
        if job.launched is None:
            return 0.0
        launch = max(0.0, (job.launch_end or job.launched) - job.launched)
        if job.state != "finished" or job.finished is None:
            return launch
        observed = job.finished - job.launched
        if job.own is not None:
            # the module's own measure: free of poll delays and of controller load
            return max(launch, min(observed, job.own))
        return observed

    def build_report(self) -> dict[str, Any]:
        """Every figure, as the JSON report has them (times relative to the playbook start)."""
        end = self._end if self._end is not None else now()
        origin = self._origin if self._origin is not None else (self._first_start or end)
        self._close_jobs(end)

        def rel(value: float | None) -> float | None:
            return None if value is None else round(value - origin, 4)

        plays_out = []
        total_baseline = 0.0
        failed_total = 0.0
        for play in self._plays:
            play_end = play.end if play.end is not None else end
            tasks_out = []
            jobs_out = []
            hosts: dict[str, dict[str, Any]] = {}
            baseline = 0.0
            failed_time = 0.0
            for task in play.tasks:
                task_baseline = 0.0
                host_out: dict[str, Any] = {}
                spans: list[tuple[float, float]] = []
                first = None
                last = None
                for job in task.jobs:
                    if job.mode == "background":
                        job.counted = self._job_counted(job)
                    elif job.state == "finished" and job.finished is not None:
                        job.counted = job.finished - (job.launched or job.finished)  # in its run
                for run in task.runs:
                    run_end = run.end if run.end is not None else play_end
                    duration = max(0.0, run_end - run.start)
                    spans.append((run.start, run_end))
                    first = run.start if first is None else min(first, run.start)
                    last = run_end if last is None else max(last, run_end)
                    if run.status in ("failed", "unreachable", "running"):
                        run.counted = 0.0
                        failed_time += duration
                    elif run.status == "skipped":
                        run.counted = 0.0
                    elif task.kind == "launch":
                        extra = sum(
                            job.counted - max(0.0, (job.launch_end or 0) - (job.launched or 0))
                            for job in task.jobs
                            if job.host == run.host and run.start <= (job.launched or 0) <= run_end
                        )
                        run.counted = duration + max(0.0, extra)
                    elif task.kind == "wait" and run.waited:
                        overlap = union_length(
                            [
                                (max(j.launched, run.start), min(j.finished or run_end, run_end))
                                for j in run.waited
                                if j.launched is not None
                            ]
                        )
                        run.counted = max(0.0, duration - overlap)
                    else:
                        run.counted = duration
                    task_baseline += run.counted
                    entry = host_out.setdefault(
                        run.host,
                        {"status": run.status, "start": rel(run.start), "runs": 0},
                    )
                    entry["runs"] += 1
                    entry["status"] = run.status
                    entry["end"] = rel(run_end)
                    entry["duration"] = round(duration + entry.get("duration", 0.0), 4)
                    entry["baseline"] = round(run.counted + entry.get("baseline", 0.0), 4)
                    if run.item_ends and not task.no_log:
                        entry["items"] = len(run.item_ends)
                    summary = hosts.setdefault(
                        run.host,
                        {
                            "ok": 0,
                            "changed": 0,
                            "failed": 0,
                            "skipped": 0,
                            "unreachable": 0,
                            "busy": 0.0,
                            "baseline": 0.0,
                        },
                    )
                    if run.status in summary:
                        summary[run.status] += 1
                    summary["busy"] = round(summary["busy"] + duration, 4)
                    summary["baseline"] = round(summary["baseline"] + run.counted, 4)
                job_spans = []
                for job in task.jobs:
                    if job.launched is None:
                        continue
                    job_end = job.finished if job.finished is not None else end
                    last = job_end if last is None else max(last, job_end)
                    out = self._job_out(job, rel, end)
                    own_end = self._own_end(job, origin, job_end)
                    out["own_end"] = own_end
                    out["own_start"] = None
                    if own_end is not None and job.own is not None:
                        # the job's real run on the host, free of launch and poll lag
                        out["own_start"] = round(max(own_end - job.own, out["launched"]), 4)
                        job_spans.append((origin + out["own_start"], origin + own_end))
                    else:
                        job_spans.append((job.launched, job_end))
                    jobs_out.append(out)
                span = 0.0 if first is None else max(0.0, (last or first) - first)
                baseline += task_baseline
                tasks_out.append(
                    {
                        "name": task.name,
                        "action": task.action,
                        "kind": task.kind,
                        "async": task.kind in ("launch", "poll"),
                        "no_log": task.no_log,
                        "start": rel(first),
                        "end": rel(last),
                        "span": round(span, 4),
                        "baseline": round(task_baseline, 4),
                        "saved": round(task_baseline - span, 4),
                        "hosts": host_out,
                        "max_concurrent_hosts": max_overlap(spans),
                        "max_concurrent_jobs": max_overlap(job_spans) if job_spans else None,
                        "jobs": len(job_spans),
                    }
                )
            wall = 0.0 if play.start is None else max(0.0, play_end - play.start)
            total_baseline += baseline
            failed_total += failed_time
            plays_out.append(
                {
                    "name": play.name,
                    "start": rel(play.start),
                    "end": rel(play_end),
                    **self._figures(wall, baseline),
                    "failed_time": round(failed_time, 4),
                    "hosts": hosts,
                    "tasks": tasks_out,
                    "jobs": jobs_out,
                    "job_states": _count_states(jobs_out),
                }
            )
        wall = 0.0 if self._first_start is None else max(0.0, end - self._first_start)
        started = (
            datetime.fromtimestamp(self._started_at, tz=UTC).isoformat()
            if self._started_at
            else None
        )
        all_jobs = [job for play in plays_out for job in play["jobs"]]
        return {
            "version": REPORT_VERSION,
            "playbook": ", ".join(self._playbooks) or "playbook",
            "started_at": started,
            "clock": "monotonic seconds since the playbook start",
            "wall_from": "first task start",
            "wall_to": "end of playbook",
            "start": rel(self._first_start),
            "end": rel(end),
            **self._figures(wall, total_baseline),
            "failed_time": round(failed_total, 4),
            "job_states": _count_states(all_jobs),
            "handoff_tolerance": HANDOFF_TOLERANCE,
            "plays": plays_out,
        }

    @staticmethod
    def _figures(wall: float, baseline: float) -> dict[str, float]:
        return {
            "wall": round(wall, 4),
            "baseline": round(baseline, 4),
            "saved": round(baseline - wall, 4),
            "speedup": round(baseline / wall, 4) if wall > 0 else 1.0,
        }

    def _own_end(self, job: Job, origin: float, job_end: float) -> float | None:
        """When the module says the job ended, on our clock; None unless the clocks agree."""
        if job.task.no_log or not job.reported or self._started_at is None:
            return None
        try:
            stamp = datetime.strptime(job.reported.get("end", ""), "%Y-%m-%d %H:%M:%S.%f")
        except ValueError:
            return None
        offset = stamp.timestamp() - self._started_at  # started_at was taken at `origin`
        launched = (job.launched or origin) - origin
        if launched - 1.0 <= offset <= job_end - origin + 1.0:
            return round(offset, 4)
        return None  # another timezone or a skewed host clock: don't draw a wrong mark

    @staticmethod
    def _job_out(job: Job, rel, end: float) -> dict[str, Any]:
        hidden = job.task.no_log
        duration = None
        if job.launched is not None:
            duration = round((job.finished if job.finished is not None else end) - job.launched, 4)
        out: dict[str, Any] = {
            "host": job.host,
            "jid": None if hidden else job.jid,
            "task": job.task.name,
            "mode": job.mode,
            "launched": rel(job.launched),
            "launch_end": rel(job.launch_end),
            "finished": rel(job.finished),
            "duration": duration,
            "own_duration": None if hidden or job.own is None else round(job.own, 4),
            "baseline": round(job.counted, 4),
            "state": job.state,
            "waited_by": job.waited_by,
            "polls": job.polls,
        }
        if job.reported and not hidden:
            out["reported"] = job.reported
        if job.item is not None and not hidden:
            out["item"] = job.item
        return out

    # -- recap -----------------------------------------------------------------------------

    def _print_recap(self, report: dict[str, Any]) -> None:
        if self._first_start is None:  # nothing ran (no hosts matched, --check of nothing)
            return
        plays = report["plays"]
        for play in plays:
            self._recap_block(f"TIME SAVED [play: {play['name']}]", play, "end of play")
        if len(plays) != 1:
            self._recap_block(
                f"TIME SAVED [playbook: {report['playbook']}]", report, "end of playbook"
            )

    def _say(self, msg: str, color: str | None = None) -> None:
        self._display.display(msg, color=color, stderr=self._stderr)

    def _banner(self, title: str, width: int) -> None:
        if self._stderr:
            self._say(f"\n{title} " + "*" * max(3, width - len(title) - 1))
        else:
            self._display.banner(title)

    def _recap_block(self, title: str, figures: dict[str, Any], until: str) -> None:
        width = max(60, int(getattr(self._display, "columns", None) or 80))
        self._banner(title, width)
        saved = figures["saved"]
        self._say(
            f"wall {_fmt(figures['wall'])} (first task start to {until}), "
            f"sequential baseline {_fmt(figures['baseline'])}"
        )
        self._say(
            f"time saved {_fmt(saved)}, speed-up {figures['speedup']:.2f}x",
            color=C.COLOR_OK if saved > 0 else C.COLOR_WARN,
        )
        tasks = figures.get("tasks")
        if tasks is None:  # playbook total
            tasks = [task for play in figures["plays"] for task in play["tasks"]]
            hosts: dict[str, dict[str, Any]] = {}
            for play in figures["plays"]:
                for name, counts in play["hosts"].items():
                    target = hosts.setdefault(name, dict.fromkeys(counts, 0))
                    for key, value in counts.items():
                        target[key] += value
        else:
            hosts = figures["hosts"]
        bad = sum(1 for h in hosts.values() if h["failed"] or h["unreachable"])
        line = f"hosts {len(hosts)}: {len(hosts) - bad} ok"
        if bad:
            failed = sum(1 for h in hosts.values() if h["failed"])
            unreachable = sum(1 for h in hosts.values() if h["unreachable"])
            line += f", {failed} with failures, {unreachable} unreachable"
        skipped = sum(h["skipped"] for h in hosts.values())
        if skipped:
            line += f", {skipped} skipped host-tasks"
        states = figures["job_states"]
        if states:
            line += "; jobs " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in states.items())
        self._say(line)
        if figures.get("failed_time"):
            self._say(
                f"time on failed/unreachable hosts {_fmt(figures['failed_time'])} "
                "(not counted in the baseline)",
                color=C.COLOR_ERROR,
            )
        if states.get("running_at_end"):
            self._say(
                f"{states['running_at_end']} job(s) still running at end of play, never waited "
                "for: only their launch is counted",
                color=C.COLOR_WARN,
            )
        ranked = sorted(
            (task for task in tasks if task["saved"] > 0.005), key=lambda t: -t["saved"]
        )[: self._top]
        if not self._top:
            return
        if not ranked:
            self._say("no task saved time: nothing ran in parallel long enough to show")
            return
        header = f"{'saved':>9} {'baseline':>9} {'span':>9} {'hosts':>5} {'jobs':>5}  "
        room = max(10, width - len(header) - 1)
        self._say(header + "task")
        for task in ranked:
            jobs = task["max_concurrent_jobs"]
            name = task["name"]
            if len(name) > room:
                name = name[: room - 1] + "~"
            self._say(
                f"{_fmt(task['saved']):>9} {_fmt(task['baseline']):>9} {_fmt(task['span']):>9} "
                f"{task['max_concurrent_hosts']:>5} {'-' if jobs is None else jobs:>5}  {name}"
            )
        self._say("(hosts/jobs: most hosts running the task / most of its jobs running at once)")


def _count_states(jobs: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["state"]] = counts.get(job["state"], 0) + 1
    return dict(sorted(counts.items()))


# -- timeline ------------------------------------------------------------------------------

TASK_COLOURS = {
    "ok": "#43a047",
    "changed": "#f5a623",
    "failed": "#d32f2f",
    "unreachable": "#6d1b1b",
    "skipped": "#b0b0b0",
    "running": "#9e9e9e",
}
JOB_COLOURS = {
    "finished": "#1e88e5",
    "failed": "#d32f2f",
    "timeout": "#8e24aa",
    "running_at_end": "#90a4ae",
    "unknown": "#bdbdbd",
    "running": "#90a4ae",
}
_SVG_NS = "http://www.w3.org/2000/svg"


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _nice_step(span: float, target: int = 12) -> float:
    raw = max(span, 0.001) / target
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if step >= raw:
            return float(step)
    return 3600.0 * (int(raw // 3600) + 1)


def _lanes(report: dict[str, Any]) -> list[str]:
    hosts: list[str] = []
    for play in report["plays"]:
        for task in play["tasks"]:
            for host in task["hosts"]:
                if host not in hosts:
                    hosts.append(host)
        for job in play["jobs"]:
            if job["host"] not in hosts:
                hosts.append(job["host"])
    return hosts


def _job_rows(jobs: list[dict[str, Any]], end: float) -> list[int]:
    """Sub-row of each job so that overlapping jobs of one host don't hide each other."""
    row_ends: list[float] = []
    rows = []
    for job in jobs:
        start = job["launched"]
        stop = job["finished"] if job["finished"] is not None else end
        for index, row_end in enumerate(row_ends):
            if row_end <= start:
                row_ends[index] = stop
                rows.append(index)
                break
        else:
            row_ends.append(stop)
            rows.append(len(row_ends) - 1)
    return rows


def render_svg(report: dict[str, Any], standalone: bool = True) -> str:
    """A Gantt chart: one lane per host, task bars on top, async job bars below them."""
    hosts = _lanes(report)
    end = max(report.get("end") or 0.0, 0.001)
    start0 = 0.0
    left, right, width = 150, 30, 1300
    plot_w = width - left - right
    scale = plot_w / (end - start0)

    def x(value: float | None) -> float:
        return left + ((value or 0.0) - start0) * scale

    jobs_by_host: dict[str, list[dict[str, Any]]] = {h: [] for h in hosts}
    for play in report["plays"]:
        for job in play["jobs"]:
            if job["launched"] is not None:
                jobs_by_host[job["host"]].append(job)
    task_h, job_h, gap, pad = 22, 12, 3, 8
    lane_heights = {}
    job_row_of: dict[int, int] = {}
    for host in hosts:
        jobs = sorted(jobs_by_host[host], key=lambda j: j["launched"])
        jobs_by_host[host] = jobs
        rows = _job_rows(jobs, end)
        for job, row in zip(jobs, rows, strict=True):
            job_row_of[id(job)] = row
        n_rows = (max(rows) + 1) if rows else 0
        lane_heights[host] = pad * 2 + task_h + n_rows * (job_h + gap)
    top = 134
    plays_with_start = [play for play in report["plays"] if play["start"] is not None]
    height = top + sum(lane_heights.values()) + 44 + 18 * len(plays_with_start)
    out: list[str] = []
    ns = f' xmlns="{_SVG_NS}"' if standalone else ""
    out.append(
        f'<svg{ns} viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'font-family="DejaVu Sans, Arial, sans-serif" font-size="12" role="img">'
    )
    title = (
        f"{report['playbook']}: wall {_fmt(report['wall'])}, sequential baseline "
        f"{_fmt(report['baseline'])}, saved {_fmt(report['saved'])}, "
        f"speed-up {report['speedup']:.2f}x"
    )
    out.append(f"<title>{_esc(title)}</title>")
    out.append(
        "<defs>"
        '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="white" '
        'fill-opacity="0.0"/><line x1="0" y1="0" x2="0" y2="6" stroke="white" '
        'stroke-width="2" stroke-opacity="0.55"/></pattern></defs>'
    )
    out.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')
    out.append(f'<text x="12" y="24" font-size="17" font-weight="bold">{_esc(title)}</text>')
    # legend
    legend = [
        ("task ok", TASK_COLOURS["ok"], False),
        ("task changed", TASK_COLOURS["changed"], False),
        ("task failed", TASK_COLOURS["failed"], False),
        ("skipped", TASK_COLOURS["skipped"], False),
        ("wait (lighter)", TASK_COLOURS["ok"], "wait"),
        ("async job finished", JOB_COLOURS["finished"], True),
        ("job failed", JOB_COLOURS["failed"], True),
        ("job timeout", JOB_COLOURS["timeout"], True),
        ("job running at end", JOB_COLOURS["running_at_end"], True),
        ("launch/poll lag of a job", JOB_COLOURS["finished"], "lag"),
    ]
    lx = 12
    for label, colour, job_like in legend:
        if job_like is True:
            out.append(
                f'<rect x="{lx}" y="38" width="22" height="10" fill="{colour}" stroke="#263238" '
                'stroke-width="0.8"/>'
                f'<rect x="{lx}" y="38" width="22" height="10" fill="url(#hatch)"/>'
            )
        elif job_like == "lag":
            out.append(
                f'<rect x="{lx}" y="38" width="22" height="10" fill="{colour}" '
                'fill-opacity="0.3" stroke="#263238" stroke-width="0.8"/>'
            )
        else:
            opacity = ' fill-opacity="0.45"' if job_like == "wait" else ""
            out.append(f'<rect x="{lx}" y="36" width="22" height="14" fill="{colour}"{opacity}/>')
        out.append(f'<text x="{lx + 27}" y="47">{_esc(label)}</text>')
        lx += 34 + 7 * len(label)
    out.append(
        '<text x="12" y="68" fill="#455a64">Top bar of each host lane: its tasks (lighter: '
        "waits). Bars below: its async jobs, from their launch to when a wait saw them finished, "
        "solid where the module says the job really ran.</text>"
        '<text x="12" y="84" fill="#455a64">Axis: seconds since the playbook start. Dashed '
        "lines: play starts. Hover a bar for its name and times.</text>"
    )
    # axis and grid
    axis_y = top - 8
    step = _nice_step(end - start0)
    lanes_bottom = top + sum(lane_heights.values())
    tick = 0.0
    while tick <= end + 1e-9:
        tx = x(tick)
        out.append(
            f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{lanes_bottom}" '
            'stroke="#e0e0e0" stroke-width="1"/>'
        )
        label = f"{tick:g} s"
        out.append(f'<text x="{tx:.1f}" y="{axis_y - 4}" text-anchor="middle">{label}</text>')
        tick = round(tick + step, 6)
    # lanes
    y = top
    for index, host in enumerate(hosts):
        lane_h = lane_heights[host]
        fill = "#f7f9fa" if index % 2 == 0 else "#eef2f4"
        out.append(
            f'<g class="lane" data-host="{_esc(host)}">'
            f'<rect x="0" y="{y}" width="{width}" height="{lane_h}" fill="{fill}"/>'
            f'<text x="12" y="{y + pad + 15}" font-weight="bold">{_esc(host)}</text>'
        )
        if jobs_by_host[host]:
            out.append(f'<text x="12" y="{y + pad + task_h + 12}" fill="#546e7a">jobs</text>')
        ty = y + pad
        for play in report["plays"]:
            for task in play["tasks"]:
                entry = task["hosts"].get(host)
                if entry is None:
                    continue
                bx = x(entry["start"])
                bw = max(1.5, x(entry["end"]) - bx)
                colour = TASK_COLOURS.get(entry["status"], "#9e9e9e")
                opacity = ' fill-opacity="0.45"' if task["kind"] == "wait" else ""
                tip = (
                    f"{host}: {task['name']} ({entry['status']}"
                    f"{', async launch' if task['kind'] == 'launch' else ''}"
                    f"{', wait' if task['kind'] == 'wait' else ''})\n"
                    f"start {entry['start']:.2f} s, end {entry['end']:.2f} s, "
                    f"{entry['duration']:.2f} s; counted in baseline {entry['baseline']:.2f} s"
                )
                out.append(
                    f'<rect class="task" x="{bx:.1f}" y="{ty}" width="{bw:.1f}" '
                    f'height="{task_h}" fill="{colour}"{opacity} stroke="#ffffff" '
                    f'stroke-width="0.5"><title>{_esc(tip)}</title></rect>'
                )
                fits = int((bw - 8) / 6.6)
                if fits >= 6:
                    label = task["name"]
                    if len(label) > fits:
                        label = label[: fits - 1] + "\u2026"
                    out.append(
                        f'<text x="{bx + 4:.1f}" y="{ty + 15}" font-size="11" fill="#1b1b1b" '
                        f'pointer-events="none">{_esc(label)}</text>'
                    )
        for job in jobs_by_host[host]:
            row = job_row_of[id(job)]
            jy = y + pad + task_h + gap + row * (job_h + gap)
            jx = x(job["launched"])
            stop = job["finished"] if job["finished"] is not None else end
            jw = max(1.5, x(stop) - jx)
            colour = JOB_COLOURS.get(job["state"], "#90a4ae")
            dash = ' stroke-dasharray="4 2"' if job["state"] == "running_at_end" else ""
            seen = (
                f"seen finished {job['finished']:.2f} s"
                if job["finished"] is not None
                else "still running at end of playbook"
            )
            own = f"; module says it ran {job['own_duration']:.2f} s" if job["own_duration"] else ""
            jid = f" job {job['jid']}" if job["jid"] else " job"
            item = f" [{job['item']}]" if job.get("item") else ""
            tip = (
                f"{host}:{jid} of {job['task']}{item}: {job['state'].replace('_', ' ')}\n"
                f"launched {job['launched']:.2f} s, {seen} ({job['duration']:.2f} s{own})"
            )
            own_start, own_end = job.get("own_start"), job.get("own_end")
            if own_start is not None and own_end is not None:
                tip += f"\nthe module's own run: {own_start:.2f} s to {own_end:.2f} s"
            # whole bar, light: from the launch to when a wait saw the job finished
            out.append(
                f'<g class="job"><rect x="{jx:.1f}" y="{jy}" width="{jw:.1f}" height="{job_h}" '
                f'fill="{colour}" fill-opacity="0.3" stroke="#263238" stroke-width="0.8"{dash}>'
                f"<title>{_esc(tip)}</title></rect>"
            )
            # solid and hatched: the job's own run, when the module reports it (else all)
            if own_start is not None and own_end is not None:
                sx, sw = x(own_start), max(1.5, x(own_end) - x(own_start))
            else:
                sx, sw = jx, jw
            out.append(
                f'<rect x="{sx:.1f}" y="{jy}" width="{sw:.1f}" height="{job_h}" fill="{colour}" '
                f'pointer-events="none"/><rect x="{sx:.1f}" y="{jy}" width="{sw:.1f}" '
                f'height="{job_h}" fill="url(#hatch)" pointer-events="none"/>'
            )
            out.append("</g>")
        out.append("</g>")
        y += lane_h
    # play boundaries: numbered at the top, named with their figures below the lanes
    for number, play in enumerate(plays_with_start, start=1):
        px = x(play["start"])
        following = plays_with_start[number] if number < len(plays_with_start) else None
        stop = x(following["start"]) if following else left + plot_w
        fits = max(2, int((stop - px - 8) / 6.6))
        label = f"{number}. {play['name']}"
        if len(label) > fits:
            label = label[: fits - 1] + "\u2026"
        out.append(
            f'<line x1="{px:.1f}" y1="{axis_y - 34}" x2="{px:.1f}" y2="{lanes_bottom}" '
            'stroke="#37474f" stroke-width="1" stroke-dasharray="3 3"/>'
            f'<text x="{px + 4:.1f}" y="{axis_y - 22}" fill="#37474f" font-weight="bold">'
            f"{_esc(label)}<title>{_esc(play['name'])}</title></text>"
        )
        out.append(
            f'<text x="12" y="{lanes_bottom + 20 + 18 * (number - 1)}" fill="#37474f">'
            f"{number}. {_esc(play['name'])}: wall {_fmt(play['wall'])}, baseline "
            f"{_fmt(play['baseline'])}, saved {_fmt(play['saved'])}, "
            f"speed-up {play['speedup']:.2f}x</text>"
        )
    out.append(
        f'<text x="12" y="{height - 14}" fill="#607d8b" font-size="11">'
        f"tplabs.async_tasks.time_saved, report version {report['version']}; "
        f"{_esc(report.get('started_at') or '')}</text>"
    )
    out.append("</svg>")
    text = "\n".join(out)
    if standalone:
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"
    return text


def render_html(report: dict[str, Any]) -> str:
    rows = []
    for play in report["plays"]:
        for task in play["tasks"]:
            jobs = task["max_concurrent_jobs"]
            rows.append(
                "<tr>"
                f"<td>{_esc(play['name'])}</td><td>{_esc(task['name'])}</td>"
                f"<td>{_esc(task['kind'])}</td>"
                f"<td>{task['baseline']:.2f}</td><td>{task['span']:.2f}</td>"
                f"<td>{task['saved']:.2f}</td><td>{task['max_concurrent_hosts']}</td>"
                f"<td>{'-' if jobs is None else jobs}</td></tr>"
            )
    summary = (
        f"wall {_fmt(report['wall'])} (first task start to end of playbook), sequential "
        f"baseline {_fmt(report['baseline'])}, time saved {_fmt(report['saved'])}, "
        f"speed-up {report['speedup']:.2f}x"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>time saved: {_esc(report['playbook'])}</title>"
        "<style>body{font-family:DejaVu Sans,Arial,sans-serif;margin:16px;color:#1b1b1b}"
        "svg{max-width:100%;height:auto}table{border-collapse:collapse;margin-top:16px}"
        "td,th{border:1px solid #cfd8dc;padding:3px 8px;text-align:right}"
        "td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}"
        "th{background:#eceff1}</style></head><body>\n"
        f"{render_svg(report, standalone=False)}\n"
        f"<p>{_esc(summary)}</p>\n"
        "<p>baseline: what the task's hosts would have taken one after another (an async "
        "launch counts its job's run; a wait counts nothing while its jobs run, as they are "
        "counted on their launch). span: from the task's first start to its last end, its "
        "jobs included. saved = baseline - span.</p>\n"
        "<table><thead><tr><th>play</th><th>task</th><th>kind</th><th>baseline s</th>"
        "<th>span s</th><th>saved s</th><th>max hosts at once</th><th>max jobs at once</th>"
        "</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n</body></html>\n"
    )
