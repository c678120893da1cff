"""CPU that the test runs' Python speed-ups save (tests/python_speedups.py).

Runs the same ansible-playbook commands on the 3 local hosts of inventories/local.yml with
neither speed-up (the baseline: Python as it comes), the zip-import bytecode cache alone, the
GC frozen at the first fork alone, and both (as `make test` runs), alternated, the order
rotated each round, and prints per command the median CPU seconds (ansible-playbook, its
workers and the modules it waited for; not the async jobs, which detach) and the ratio
against the baseline:

- ``play``: a command, an async launch waited for with ``async_status`` until/retries, and a
  templated ``set_fact`` (as benchmarks/interpreter.py);
- ``smoke``: tests/integration/playbooks/smoke.yml (two async jobs a host, one async_wait).

    python benchmarks/python_speedups.py [--rounds 6] [--json FILE]

Needs `make venv` (it puts the speed-ups in the venv). The cache starts empty in a directory
of its own, so its first run compiles as the baseline does. The load average before and
after is printed; alternation spreads the machine's changes of speed over the variants.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from interpreter import PLAY

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
VARIANTS = ("none", "zipimport cache", "gc freeze", "both")


def variables(variant: str, cache: Path) -> dict[str, str]:
    return {
        "TPLABS_ZIPIMPORT_CACHE": str(cache) if variant in ("zipimport cache", "both") else "",
        "TPLABS_GC_FREEZE": "1" if variant in ("gc freeze", "both") else "",
    }


def cpu_of(argv: list[str], extra: dict[str, str]) -> float:
    """CPU seconds of one run of argv (it and every process it waited for)."""
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=os.environ.get(
            "ANSIBLE_COLLECTIONS_PATH", str(REPO / ".collections")
        ),
        ANSIBLE_NOCOLOR="1",
        **extra,
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed (rc {done.returncode}):\n{done.stdout[-2000:]}")
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def installed() -> bool:
    probe = "import sys; print(any(getattr(h, 'cache_directory', None) for h in sys.path_hooks))"
    env = dict(os.environ, TPLABS_ZIPIMPORT_CACHE="/nonexistent")
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() == "True"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be 1 or more, got {args.rounds}")
    if not installed():
        parser.error(f"{sys.executable}: the speed-ups are not in this venv (make venv)")
    with tempfile.TemporaryDirectory(prefix="bench-speedups-") as tmp:
        play = Path(tmp) / "play.yml"
        play.write_text(PLAY)
        commands = {
            "play": ["ansible-playbook", str(play)],
            "smoke": ["ansible-playbook", "tests/integration/playbooks/smoke.yml"],
        }
        cache = Path(tmp) / "zipimport"
        load_before = os.getloadavg()[0]
        samples: dict[str, dict[str, list[float]]] = {
            c: {v: [] for v in VARIANTS} for c in commands
        }
        for n in range(args.rounds):
            order = VARIANTS[n % len(VARIANTS) :] + VARIANTS[: n % len(VARIANTS)]
            for name, argv in commands.items():
                for variant in order:
                    samples[name][variant].append(cpu_of(argv, variables(variant, cache)))
        load_after = os.getloadavg()[0]
    print(f"{args.rounds} rounds, load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"{'command':<8} {'variant':<16} {'median CPU s':>13} {'/ none':>7}")
    report = {"rounds": args.rounds, "load": [load_before, load_after], "commands": {}}
    for name in commands:
        base = statistics.median(samples[name]["none"])
        for variant in VARIANTS:
            median = statistics.median(samples[name][variant])
            print(f"{name:<8} {variant:<16} {median:13.2f} {median / base:7.2f}")
        report["commands"][name] = samples[name]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
