"""Benchmark: size of the time_saved HTML timeline and its open time in headless Chromium.

Builds the report of a synthetic run of 100 hosts (4 inventory groups) x 50 tasks, 10 of
them async launches waited for with async_wait, through the callback's own Recorder and
report builder, renders the HTML timeline folded by group (the default above 50 hosts)
and unfolded (one lane per host), then opens each in headless Chromium:

- size: bytes of the page, and per host-task;
- open time: measured in the page (``performance.now()`` at the load event after a forced
  layout: parse + style + layout of the whole page), median and minimum of ``--repeat``
  runs, beside the same for a page with one line of text (Chromium's own set-up); and the
  wall time of ``chromium --headless --screenshot`` minus that of the text page.

Target (issue 9): 100 hosts x 50 tasks opens in under 2 s. With ``--screenshot FILE`` it
also saves a screenshot of the folded page (docs/images/timeline-folded.png).

Usage (from the repo root): python benchmarks/timeline_open.py [--repeat N] [--screenshot F]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-file-access-from-files",
]
PROBE = (
    "<script>addEventListener('load',()=>{document.body.offsetHeight;"
    "document.title='OPEN_MS='+performance.now().toFixed(1)})</script>"
)


def collection_path() -> None:
    farm = REPO / ".cache" / "collections"
    link = farm / "ansible_collections" / "tplabs" / "async_tasks"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    sys.path.insert(0, str(farm))


def synthetic_report(hosts: int = 100, tasks: int = 50, groups: int = 4) -> dict:
    """The report of a run where every host runs every task, 4 hosts' worth of forks at once."""
    collection_path()
    from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_model import (
        TaskInfo,
    )
    from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_recorder import (
        Recorder,
    )
    from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_report import (
        build_report,
    )

    now = [0.0]
    rec = Recorder(clock=lambda: now[0], wall_clock=lambda: 1_800_000_000.0 + now[0])
    rec.playbook_start("site.yml")
    names = [f"node{n:03d}" for n in range(hosts)]
    group_names = ("web", "db", "cache", "batch")[:groups]
    rec.play_start("play", "A play on 100 hosts")
    for number in range(tasks):
        launch = number % 5 == 0
        info = TaskInfo(
            uuid=f"t{number}",
            name=f"Task {number}" + (" (async launch)" if launch else ""),
            action="ansible.builtin.command",
            async_val=60 if launch else 0,
        )
        base = now[0]
        for index, host in enumerate(names):
            now[0] = base + index * 0.01
            rec.task_start(host, info, [(group_names[index % groups], 1)])
        for index, host in enumerate(names):
            now[0] = base + 0.2 + index * 0.012
            data = {"changed": True}
            if launch:
                data.update(ansible_job_id=f"j{number}{index}.{index + 1}", started=True)
            rec.task_end(host, info, "changed", data)
        now[0] += 0.1
        if launch:
            wait = TaskInfo(
                uuid=f"w{number}", name=f"Wait {number}", action="tplabs.async_tasks.async_wait"
            )
            start = now[0]
            for index, host in enumerate(names):
                now[0] = start + index * 0.01
                rec.task_start(host, wait, [])
            for index, host in enumerate(names):
                now[0] = start + 3.0 + index * 0.01
                jid = f"j{number}{index}.{index + 1}"
                job = {
                    "jid": jid,
                    "state": "finished",
                    "finished": True,
                    "elapsed": 2.5,
                    "ended_ago": 0.3,
                }
                rec.task_end(host, wait, "ok", {"jobs": [job]})
            now[0] += 0.1
    now[0] += 0.5
    rec.close()
    return build_report(rec)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no chromium found (apt-get install chromium)")


def run_chromium(args: list[str]) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        start = time.monotonic()
        proc = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return time.monotonic() - start, proc.stdout


def open_ms(page: Path) -> float:
    """Milliseconds from navigation to the load event plus a forced layout, in the page."""
    _wall, dom = run_chromium(["--dump-dom", page.as_uri()])
    found = re.search(r"OPEN_MS=([0-9.]+)", dom)
    if not found:
        sys.exit(f"no measure in the dumped page of {page}")
    return float(found.group(1))


def screenshot_seconds(page: Path, out: Path) -> float:
    wall, _dom = run_chromium([f"--screenshot={out}", "--window-size=1400,900", page.as_uri()])
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--screenshot", type=Path, help="save the folded page's screenshot here")
    args = parser.parse_args()
    collection_path()
    from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._time_saved_html import (
        render_html,
    )

    report = synthetic_report()
    host_tasks = sum(len(t["hosts"]) for p in report["plays"] for t in p["tasks"])
    with tempfile.TemporaryDirectory(prefix="timeline-") as tmp:
        scratch = Path(tmp)
        # the reference: one line of text (Chromium's own text set-up, no timeline)
        blank = scratch / "text.html"
        blank.write_text(f"<!DOCTYPE html><html><body><p>time_saved</p>{PROBE}</body></html>")
        pages = {}
        for name, fold in (("folded", 50), ("unfolded", 0)):
            text = render_html(report, fold_above=fold)
            pages[name] = scratch / f"{name}.html"
            pages[name].write_text(text.replace("</body>", PROBE + "</body>"))
            size = len(text.encode())
            print(f"{name}: {size} bytes, {size / host_tasks:.1f} bytes per host-task")
        blank_walls = [
            screenshot_seconds(blank, scratch / "b.png") for _unused in range(args.repeat)
        ]
        blanks = [open_ms(blank) for _unused in range(args.repeat)]
        blank_ms = statistics.median(blanks)
        print(
            f"text page: opens in {blank_ms:.0f} ms (in-page, median; min {min(blanks):.0f}), "
            f"screenshot {statistics.median(blank_walls):.2f} s"
        )
        for name, page in pages.items():
            inside = [open_ms(page) for _unused in range(args.repeat)]
            walls = [
                screenshot_seconds(page, scratch / f"{name}.png") for _unused in range(args.repeat)
            ]
            extra = statistics.median(walls) - statistics.median(blank_walls)
            print(
                f"{name}: opens in {statistics.median(inside):.0f} ms (in-page, median of "
                f"{args.repeat}; min {min(inside):.0f}, max {max(inside):.0f}; "
                f"{statistics.median(inside) - blank_ms:+.0f} ms over the text page); "
                f"screenshot {statistics.median(walls):.2f} s "
                f"wall, {extra:+.2f} s over the text page"
            )
        if args.screenshot:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            clean = scratch / "shot.html"
            clean.write_text(render_html(report))
            screenshot_seconds(clean, args.screenshot.resolve())
            print(f"screenshot: {args.screenshot}")
    print(f"{host_tasks} host-tasks; target: opens in under 2 s")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
