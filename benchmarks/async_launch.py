"""Benchmark: launching async jobs with async_launch against core's loop of launches.

Runs, back to back in one process, real ansible-playbook runs on generated local-connection
inventories, and prints one table per figure of issue 14 with the median of the rounds, the
load average seen before each run, and PASS or MISS for each target:

- launch: 3 hosts x 10 jobs and 20 hosts x 5 jobs (1-5 s each). The wall time of the launch
  task alone: core's `loop` + `async` + `poll: 0` against one async_launch task. Target:
  async_launch <= 1/8 of core's.
- e2e: one 5 s job on 3 hosts, the play's wall time: a synchronous task against
  async_launch with `wait: true` (and core's launch + async_wait, for reference). Target:
  async_launch wait <= synchronous + 0.3 s.
- scale: 20, 50 and 100 hosts, `forks: 20`, 3 jobs of 1, 3 and 5 s per host, five methods:
  a synchronous loop, core's loop + `async_status`/`until`/`delay: 1`, core's loop +
  async_wait, async_launch + async_wait, async_launch `wait: true`. Targets at 100 hosts:
  async_launch + async_wait >= 3x faster than synchronous and >= 2x faster than the until
  loop. Also the peak controller memory (RSS of ansible-playbook and its forked workers,
  summed, sampled every 0.1 s) per method, and a PNG plot of wall time against hosts.

"Wall" is the play's own time, from its first task's start to the end of the run (a
callback notes the times), so that ansible-playbook's start-up, the same for every method,
does not blur differences of a few tenths of a second.

Usage (from the repo root, after `make install` or with ANSIBLE_COLLECTIONS_PATH set):
    python benchmarks/async_launch.py [--repeat N] [--only launch|e2e|scale]
        [--hosts 20,50,100] [--methods a,b] [--json FILE] [--plot FILE]
A smoke run: --repeat 1 --hosts 3,5 (and --only to pick figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path

from _bench import playbook_env

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PAGE = os.sysconf("SC_PAGE_SIZE")
SCALE_FORKS = 20
SCALE_DURATIONS = [1, 3, 5]

LAUNCH_SCENARIOS = {"3x10": (3, [1, 2, 3, 4, 5] * 2), "20x5": (20, [1, 2, 3, 4, 5])}
E2E = (3, [5])

LOOP_LAUNCH = """\
- name: Launch
  ansible.builtin.command: "sleep {{ item }}"
  loop: "{{ durations }}"
  async: 600
  poll: 0
  register: launched
  changed_when: true
"""
# No filter makes a list of dicts from strings in ansible-core alone: build them in Jinja.
ONE_LAUNCH = """\
- name: Launch
  tplabs.async_tasks.async_launch:
    jobs: "{{ jobs_json | from_json }}"
EXTRA  vars:
    jobs_json: >-
      [{% for d in durations %}{{ {'argv': ['sleep', d | string]} | to_json }}{{ '' if loop.last else ',' }}{% endfor %}]
  register: launched
"""
ASYNC_WAIT = """\
- name: Wait
  tplabs.async_tasks.async_wait:
    jobs: "{{ launched }}"
"""
UNTIL = """\
- name: Wait
  ansible.builtin.async_status:
    jid: "{{ item.ansible_job_id }}"
  loop: "{{ launched.results }}"
  register: job_status
  until: job_status is finished
  retries: 600
  delay: 1
"""
SYNC = """\
- name: Jobs, synchronously
  ansible.builtin.command: "sleep {{ item }}"
  loop: "{{ durations }}"
  changed_when: true
"""

METHODS = {
    "sync": SYNC,
    "until": LOOP_LAUNCH + UNTIL,
    "core_wait": LOOP_LAUNCH + ASYNC_WAIT,
    "launch_wait": ONE_LAUNCH.replace("EXTRA", "") + ASYNC_WAIT,
    "launch_true": ONE_LAUNCH.replace("EXTRA", "    wait: true\n"),
}
LABELS = {
    "sync": "synchronous loop",
    "until": "core loop + until (delay 1)",
    "core_wait": "core loop + async_wait",
    "launch_wait": "async_launch + async_wait",
    "launch_true": "async_launch wait: true",
}
SCALE_METHODS = ["sync", "until", "core_wait", "launch_wait", "launch_true"]
E2E_METHODS = ["sync", "core_wait", "launch_true"]
LAUNCH_METHODS = ["core_wait", "launch_wait"]  # only their launch task is timed

HEADER = """\
- name: Benchmark
  hosts: bench
  gather_facts: false
  vars:
    durations: {durations}
  tasks:
