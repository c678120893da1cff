"""CPU that Ansible spends under two Python builds: the Makefile's choice of the venv's Python.

Runs the same ansible-playbook commands from two venvs, each with the requirements installed
(``python -m venv DIR && DIR/bin/pip install -r requirements.txt``), alternated, the order
swapped each round, and prints per command the median CPU seconds (ansible-playbook, its
workers and the modules it waited for) and the ratio against the first venv (the baseline):

- ``play``: a play on the 3 hosts of inventories/local.yml: a command, an async launch waited
  for with ``async_status`` until/retries, and a templated ``set_fact``;
- ``syntax``: ``ansible-playbook --syntax-check playbooks/site.yml`` (what ansible-lint does
  for each playbook).

    python benchmarks/interpreter.py BASELINE_VENV OTHER_VENV [--rounds 6] [--json FILE]
    python benchmarks/interpreter.py .venv /tmp/venv-distro

The load average before and after is printed: CPU time, unlike wall time, depends little on
the load, but on a shared machine the speed of a core varies; the alternation spreads that.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import cli_env, parse_rounds, rounds_parser
from _bench import cpu_of as run_cpu

PLAY = """\
- name: Interpreter benchmark
  hosts: lab
  gather_facts: false
  tasks:
    - name: A command
      ansible.builtin.command: "true"
      changed_when: false
    - name: An async job
      ansible.builtin.command: sleep 1
      async: 20
      poll: 0
      register: bench_job
      changed_when: true
    - name: Wait for it
      ansible.builtin.async_status:
        jid: "{{ bench_job.ansible_job_id }}"
      register: bench_status
      until: bench_status is finished
      retries: 10
      delay: 1
    - name: Template something
      ansible.builtin.set_fact:
        bench_x: "{{ range(100) | map('string') | join(',') }}"
"""


def cpu_of(venv: Path, argv: list[str]) -> float:
    """CPU seconds of one run of argv from venv/bin (it and every process it waited for)."""
    return run_cpu(argv, cli_env(venv / "bin"), f"{venv}: ")


def play_commands(tmp: Path, **more: list[str]) -> dict[str, list[str]]:
    """The command `play` (PLAY, written in tmp), then `more`."""
    play = tmp / "play.yml"
    play.write_text(PLAY)
    return {"play": ["ansible-playbook", str(play)], **more}


def describe(venv: Path) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{venv} (Python {done.stdout.strip()}, {(venv / 'bin' / 'python').resolve()})"


def main() -> int:
    parser = rounds_parser(__doc__)
    parser.add_argument("venvs", nargs=2, type=Path, help="baseline venv, then the other")
    args = parse_rounds(parser)
    for venv in args.venvs:
        if not (venv / "bin" / "ansible-playbook").exists():
            parser.error(f"{venv}: no bin/ansible-playbook (pip install -r requirements.txt)")
    with tempfile.TemporaryDirectory(prefix="bench-interpreter-") as tmp:
        commands = play_commands(
            Path(tmp), syntax=["ansible-playbook", "--syntax-check", "playbooks/site.yml"]
        )
        load_before = os.getloadavg()[0]
        samples: dict[str, dict[str, list[float]]] = {c: {} for c in commands}
        for n in range(args.rounds):
            order = args.venvs if n % 2 == 0 else list(reversed(args.venvs))
            for name, argv in commands.items():
                for venv in order:
                    samples[name].setdefault(str(venv), []).append(cpu_of(venv, argv))
        load_after = os.getloadavg()[0]
    base, other = (str(v) for v in args.venvs)
    print(f"baseline: {describe(args.venvs[0])}")
    print(f"other:    {describe(args.venvs[1])}")
    print(f"{args.rounds} rounds, load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"{'command':<8} {'baseline CPU s':>15} {'other CPU s':>12} {'other/baseline':>15}")
    report = {"rounds": args.rounds, "load": [load_before, load_after], "commands": {}}
    for name in commands:
        b = statistics.median(samples[name][base])
        o = statistics.median(samples[name][other])
        print(f"{name:<8} {b:15.2f} {o:12.2f} {o / b:15.2f}")
        report["commands"][name] = {"baseline": b, "other": o, "samples": samples[name]}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
