# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The async job model of the collection: job ids, job states, job files.

Private to the collection: no guarantee of a stable interface outside it. Shared by the
controller-side plugins (async_wait, time_saved, the filters) and the modules that run on
the hosts (async_job_poll, async_launch): it imports nothing but the standard library, so
that AnsiballZ can ship it to any host.

A job file is what ansible-core's ``async_wrapper`` writes in the async directory, named by
the job id, and what ``ansible.builtin.async_status`` reads:

- while the job runs: ``{"started": true, "finished": false, "ansible_job_id": JID}``;
- at the end: the module's own result (no ``started`` key), or, when the job reached its
  ``async`` limit, ``{"msg": "Timeout exceeded", "failed": true, "child_pid": PID}``.

The collection adds, in the same format (so async_status reads them as it reads core's):

- a queued job of async_launch: the running record plus ``"queued": true``;
- the record async_wait writes when it kills a job: ``"finished": true, "failed": true``
  plus ``KILLED_MARK: true``;
- in a running or queued record written by async_launch, ``PROCESS_KEY`` names the
  supervisor process (``pid``, ``starttime`` in clock ticks since boot as in
  ``/proc/<pid>/stat``, ``pgid``, ``uid``), so that a waiter can tie the job to its
  processes with certainty instead of by command line; once the job runs, its
  ``PROCESS_JOB_KEY`` entry names the job's own process (``pid``, ``pgid``, ``starttime``),
  so that one job of a launch can be stopped without stopping the others.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
from dataclasses import dataclass
from typing import Any

# -- job ids -----------------------------------------------------------------------------

# Core draws j<random below 10**12>.<pid of the wrapper>; pids stay below 2**22 on Linux.
# Both parts are bounded so that a job id always makes a valid file name.
JID_PREFIX_PATTERN = r"j[0-9]{1,18}"
JID_PATTERN = JID_PREFIX_PATTERN + r"\.[0-9]{1,10}"
JID_RE = re.compile(JID_PATTERN)
JID_PREFIX_RE = re.compile(JID_PREFIX_PATTERN)
JID_FORMAT = "j<digits>.<digits>"

DEFAULT_ASYNC_DIR = "~/.ansible_async"

# Keys the collection adds to job records (see the module docstring).
KILLED_MARK = "killed_by_async_wait"
QUEUED_KEY = "queued"
PROCESS_KEY = "_tplabs_process"
PROCESS_JOB_KEY = "job"  # inside PROCESS_KEY: the job's own process, once it runs
TIMEOUT_MSG = "Timeout exceeded"


def is_jid(value: Any) -> bool:
    """True for a string in core's job id format."""
    return isinstance(value, str) and JID_RE.fullmatch(value) is not None


def is_jid_prefix(value: Any) -> bool:
    """True for the random part of a job id, as core passes it to async_wrapper."""
    return isinstance(value, str) and JID_PREFIX_RE.fullmatch(value) is not None


def jid_prefix(jid: str) -> str:
    """The random part of a job id (what core passes to async_wrapper on its command line)."""
    return jid.split(".", 1)[0]


def jid_pid(jid: str) -> int:
    """The pid part of a job id: the launching process (core) or the supervisor (async_launch)."""
    return int(jid.split(".", 1)[1])


# -- job states --------------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    """What a state means to a waiter and to a report."""

    name: str
    ended: bool  # the job will not change any more (or can never be waited for)
    failed: bool  # the wait counts it as a failure
    has_result: bool  # the job's own result was read from its job file
    meaning: str


QUEUED = "queued"
RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
TIMEOUT = "timeout"
KILLED = "killed"
KILL_FAILED = "kill_failed"
ORPHANED = "orphaned"
UNKNOWN = "unknown"
CORRUPT = "corrupt"
SKIPPED = "skipped"
LAUNCH_FAILED = "launch_failed"

STATES: dict[str, JobState] = {
    state.name: state
    for state in (
        JobState(QUEUED, False, False, False, "launched, waiting for a free slot on the host"),
        JobState(RUNNING, False, False, False, "running"),
        JobState(FINISHED, True, False, True, "ended with success"),
        JobState(FAILED, True, True, True, "ended with a failure (its own result says why)"),
        JobState(TIMEOUT, True, True, True, "killed on the host at its own async limit"),
        JobState(KILLED, True, True, False, "killed by async_wait after the wait timed out"),
        JobState(KILL_FAILED, False, True, False, "async_wait could not kill it: it may still run"),
        JobState(ORPHANED, True, True, False, "its file says running but nothing runs it"),
        JobState(UNKNOWN, True, True, False, "no job file for this job id"),
        JobState(CORRUPT, True, True, False, "its job file cannot be read as a job record"),
        JobState(SKIPPED, True, False, False, "skipped at launch: nothing ran"),
        JobState(LAUNCH_FAILED, True, True, False, "the launch failed: nothing to wait for"),
    )
}
ACTIVE_STATES = frozenset(name for name, state in STATES.items() if not state.ended)
ENDED_STATES = frozenset(name for name, state in STATES.items() if state.ended)
FAILED_STATES = frozenset(name for name, state in STATES.items() if state.failed)
RESULT_STATES = frozenset(name for name, state in STATES.items() if state.has_result)


# -- durations -----------------------------------------------------------------------------

_DELTA_RE = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def parse_delta(value: Any) -> float | None:
    """Seconds of a command module ``delta`` ("0:00:05.004", "1 day, 0:00:03"); None if odd."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _DELTA_RE.match(value.strip())
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


# -- job records ---------------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})


def flag(value: Any) -> bool:
    """A record's started/finished flag: true, 1 and "1"/"true" are set; "false", "0" are not."""
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    if isinstance(value, (bool, int, float)):
        return bool(value)
    return False


def record_state(record: dict) -> str:
    """The state a parsed job record stands for (queued, running, or how the job ended)."""
    if flag(record.get("started")) and not flag(record.get("finished")):
        return QUEUED if flag(record.get(QUEUED_KEY)) else RUNNING
    if record.get(KILLED_MARK) is True:
        return KILLED
    if record.get("msg") == TIMEOUT_MSG and "child_pid" in record:
        return TIMEOUT
    return FAILED if flag(record.get("failed")) else FINISHED


@dataclass
class JobFile:
    """One read of a job file. ``record`` is set when ``kind`` is ``record``."""

    path: str
    kind: str  # missing | corrupt | record
    record: dict | None = None
    reason: str = ""
    mtime: float | None = None
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None  # permission bits
    size: int | None = None
    # (device, inode, size, mtime in ns) of what was read: the same key means the same content.
    key: tuple | None = None
    too_big: bool = False  # over the size cap: not read at all

    @property
    def state(self) -> str:
        if self.kind == "missing":
            return UNKNOWN
        if self.kind == "corrupt" or self.record is None:
            return CORRUPT
        return record_state(self.record)


# A job file bigger than this is not read back on every poll: its job is reported from its
# size alone until it ends (and a finished result that big is reported truncated).
DEFAULT_MAX_BYTES = 16 * 1024 * 1024

_OPEN_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_OPEN_READ |= getattr(os, "O_CLOEXEC", 0)


def job_path(async_dir: str, jid: str) -> str:
    """The job file of a job id; refuses anything that is not a job id."""
    if not is_jid(jid):
        raise ValueError(f"invalid job id {jid!r}: expected {JID_FORMAT}")
    return os.path.join(async_dir, jid)


def read_job_file(
    path: str, max_bytes: int = DEFAULT_MAX_BYTES, previous: JobFile | None = None
) -> JobFile:
    """Read a job file without following symlinks, blocking on FIFOs or raising.

    Every problem with this one file is reported in the result (kind ``corrupt`` and the
    reason), never raised: one bad file must not break the wait for the other jobs.
    With ``previous`` (an earlier read of the same path), a file whose device, inode, size
    and mtime are unchanged is not read again: ``previous`` is returned as it is.
    """
    try:
        fd = os.open(path, _OPEN_READ)
    except FileNotFoundError:
        return JobFile(path, "missing")
    except OSError as err:
        if err.errno == errno.ELOOP:
            return JobFile(path, "corrupt", reason="a symbolic link, not a job file")
        if err.errno == errno.ENAMETOOLONG:
            return JobFile(path, "missing", reason="file name too long")
        return JobFile(path, "corrupt", reason=f"cannot open it: {err.strerror or err}")
    try:
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if previous is not None and previous.key == key and previous.path == path:
            return previous
        found = JobFile(
            path,
            "corrupt",
            mtime=info.st_mtime,
            uid=info.st_uid,
            gid=info.st_gid,
            mode=stat.S_IMODE(info.st_mode),
            size=info.st_size,
            key=key,
        )
        if not stat.S_ISREG(info.st_mode):
            found.reason = "not a regular file"
            return found
        if info.st_size > max_bytes:
            found.reason = f"{info.st_size} bytes, over the {max_bytes}-byte limit"
            found.too_big = True
            return found
        chunks = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        raw = b"".join(chunks)
    except OSError as err:
        return JobFile(path, "corrupt", reason=f"cannot read it: {err.strerror or err}")
    finally:
        os.close(fd)
    return _parse(found, raw, max_bytes)


def _parse(found: JobFile, raw: bytes, max_bytes: int) -> JobFile:
    if len(raw) > max_bytes:
        found.reason = f"over the {max_bytes}-byte limit"
        return found
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        found.reason = f"not UTF-8 ({err.reason} at byte {err.start})"
        return found
    if not text.strip():
        found.reason = "empty file"
        return found
    try:
        data = json.loads(text)
    except RecursionError:
        found.reason = "JSON nested too deep"
        return found
    except ValueError as err:
        found.reason = f"not JSON ({err}): {text[:200]!r}"
        return found
    if not isinstance(data, dict):
        found.reason = f"not a JSON object: {text[:200]!r}"
        return found
    found.kind = "record"
    found.record = data
    return found


def write_job_file(
    path: str, record: dict, mode: int = 0o600, owner: tuple[int, int] | None = None
) -> None:
    """Replace a job file atomically: a new file (O_EXCL, never a link) renamed over it.

    The temporary name is unique to this writer, so a planted ``<jid>.tmp`` (a symlink to
    somewhere else) is neither followed nor overwritten. ``mode`` and ``owner`` (uid, gid)
    let a writer keep those of the file it replaces (a root waiter rewriting a user's job).
    """
    directory, name = os.path.split(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    for attempt in range(100):
        tmp = os.path.join(directory, f".{name}.{os.getpid()}.{attempt}.tmp")
        try:
            fd = os.open(tmp, flags, mode & 0o777)
        except FileExistsError:
            continue
        break
    else:
        raise OSError(errno.EEXIST, f"no free temporary name for {path}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode & 0o777)  # whatever the umask
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                os.fchown(handle.fileno(), *owner)
            json.dump(record, handle)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- what a job record may weigh in a reply ------------------------------------------------

DEFAULT_RESULT_MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64  # deeper records are not sent back whole (JSON encoders recurse)


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        if isinstance(item, dict):
            todo.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, level + 1) for v in item)
    return deepest


def _cut(value: Any, width: int) -> Any:
    if isinstance(value, str) and len(value) > width:
        return f"{value[:width]}... [{len(value) - width} more characters cut]"
    if isinstance(value, list):
        keep = max(8, width // 16)
        head = [_cut(v, width) for v in value[:keep]]
        if len(value) > keep:
            head.append(f"... [{len(value) - keep} more items cut]")
        return head
    if isinstance(value, dict):
        return {k: _cut(v, width) for k, v in value.items()}
    return value


def shrink_record(record: dict, max_bytes: int = DEFAULT_RESULT_MAX_BYTES) -> tuple[dict, bool]:
    """A job record small enough to send back: (record, truncated).

    Long strings and lists are cut (with a note saying how much) until the JSON fits in
    ``max_bytes``; failing that, or for a record nested too deep, only its top-level
    scalars are kept. The file on the host keeps the whole record.
    """
    if _depth(record) <= MAX_DEPTH:
        if len(json.dumps(record)) <= max_bytes:
            return record, False
        width = max(64, max_bytes // 4)
        while width >= 64:
            cut = _cut(record, width)
            if len(json.dumps(cut)) <= max_bytes:
                return cut, True
            width //= 2
    scalars = {
        k: _cut(v, 256)
        for k, v in record.items()
        if v is None or isinstance(v, (bool, int, float, str))
    }
    while scalars and len(json.dumps(scalars)) > max_bytes:
        scalars.popitem()
    return scalars, True