"""

# Notes when each task starts and when the play ends (controller clock).
TIMER = """\
from __future__ import annotations
import json, os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.starts = []
        self.failed = 0

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.starts.append([task.get_name(), time.monotonic()])

    def v2_runner_on_failed(self, result, ignore_errors=False): self.failed += 1
    def v2_runner_on_unreachable(self, result): self.failed += 1

    def v2_playbook_on_stats(self, stats):
        end = time.monotonic()
        tasks = {}
        for (name, start), nxt in zip(self.starts, [s for _, s in self.starts[1:]] + [end]):
            tasks[name] = tasks.get(name, 0.0) + nxt - start
        play = end - self.starts[0][1] if self.starts else 0.0
        with open(os.environ["BENCH_TIMES"], "w") as f:
            json.dump({"tasks": tasks, "play": play, "failed": self.failed}, f)
"""


@dataclass
class Measure:
    walls: list[float] = field(default_factory=list)
    launches: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)  # MiB, summed over the processes
    pss: list[float] = field(default_factory=list)  # MiB, shared pages shared out
    loads: list[float] = field(default_factory=list)

    @staticmethod
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def wall(self) -> float:
        return self.median(self.walls)

    @property
    def launch(self) -> float:
        return self.median(self.launches)


def inventory(path: Path, hosts: int, async_dir: Path) -> None:
    lines = ["all:", "  children:", "    bench:", "      hosts:"]
    lines += [f"        b{i:03d}:" for i in range(1, hosts + 1)]
    lines += [
        "      vars:",
        "        ansible_connection: local",
        f"        ansible_python_interpreter: {sys.executable}",
        f"        ansible_async_dir: {async_dir}",
    ]
    path.write_text("\n".join(lines) + "\n")


class RssSampler(threading.Thread):
    """Peaks of the summed RSS and PSS of ansible-playbook and its workers (same command line).

    RSS counts the pages the forked workers share with ansible-playbook once per process;
    PSS shares them out, so its sum is the memory really in use.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.peak_pss = 0
        self.done = threading.Event()

    @staticmethod
    def _read(path: str) -> bytes | None:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def sample(self) -> tuple[int, int]:
        cmdline = self._read(f"/proc/{self.pid}/cmdline")
        if not cmdline:
            return 0, 0
        rss = pss = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            if self._read(f"/proc/{entry}/cmdline") != cmdline:
                continue
            statm = self._read(f"/proc/{entry}/statm")
            if statm:
                rss += int(statm.split()[1]) * PAGE
            for line in (self._read(f"/proc/{entry}/smaps_rollup") or b"").splitlines():
                if line.startswith(b"Pss:"):
                    pss += int(line.split()[1]) * 1024
        return rss, pss

    def run(self) -> None:
        while not self.done.wait(0.1):
            rss, pss = self.sample()
            self.peak = max(self.peak, rss)
            self.peak_pss = max(self.peak_pss, pss)


