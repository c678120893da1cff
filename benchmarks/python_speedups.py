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

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import cli_env, cpu_of, parse_rounds, rounds_parser
from interpreter import play_commands

BIN = Path(sys.executable).parent
VARIANTS = ("none", "zipimport cache", "gc freeze", "both")


def variables(variant: str, cache: Path) -> dict[str, str]:
    return {
        "TPLABS_ZIPIMPORT_CACHE": str(cache) if variant in ("zipimport cache", "both") else "",
        "TPLABS_GC_FREEZE": "1" if variant in ("gc freeze", "both") else "",
    }


def installed() -> bool:
    probe = "import sys; print(any(getattr(h, 'cache_directory', None) for h in sys.path_hooks))"
    env = dict(os.environ, TPLABS_ZIPIMPORT_CACHE="/nonexistent")
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() == "True"


def main() -> int:
    parser = rounds_parser(__doc__)
    args = parse_rounds(parser)
    if not installed():
        parser.error(f"{sys.executable}: the speed-ups are not in this venv (make venv)")
    with tempfile.TemporaryDirectory(prefix="bench-speedups-") as tmp:
        commands = play_commands(
            Path(tmp), smoke=["ansible-playbook", "tests/integration/playbooks/smoke.yml"]
        )
        cache = Path(tmp) / "zipimport"
        load_before = os.getloadavg()[0]
        samples: dict[str, dict[str, list[float]]] = {
            c: {v: [] for v in VARIANTS} for c in commands
        }
        for n in range(args.rounds):
            order = VARIANTS[n % len(VARIANTS) :] + VARIANTS[: n % len(VARIANTS)]
            for name, argv in commands.items():
                for variant in order:
                    env = cli_env(BIN, **variables(variant, cache))
                    samples[name][variant].append(cpu_of(argv, env))
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
