"""Cost of async_job_poll's kill (mode=kill) against the number of running jobs.

Starts N running jobs shaped like ansible-core's async jobs as far as the kill is concerned
(a wrapper process whose command line is `<interpreter> .../async_wrapper.py <prefix> <limit>
<module> _`, in a session of its own, that wrote a running job file and runs `sleep`), then
runs the poll module's main() once with mode=kill on all of them, and reports the wall time,
the CPU time of the module and what it says of the jobs. Every process started is killed.

    python benchmarks/poll_kill.py [--jobs 200 1800] [--module PATH] [--timeout S] [--json FILE]

--module runs another version of the module (a copy of plugins/modules/async_job_poll.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / ".cache" / "collections"), str(REPO)]

from tests.unit.plugins.modules.async_job_poll_fakes import (  # noqa: E402
    module_under_test,
    run_poll,
    session_members,
)

# The wrapper, in sh to keep 1,800 jobs light: it records itself as running (its pid is the
# job id's pid part, as async_launch does) and runs the job.
WRAPPER = """\
printf '{"started": true, "finished": false, "ansible_job_id": "%s.%s"}' "$1" "$$" \
    > "$ASYNC_DIR/.$1.$$" && mv "$ASYNC_DIR/.$1.$$" "$ASYNC_DIR/$1.$$"
sleep 600
"""


def start_jobs(base: Path, count: int) -> tuple[list[str], list[subprocess.Popen]]:
    launch = base / "ansible-tmp-1-2-3"
    async_dir = base / "async"
    launch.mkdir()
    async_dir.mkdir()
    script = launch / "async_wrapper.py"
    script.write_text(WRAPPER)
    env = dict(os.environ, ASYNC_DIR=str(async_dir))
    procs, jids = [], []
    for n in range(count):
        prefix = f"j{900000000 + n}"
        # setsid execs in place (a Popen child is no group leader): a session of its own.
        argv = ["setsid", "sh", str(script), prefix, "600", str(launch / "AnsiballZ_x.py"), "_"]
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
        procs.append(proc)
        jids.append(f"{prefix}.{proc.pid}")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if sum(1 for jid in jids if (async_dir / jid).exists()) == count:
            return jids, procs
        time.sleep(0.2)
    raise SystemExit(f"only some of the {count} jobs wrote their file")


def measure(module, count: int, timeout: float) -> dict:
    base = Path(tempfile.mkdtemp(prefix="poll-kill-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        jids, procs = start_jobs(base, count)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        reply = run_poll(
            module, jids=jids, async_dir=str(base / "async"), mode="kill", timeout=timeout
        )
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        killed_files = sum(
            1
            for jid in jids
            if '"killed_by_async_wait": true' in (base / "async" / jid).read_text()
        )
        left = len(session_members(str(base)))
        states = Counter(j["state"] for j in reply.get("jobs", []))
        return {
            "jobs": count,
            "wall_s": round(wall, 2),
            "cpu_s": round(
                (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2
            ),
            "states": dict(states) or {"no reply": reply.get("hung") or reply.get("crashed")},
            "killed_records": killed_files,
            "processes_left": left,
        }
    finally:
        for pid, _sid in session_members(str(base)):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[200, 1800])
    parser.add_argument("--module", help="another async_job_poll.py to measure")
    parser.add_argument("--timeout", type=float, default=3600, help="give up on one kill after S s")
    parser.add_argument("--json", help="write the figures to this file too")
    args = parser.parse_args()
    if args.module:
        os.environ["TPLABS_POLL_MODULE"] = args.module
    module = module_under_test()
    rows = []
    print("| jobs | wall s | module CPU s | states | killed records | processes left |")
    print("| ---: | ---: | ---: | --- | ---: | ---: |")
    for count in args.jobs:
        row = measure(module, count, args.timeout)
        rows.append(row)
        print(
            f"| {row['jobs']} | {row['wall_s']} | {row['cpu_s']} | {row['states']} "
            f"| {row['killed_records']} | {row['processes_left']} |",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
