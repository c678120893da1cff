"""Benchmark: waiting for async jobs with async_wait against core's ways, on real hosts.

Runs, back to back in one process, each method on each scenario with real ansible-playbook
runs, and prints a table of wall time, overhead beyond the longest job and remote round
trips spent waiting, then the ratios the targets of issue 3 are about.

Methods: synchronous tasks; the lab's `async_status` + `until` loop with `delay: 10` and
`delay: 1`; `poll: N` (async with polling in the task); and `tplabs.async_tasks.async_wait`.
Scenarios: 3 hosts x 1 job of 5 s; 3 hosts x 5 jobs of 1-5 s (a loop); 20 hosts x 3 jobs.
Inventories: the local connection (always) and Incus containers (when `incus` works;
`--no-incus` to skip, `--incus-big` to run the 20-host scenario there too).

Usage (from the repo root, after `make install` or with ANSIBLE_COLLECTIONS_PATH set):
    python benchmarks/async_wait.py [--repeat N] [--only SCENARIO] [--methods a,b] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from _bench import playbook_env

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
IMAGE = os.environ.get("BENCH_INCUS_IMAGE", "tplabs/debian-bookworm")
POLL_N = 1

SCENARIOS = {
    "3x1": (3, [5]),
    "3x5": (3, [1, 2, 3, 4, 5]),
    "20x3": (20, [1, 3, 5]),
}

HEADER = textwrap.dedent(
    """\
    - name: Benchmark
      hosts: bench
      gather_facts: false
      vars:
        durations: {durations}
      tasks:
    """
)

METHODS = {
    "sync": """\
    - name: Jobs, synchronously
      ansible.builtin.command: "sleep {{ item }}"
      loop: "{{ durations }}"
      changed_when: true
""",
    "until_10": """\
    - name: Launch
      ansible.builtin.command: "sleep {{ item }}"
      loop: "{{ durations }}"
      async: 600
      poll: 0
      register: launched
      changed_when: true
    - name: Wait, the lab's step 4 way
      ansible.builtin.async_status:
        jid: "{{ item.ansible_job_id }}"
      loop: "{{ launched.results }}"
      register: job_status
      until: job_status is finished
      retries: 600
      delay: 10
""",
    "poll_n": f"""\
    - name: Jobs, async with poll {POLL_N}
      ansible.builtin.command: "sleep {{{{ item }}}}"
      loop: "{{{{ durations }}}}"
      async: 600
      poll: {POLL_N}
      changed_when: true
""",
    "async_wait": """\
    - name: Launch
      ansible.builtin.command: "sleep {{ item }}"
      loop: "{{ durations }}"
      async: 600
      poll: 0
      register: launched
      changed_when: true
    - name: Wait with async_wait
      tplabs.async_tasks.async_wait:
        jobs: "{{ launched }}"
""",
}
METHODS["until_1"] = METHODS["until_10"].replace("delay: 10", "delay: 1")
ORDER = ["sync", "until_10", "until_1", "poll_n", "async_wait"]
LABELS = {
    "sync": "synchronous",
    "until_10": "until, delay 10",
    "until_1": "until, delay 1",
    "poll_n": f"poll: {POLL_N}",
    "async_wait": "async_wait",
}

# Counts the remote round trips spent waiting: async_status attempts of an until loop,
# async polls of `poll: N`, and async_wait's own `polls`.
COUNTER = """\
from __future__ import annotations
import json, os, time
from datetime import datetime
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_round_trips"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.trips = 0
        self.failed = 0
        self.last_end = {}   # host -> epoch of its last job's own end (the module's "end")
        self.seen_at = {}    # host -> epoch when the controller got the result showing it

    def _ends(self, res):
        found = [res.get("end")] + [(j.get("result") or {}).get("end") for j in res.get("jobs") or []]
        for end in found:
            if isinstance(end, str):
                try:
                    yield datetime.strptime(end, "%Y-%m-%d %H:%M:%S.%f").timestamp()
                except ValueError:
                    pass

    def _count(self, result, failed=False):
        res = result._result
        ends = list(self._ends(res))
        if ends:
            host = result._host.get_name()
            self.last_end[host] = max([self.last_end.get(host, 0.0), *ends])
            self.seen_at[host] = time.time()
        if result._task.action.endswith("async_status"):
            self.trips += int(res.get("attempts", 1))
        elif result._task.action.endswith("async_wait"):
            self.trips += int(res.get("polls", 0))
        self.failed += int(failed)

    def v2_runner_item_on_ok(self, result): self._count(result)
    def v2_runner_item_on_failed(self, result): self._count(result, True)
    def v2_runner_on_ok(self, result):
        if "results" not in result._result: self._count(result)
    def v2_runner_on_failed(self, result, ignore_errors=False):
        if "results" not in result._result: self._count(result, True)
    def v2_runner_on_unreachable(self, result): self.failed += 1
    def v2_runner_on_async_poll(self, result): self.trips += 1
    def v2_runner_on_async_ok(self, result): self.trips += 1
    def v2_runner_on_async_failed(self, result): self.trips += 1

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["BENCH_COUNTS"], "w") as f:
            lags = [self.seen_at[h] - self.last_end[h] for h in self.last_end]
            notice = sum(lags) / len(lags) if lags else None
            json.dump({"round_trips": self.trips, "failed": self.failed, "notice": notice}, f)
