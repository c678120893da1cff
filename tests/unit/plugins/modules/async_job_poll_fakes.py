"""Real processes and real job files shaped like ansible-core's async jobs, for the tests of
async_job_poll and _proc; and a way to run the module's main() as Ansible runs it.

Every process started here runs `sleep` (nothing else) and is killed by `FakeJobs.stop()`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ansible.module_utils import basic

from ansible_collections.tplabs.async_tasks.plugins.modules import async_job_poll

# The process layout of core's async_wrapper (ansible-core 2.19): the first process prints
# the job id and exits once the job file exists; a setsid'd intermediate exits too; the
# supervisor waits for the module child, which is in a process group of its own and runs
# the job (here `sleep`), then writes the result.
FAKE_WRAPPER = r"""
import json, os, signal, subprocess, sys
prefix, limit, module = sys.argv[1], sys.argv[2], sys.argv[3]
jid = "%s.%d" % (prefix, os.getpid())
path = os.path.join(os.environ["ANSIBLE_ASYNC_DIR"], jid)
seconds = os.environ.get("FAKE_SECONDS", "3600")
if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

def jwrite(data):
    with open(path + ".part", "w") as handle:
        json.dump(data, handle)
    os.rename(path + ".part", path)

r, w = os.pipe()
if os.fork():
    os.close(w)
    os.read(r, 1)
    print(jid, flush=True)
    os._exit(0)
os.close(r)
os.setsid()
if os.fork():
    os._exit(0)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
child = os.fork()
if child == 0:
    os.setpgid(0, 0)
    jwrite({"started": True, "finished": False, "ansible_job_id": jid})
    os.write(w, b"x")
    os.close(w)
    rc = subprocess.call(["sleep", seconds])
    jwrite({"rc": rc, "changed": True, "cmd": ["sleep", seconds], "stdout": "", "stderr": ""})
    os._exit(0)
os.close(w)
try:
    os.setpgid(child, child)
except OSError:
    pass
os.waitpid(child, 0)
os._exit(0)
"""

# An interpreter shim as some hosts have (ansible_python_interpreter pointing at a script).
SHIM = 'exec "$FAKE_PYTHON" -X utf8 "$@"\n'
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every user, unlike a venv under /root


@dataclass
class FakeJob:
    jid: str
    async_dir: Path
    tmpdir: Path  # the launch's temp dir, as core makes it (holds the args: secrets)

    @property
    def path(self) -> Path:
        return self.async_dir / self.jid

    @property
    def prefix(self) -> str:
        return self.jid.split(".")[0]

    def processes(self) -> list[int]:
        """Live processes of this job: those started for it (by their launch temp dir)."""
        return sorted(pid for pid, _unused in session_members(str(self.tmpdir)))

    def kill(self) -> None:
        """The job dies without writing its result: SIGKILL its processes, and wait until none
        is live. A signal takes effect when its process next runs: on a loaded machine a poll
        right after os.kill() could still see one running."""
        deadline = time.monotonic() + 30
        while (pids := self.processes()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        assert not self.processes(), f"{self.jid}: processes {self.processes()} outlived SIGKILL"


def session_members(marker: str) -> list[tuple[int, int]]:
    """(pid, sid) of every live process in the sessions of processes naming ``marker``."""
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X"):
            continue
        procs[int(entry)] = (int(fields[3]), marker.encode() in argv)
    sessions = {sid for sid, marked in procs.values() if marked}
    own = os.getsid(0)
    return [(pid, sid) for pid, (sid, _unused) in procs.items() if sid in sessions and sid != own]


class FakeJobs:
    """Start core-shaped jobs; stop() kills every process they started."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.count = 0
        self.started: list[FakeJob] = []

    def start(
        self,
        async_dir: Path,
        seconds: int = 3600,
        uid: int | None = None,
        shim: bool = False,
        ignore_term: bool = False,
        prefix: str | None = None,
    ) -> FakeJob:
        self.count += 1
        tmpdir = self.base / f"ansible-tmp-1795000000.{self.count}-{os.getpid()}-{self.count}"
        tmpdir.mkdir(parents=True)
        wrapper = tmpdir / "async_wrapper.py"
        wrapper.write_text(FAKE_WRAPPER)
        module = tmpdir / "AnsiballZ_command.py"
        module.write_text("# the module would be here\n")
        (tmpdir / "args").write_text("password=secret\n")
        python = SYSTEM_PYTHON if uid is not None else sys.executable
        prefix = prefix or f"j{int(time.time() * 1000) % 10**9}{self.count:03d}"
        argv = [python, str(wrapper), prefix, "600", str(module), "_"]
        if shim:
            script = tmpdir / "python-shim"
            script.write_text(SHIM)
            argv = ["/bin/sh", str(script), *argv[1:]]
        env = dict(os.environ, ANSIBLE_ASYNC_DIR=str(async_dir), FAKE_SECONDS=str(seconds))
        env["FAKE_PYTHON"] = python
        if ignore_term:
            env["FAKE_IGNORE_TERM"] = "1"
        if uid is not None:
            for path in (tmpdir, *tmpdir.iterdir()):
                os.chown(path, uid, uid)
        out = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            preexec_fn=None if uid is None else _drop_to(uid),
        )
        job = FakeJob(out.stdout.strip(), async_dir, tmpdir)
        self.started.append(job)
        deadline = time.monotonic() + 30
        while len(job.processes()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)  # the supervisor, the module child and its sleep
        return job

    def stop(self) -> None:
        for _unused in range(3):
            for job in self.started:
                for pid, _sid in session_members(str(job.tmpdir)):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            if not any(job.processes() for job in self.started):
                return
            time.sleep(0.2)


