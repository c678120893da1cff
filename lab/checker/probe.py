# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the checker looks at on a host, in one round trip (runs there: stdlib, Python 3.7+).

Run as ``python3 -c SOURCE REQUESTS HOST ASYNC_DIR MARK`` (by `raw`: hosts.py passes SOURCE
and REQUESTS base64-encoded, its loader decodes them). REQUESTS is JSON, {host: request}, each
request with ``jobs`` ({jid: text the job's processes carry on their command
line}), ``files`` (paths to read) and ``touch`` (paths to create, after the jobs are read).
Prints JSON: the host's ``now``, ASYNC_DIR expanded here, and for each job its job file
(parsed record, mtime) with the command module's ``start``/``end`` turned into epoch seconds
by this host's clock and time zone, and the processes still carrying its jid; for each file
whether it exists, its mtime and its first 4 KiB.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime

LIMIT = 4096
MARK = "lab-checker-probe"  # on every probe's command line: probes never count as a job's process
MODULE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def epoch(text):
    try:
        return time.mktime(datetime.strptime(text, MODULE_TIME).timetuple()) + (
            datetime.strptime(text, MODULE_TIME).microsecond / 1e6
        )
    except (TypeError, ValueError):
        return None


def processes(needles):
    found = {needle: [] for needle in needles}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if MARK in cmdline:
            continue
        for needle in needles:
            if needle and needle in cmdline:
                found[needle].append(int(entry))
    return found


def job(path):
    out = {"path": path, "exists": os.path.isfile(path)}
    if not out["exists"]:
        return out
    try:
        out["mtime"] = os.stat(path).st_mtime
        with open(path, "rb") as handle:
            raw = handle.read(1024 * 1024)
        record = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as err:
        out["error"] = str(err)
        return out
    if isinstance(record, dict):
        for key in ("stdout", "stderr"):
            if isinstance(record.get(key), str):
                record[key] = record[key][:LIMIT]
        record.pop("stdout_lines", None)
        record.pop("stderr_lines", None)
        out["record"] = record
        out["start"] = epoch(record.get("start"))
        out["end"] = epoch(record.get("end"))
    else:
        out["error"] = "not a JSON object"
    return out


def main(requests, host, async_dir):
    request = requests.get(host, {})
    async_dir = os.path.expanduser(async_dir or "~/.ansible_async")
    jobs = request.get("jobs") or {}
    running = processes(sorted(set(jobs.values())))
    reply = {
        "now": time.time(),
        "python": sys.version.split()[0],
        "async_dir": async_dir,
        "jobs": {},
        "files": {},
    }
    for jid, needle in jobs.items():
        found = job(os.path.join(async_dir, jid))
        found["pids"] = running.get(needle, [])
        reply["jobs"][jid] = found
    for path in request.get("touch") or []:
        with open(os.path.expanduser(path), "a"):
            pass
    for path in request.get("files") or []:
        path = os.path.expanduser(path)
        item = {"exists": os.path.isfile(path)}
        if item["exists"]:
            try:
                item["mtime"] = os.stat(path).st_mtime
                with open(path, "rb") as handle:
                    item["text"] = handle.read(LIMIT).decode("utf-8", "replace")
            except OSError as err:
                item["error"] = str(err)
        reply["files"][path] = item
    print(json.dumps(reply))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3])  # argv[4]: MARK