"""


@dataclass
class Measure:
    walls: list[float] = field(default_factory=list)
    trips: list[int] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    notices: list[float] = field(default_factory=list)
    failed: int = 0

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def round_trips(self) -> int:
        return int(statistics.median(self.trips))


def local_inventory(path: Path, hosts: int) -> None:
    lines = ["all:", "  children:", "    bench:", "      hosts:"]
    lines += [f"        b{i:02d}:" for i in range(1, hosts + 1)]
    lines += [
        "      vars:",
        "        ansible_connection: local",
        f"        ansible_python_interpreter: {sys.executable}",
    ]
    path.write_text("\n".join(lines) + "\n")


def incus_works() -> bool:
    if not shutil.which("incus"):
        return False
    try:
        ok = subprocess.run(
            ["incus", "image", "info", IMAGE], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return ok.returncode == 0


class IncusHosts:
    """Containers for one benchmark run: a per-run prefix, no network device, always deleted."""

    def __init__(self, count: int) -> None:
        self.prefix = f"bench-{secrets.token_hex(3)}"
        self.names = [f"{self.prefix}-h{i:02d}" for i in range(1, count + 1)]

    def __enter__(self) -> IncusHosts:
        procs = [
            subprocess.Popen(["incus", "launch", IMAGE, n], stdout=subprocess.DEVNULL)
            for n in self.names
        ]
        for proc in procs:
            if proc.wait() != 0:
                self.__exit__()
                raise RuntimeError("incus launch failed")
        deadline = time.monotonic() + 120
        for name in self.names:
            while subprocess.run(
                ["incus", "exec", name, "--", "python3", "-c", "1"],
                capture_output=True,
                check=False,
            ).returncode:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"{name} never ran python3")
                time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.names:
            subprocess.run(["incus", "delete", "-f", name], capture_output=True, check=False)

    def inventory(self, path: Path) -> None:
        lines = ["all:", "  children:", "    bench:", "      hosts:"]
        for name in self.names:
            lines += [f"        {name.rsplit('-', 1)[1]}:", f"          ansible_host: {name}"]
        lines += [
            "      vars:",
            "        ansible_connection: community.general.incus",
            "        ansible_python_interpreter: /usr/bin/python3",
        ]
        path.write_text("\n".join(lines) + "\n")


def run_once(
    workdir: Path, inventory: Path, method: str, durations: list[int], hosts: int
) -> tuple[float, int, int, float | None]:
    book = workdir / f"{method}.yml"
    book.write_text(
        HEADER.format(durations=json.dumps(durations)) + textwrap.indent(METHODS[method], "  ")
    )
    counts = workdir / "counts.json"
    counts.unlink(missing_ok=True)
    env = playbook_env(workdir, "bench_round_trips", max(hosts, 5), BENCH_COUNTS=str(counts))
    start = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(book)],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1800,
        check=False,
    )
    wall = time.monotonic() - start
    if proc.returncode != 0 or not counts.exists():
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise RuntimeError(f"{method} failed (rc={proc.returncode}):\n{tail}")
    data = json.loads(counts.read_text())
    return wall, data["round_trips"], data["failed"], data["notice"]


def bench(where: str, inventory_for, scenarios: list[str], methods: list[str], repeat: int) -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-async-wait-") as tmp:
        workdir = Path(tmp)
        (workdir / "bench_round_trips.py").write_text(COUNTER)
        for scenario in scenarios:
            hosts, durations = SCENARIOS[scenario]
            inventory = workdir / f"inventory-{scenario}.yml"
            with inventory_for(hosts, inventory):
                # Methods take turns within each round, so a load that comes and goes on the
                # machine weighs on all of them alike; the median of the rounds is reported.
                for method in methods:
                    results[(where, scenario, method)] = Measure()
                for round_no in range(1, repeat + 1):
                    for method in methods:
                        measure = results[(where, scenario, method)]
                        load = os.getloadavg()[0]
                        wall, trips, failed, notice = run_once(
                            workdir, inventory, method, durations, hosts
                        )
                        if notice is not None:
                            measure.notices.append(notice)
                        measure.loads.append(load)
                        measure.walls.append(wall)
                        measure.trips.append(trips)
                        measure.failed += failed
                        print(
                            f"  {where:6} {scenario:5} round {round_no} {LABELS[method]:16} "
                            f"wall {wall:6.1f}s  round trips {trips:4d}  load {load:5.1f}  "
                            f"last job end to result {'-' if notice is None else f'{notice:.2f}s'}",
                            flush=True,
                        )
    return results


class LocalHosts:
    def __init__(self, hosts: int, inventory: Path) -> None:
        local_inventory(inventory, hosts)

    def __enter__(self) -> LocalHosts:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class IncusInventory:
    def __init__(self, hosts: int, inventory: Path) -> None:
        self.hosts = IncusHosts(hosts)
        self.inventory = inventory

    def __enter__(self) -> IncusInventory:
        self.hosts.__enter__()
        self.hosts.inventory(self.inventory)
        return self

    def __exit__(self, *exc: object) -> None:
        self.hosts.__exit__()


def table(results: dict, methods: list[str]) -> tuple[str, list[str]]:
    rows = [
        "| inventory | scenario | method | wall (s) | overhead beyond longest job (s) | wait round trips | last job end to result (s) | load (1 min) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts: list[str] = []
    groups = sorted(
        {(w, s) for (w, s, _m) in results},
        key=lambda g: (g[0] != "local", list(SCENARIOS).index(g[1])),
    )
    for where, scenario in groups:
        longest = max(SCENARIOS[scenario][1])
        over = {
            m: results[(where, scenario, m)].wall - longest
            for m in methods
            if (where, scenario, m) in results
        }
        for method in methods:
            if (where, scenario, method) not in results:
                continue
            measure = results[(where, scenario, method)]
            rows.append(
                f"| {where} | {scenario} | {LABELS[method]} | {measure.wall:.1f} | {over[method]:.1f} | "
                f"{measure.round_trips if method != 'sync' else '-'} | "
                f"{statistics.median(measure.notices) if measure.notices else float('nan'):.2f} | "
                f"{statistics.median(measure.loads):.1f} |"
            )
        if {"async_wait", "sync", "until_10", "until_1"} <= set(over):
            aw = results[(where, scenario, "async_wait")]
            u1 = results[(where, scenario, "until_1")]
            extra = over["async_wait"] - over["sync"]
            ratio10 = (
                over["until_10"] / over["async_wait"] if over["async_wait"] > 0 else float("inf")
            )
            trips = u1.round_trips / aw.round_trips if aw.round_trips else float("inf")
            checks = [
                (
                    extra <= 1.0,
                    f"overhead {over['async_wait']:.1f}s is {extra:+.1f}s over synchronous (target <= +1.0s)",
                ),
                (
                    ratio10 >= 3.0,
                    f"{ratio10:.1f}x less overhead than until/delay 10 (target >= 3x)",
                ),
                (
                    over["async_wait"] < over["until_1"],
                    f"overhead {over['async_wait']:.1f}s vs {over['until_1']:.1f}s for until/delay 1 (target: less)",
                ),
                (trips >= 5.0, f"{trips:.1f}x fewer round trips than until/delay 1 (target >= 5x)"),
            ]
            for ok, text in checks:
                verdicts.append(f"{'PASS' if ok else 'MISS'} {where} {scenario}: {text}")
    return "\n".join(rows), verdicts


def main() -> int:
    # A stopped run still deletes its containers (the context managers run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds (methods take turns); the median is reported"
    )
    parser.add_argument(
        "--only", action="append", choices=list(SCENARIOS), help="scenario(s) to run"
    )
    parser.add_argument("--methods", default=",".join(ORDER), help=f"comma-separated, from {ORDER}")
    parser.add_argument("--no-incus", action="store_true", help="local inventory only")
    parser.add_argument(
        "--incus-big", action="store_true", help="also run the 20-host scenario on Incus"
    )
    parser.add_argument("--json", type=Path, help="write the raw figures there")
    opts = parser.parse_args()
    methods = [m for m in opts.methods.split(",") if m]
    unknown = sorted(set(methods) - set(ORDER))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {ORDER}")
    scenarios = opts.only or list(SCENARIOS)

    print(
        f"async_wait benchmark: scenarios {scenarios}, methods {methods}, repeat {opts.repeat}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results = bench("local", LocalHosts, scenarios, methods, opts.repeat)
    if opts.no_incus:
        print("Incus: skipped (--no-incus)")
    elif not incus_works():
        print(f"Incus: not available (no incus, or no image {IMAGE}): local inventory only")
    else:
        on_incus = [s for s in scenarios if s != "20x3" or opts.incus_big]
        results.update(bench("incus", IncusInventory, on_incus, methods, opts.repeat))

    text, verdicts = table(results, methods)
    print()
    print(text)
    print()
    print("\n".join(verdicts))
    if opts.json:
        opts.json.write_text(
            json.dumps(
                [
                    {
                        "inventory": w,
                        "scenario": s,
                        "method": m,
                        "walls": r.walls,
                        "load_1min": r.loads,
                        "last_job_end_to_result": r.notices,
                        "round_trips": r.trips,
                    }
                    for (w, s, m), r in results.items()
                ],
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