def run_once(workdir: Path, hosts: int, durations: list[int], method: str, forks: int) -> dict:
    async_dir = workdir / "async"
    shutil.rmtree(async_dir, ignore_errors=True)
    inv = workdir / "inventory.yml"
    inventory(inv, hosts, async_dir)
    book = workdir / f"{method}.yml"
    book.write_text(
        HEADER.format(durations=json.dumps(durations)) + textwrap.indent(METHODS[method], "    ")
    )
    times = workdir / "times.json"
    times.unlink(missing_ok=True)
    env = playbook_env(workdir, "bench_task_times", forks, BENCH_TIMES=str(times))
    load = os.getloadavg()[0]
    proc = subprocess.Popen(
        [str(BIN / "ansible-playbook"), "-i", str(inv), str(book)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    sampler = RssSampler(proc.pid)
    sampler.start()
    output, _unused = proc.communicate(timeout=3600)
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0 or not times.exists():
        raise RuntimeError(f"{method} failed (rc={proc.returncode}):\n{output[-3000:]}")
    data = json.loads(times.read_text())
    if data["failed"]:
        raise RuntimeError(f"{method}: {data['failed']} failed result(s):\n{output[-3000:]}")
    return {
        "wall": data["play"],
        "launch": data["tasks"].get("Launch"),
        "rss": sampler.peak / 2**20,
        "pss": sampler.peak_pss / 2**20,
        "load": load,
    }


def bench(cases: list[tuple[str, int, list[int], list[str], int]], repeat: int) -> dict:
    """cases: (figure, hosts, durations, methods, forks). Methods take turns in each round."""
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-async-launch-") as tmp:
        workdir = Path(tmp)
        (workdir / "bench_task_times.py").write_text(TIMER)
        for figure, hosts, durations, methods, forks in cases:
            for round_no in range(1, repeat + 1):
                for method in methods:
                    got = run_once(workdir, hosts, durations, method, forks)
                    measure = results.setdefault((figure, hosts, method), Measure())
                    measure.walls.append(got["wall"])
                    if got["launch"] is not None:
                        measure.launches.append(got["launch"])
                    measure.rss.append(got["rss"])
                    measure.pss.append(got["pss"])
                    measure.loads.append(got["load"])
                    launch = "-" if got["launch"] is None else f"{got['launch']:6.2f}s"
                    print(
                        f"  {figure:6} {hosts:3d} hosts round {round_no} {LABELS[method]:27} "
                        f"wall {got['wall']:7.2f}s  launch {launch}  peak RSS "
                        f"{got['rss']:7.1f} MiB (PSS {got['pss']:6.1f})  load {got['load']:5.1f}",
                        flush=True,
                    )
    return results


def verdict(ok: bool, text: str) -> str:
    return f"{'PASS' if ok else 'MISS'} {text}"


def report_launch(results: dict) -> tuple[list[str], list[str]]:
    rows = [
        "| scenario | core loop launch (s) | async_launch launch (s) | ratio | load (1 min) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for name, (hosts, durations) in LAUNCH_SCENARIOS.items():
        core = results.get(("launch", hosts, "core_wait"))
        ours = results.get(("launch", hosts, "launch_wait"))
        if core is None or ours is None:
            continue
        ratio = core.launch / ours.launch if ours.launch else float("inf")
        load = Measure.median(core.loads + ours.loads)
        rows.append(
            f"| {hosts} hosts x {len(durations)} jobs | {core.launch:.2f} | {ours.launch:.2f} | "
            f"{ratio:.1f}x | {load:.1f} |"
        )
        verdicts.append(
            verdict(
                ours.launch <= core.launch / 8,
                f"launch {name}: async_launch {ours.launch:.2f}s vs core loop {core.launch:.2f}s, "
                f"{ratio:.1f}x (target >= 8x)",
            )
        )
    return rows, verdicts


def report_e2e(results: dict) -> tuple[list[str], list[str]]:
    hosts = E2E[0]
    rows = [
        "| method | play wall (s) | vs synchronous (s) | load (1 min) |",
        "| --- | ---: | ---: | ---: |",
    ]
    sync = results.get(("e2e", hosts, "sync"))
    verdicts = []
    for method in E2E_METHODS:
        measure = results.get(("e2e", hosts, method))
        if measure is None or sync is None:
            continue
        rows.append(
            f"| {LABELS[method]} | {measure.wall:.2f} | {measure.wall - sync.wall:+.2f} | "
            f"{Measure.median(measure.loads):.1f} |"
        )
    ours = results.get(("e2e", hosts, "launch_true"))
    if sync is not None and ours is not None:
        verdicts.append(
            verdict(
                ours.wall <= sync.wall + 0.3,
                f"end to end 3x1: async_launch wait {ours.wall:.2f}s vs synchronous "
                f"{sync.wall:.2f}s, {ours.wall - sync.wall:+.2f}s (target <= +0.30s)",
            )
        )
    return rows, verdicts


def report_scale(results: dict, sizes: list[int]) -> tuple[list[str], list[str]]:
    methods = [m for m in SCALE_METHODS if any(("scale", h, m) in results for h in sizes)]
    rows = [
        "| hosts | " + " | ".join(LABELS[m] for m in methods) + " | load (1 min) |",
        "| ---: | " + " | ".join("---:" for _unused in methods) + " | ---: |",
    ]
    for hosts in sizes:
        cells = [results.get(("scale", hosts, m)) for m in methods]
        loads = [x for c in cells if c for x in c.loads]
        rows.append(
            f"| {hosts} | "
            + " | ".join("-" if c is None else f"{c.wall:.1f} s" for c in cells)
            + f" | {Measure.median(loads):.1f} |"
        )
    biggest = max(sizes)
    for what in ("rss", "pss"):
        rows.append(
            f"| peak {what.upper()} at {biggest} hosts | "
            + " | ".join(
                "-"
                if ("scale", biggest, m) not in results
                else f"{max(getattr(results[('scale', biggest, m)], what)):.0f} MiB"
                for m in methods
            )
            + " | |"
        )
    verdicts = []
    ours = results.get(("scale", biggest, "launch_wait"))
    sync = results.get(("scale", biggest, "sync"))
    until = results.get(("scale", biggest, "until"))
    if ours and sync:
        ratio = sync.wall / ours.wall
        verdicts.append(
            verdict(
                ratio >= 3,
                f"scale {biggest} hosts: async_launch + async_wait {ours.wall:.1f}s vs "
                f"synchronous {sync.wall:.1f}s, {ratio:.1f}x faster (target >= 3x)",
            )
        )
    if ours and until:
        ratio = until.wall / ours.wall
        verdicts.append(
            verdict(
                ratio >= 2,
                f"scale {biggest} hosts: async_launch + async_wait {ours.wall:.1f}s vs core "
                f"loop + until {until.wall:.1f}s, {ratio:.1f}x faster (target >= 2x)",
            )
        )
    return rows, verdicts


def plot(results: dict, sizes: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5))
    for method in SCALE_METHODS:
        points = [
            (h, results[("scale", h, method)].wall)
            for h in sizes
            if ("scale", h, method) in results
        ]
        if points:
            xs, ys = [h for h, _unused in points], [w for _unused, w in points]
            axes.plot(xs, ys, marker="o", label=LABELS[method])
    axes.set_xlabel(f"hosts (local connection, forks {SCALE_FORKS}, 3 jobs of 1, 3, 5 s each)")
    axes.set_ylabel("wall time of the play (s, median)")
    axes.set_title("async jobs on many hosts: wall time against hosts")
    axes.set_xticks(sizes)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--only", action="append", choices=["launch", "e2e", "scale"])
    parser.add_argument("--hosts", default="20,50,100", help="host counts of the scale figure")
    parser.add_argument("--methods", help=f"scale methods, among {','.join(SCALE_METHODS)}")
    parser.add_argument("--json", type=Path, help="write the measures there")
    parser.add_argument("--plot", type=Path, default=REPO / "benchmarks" / "async_launch_scale.png")
    args = parser.parse_args()
    figures = args.only or ["launch", "e2e", "scale"]
    sizes = sorted(int(h) for h in args.hosts.split(","))
    scale_methods = args.methods.split(",") if args.methods else SCALE_METHODS
    cases = []
    if "launch" in figures:
        cases += [("launch", h, d, LAUNCH_METHODS, max(h, 5)) for h, d in LAUNCH_SCENARIOS.values()]
    if "e2e" in figures:
        cases.append(("e2e", E2E[0], E2E[1], E2E_METHODS, 5))
    if "scale" in figures:
        cases += [("scale", h, SCALE_DURATIONS, scale_methods, SCALE_FORKS) for h in sizes]
    print(f"async_launch benchmark: {args.repeat} round(s), {os.cpu_count()} CPU(s)", flush=True)
    results = bench(cases, args.repeat)

    verdicts: list[str] = []
    for figure, report in (("launch", report_launch), ("e2e", report_e2e)):
        if figure in figures:
            rows, found = report(results)
            print(f"\n{figure}:\n" + "\n".join(rows))
            verdicts += found
    if "scale" in figures:
        rows, found = report_scale(results, sizes)
        print("\nscale:\n" + "\n".join(rows))
        verdicts += found
        plot(results, sizes, args.plot)
        print(f"\nplot: {args.plot}")
    print("\n" + "\n".join(verdicts))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    f"{fig}/{hosts}/{method}": vars(measure)
                    for (fig, hosts, method), measure in results.items()
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