def _drop_to(uid: int):
    def drop() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    return drop


# -- running the module ----------------------------------------------------------------


def module_under_test():
    """The module whose main() the tests run: the collection's, or the file named by
    TPLABS_POLL_MODULE (to run the same tests against another version of it)."""
    path = os.environ.get("TPLABS_POLL_MODULE")
    if not path:
        return async_job_poll
    spec = importlib.util.spec_from_file_location("async_job_poll_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hide_proc(hidepid: bool = False) -> None:
    """In this (forked) process only: an empty /proc, as on a host without one; or, with
    hidepid, a /proc that shows each user only their own processes."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) != 0:  # MS_REC | MS_PRIVATE
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    if hidepid:
        done = libc.mount(b"proc", b"/proc", b"proc", 0, b"hidepid=2")
    else:
        done = libc.mount(b"tmpfs", b"/proc", b"tmpfs", 0, None)
    if done != 0:
        raise OSError(ctypes.get_errno(), "mount on /proc")


def run_poll(
    module,
    uid: int | None = None,
    no_proc: bool = False,
    hidepid: bool = False,
    setup=None,
    timeout: float = 120,
    **args,
) -> dict:
    """module.main() with these arguments, in a child process (as another user, without
    /proc, or after ``setup()`` when asked); its JSON reply, or {"crashed": traceback}."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        out = os.fdopen(write_fd, "w")
        try:
            if no_proc or hidepid:
                hide_proc(hidepid)
            if uid is not None:
                _drop_to(uid)()
            if setup is not None:
                setup()
            sys.stdout = out
            basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
            basic._ANSIBLE_PROFILE = "legacy"
            module.main()
        except SystemExit:
            pass
        except BaseException:
            out.write(json.dumps({"crashed": traceback.format_exc()}))
        finally:
            with contextlib.suppress(Exception):
                out.flush()
            os._exit(0)
    os.close(write_fd)
    chunks = []
    deadline = time.monotonic() + timeout
    with os.fdopen(read_fd, "rb") as pipe:
        while True:
            left = deadline - time.monotonic()
            ready, _unused, _unused = select.select([pipe], [], [], max(0.0, left))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"hung": f"no reply in {timeout:g}s", "partial": b"".join(chunks).decode()}
            chunk = os.read(pipe.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    text = b"".join(chunks).decode()
    try:
        return json.loads(text)
    except ValueError:
        return {"crashed": f"not JSON: {text[:2000]!r}"}


def jobs_by_jid(reply: dict) -> dict:
    assert "jobs" in reply, f"no jobs in the reply: {json.dumps(reply)[:3000]}"
    return {job["jid"]: job for job in reply["jobs"]}
