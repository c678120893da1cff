"""Benchmark: many hosts over SSH, synchronous against async + async_wait, and what SSH costs.

Starts its own sshd on a free port of 127.0.0.1 (never the system's: its own host key, a
user key, authorized_keys and config under .cache/ssh-bench/, git-ignored; stopped at the
end, also on SIGTERM/Ctrl-C) and reaches it as host01..hostNN, all at 127.0.0.1, each with
its own ControlPersist master, as a fleet of N machines would be reached. The "hosts" run
their modules on this machine, so the figures show the controller-side cost of SSH (one
ssh process, a master and its channels per host) next to the local connection.

For each host count (default 20 and 50) and transport (local, ssh, ssh with pipelining),
it runs the same job on every host (`sleep --seconds`) synchronously, as a core async
launch (`async`, `poll: 0`) waited for with tplabs.async_tasks.async_wait, and launched by
tplabs.async_tasks.async_launch then waited for with async_wait. It prints wall time, the
speed-up against the synchronous run, the controller's CPU time (ansible-playbook and its
workers; not the SSH masters, which ssh detaches) and, over SSH, the SSH connections and
session channels sshd saw (from its own log). With --mitogen DIR (the site-packages directory
of a mitogen install, holding ansible_mitogen/) the ssh rows also run synchronously with
Mitogen's mitogen_linear strategy (async_wait does not accept Mitogen's job ids).

Usage (from the repo root, after `make install` or with ANSIBLE_COLLECTIONS_PATH set):
    python benchmarks/ssh_scale.py [--hosts 20,50] [--seconds 10] [--forks 10]
        [--repeat N] [--transports local,ssh,ssh+pipelining] [--mitogen DIR] [--json FILE]
A quick check that it works: python benchmarks/ssh_scale.py --hosts 3 --seconds 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.helpers import ansible_env  # noqa: E402

STATE = REPO / ".cache" / "ssh-bench"
# Without openssh-server on the machine, its .debs are unpacked under STATE (no service
# is installed or started): apt-get download, dpkg -x.
PACKAGES = ["openssh-server", "openssh-sftp-server", "libwrap0"]

PLAYBOOK = """\
- name: Jobs on every host
  hosts: bench
  gather_facts: false
  tasks:
    - name: The job, synchronously
      ansible.builtin.command: "sleep {{ seconds }}"
      changed_when: true
      when: method == 'sync'

    - name: The job, launched in the background
      ansible.builtin.command: "sleep {{ seconds }}"
      async: 600
      poll: 0
      register: job
      changed_when: true
      when: method == 'async_wait'

    - name: Wait for the jobs with async_wait
      tplabs.async_tasks.async_wait:
        jobs: "{{ job }}"
        timeout: 600
      when: method == 'async_wait'

    - name: The job, launched by async_launch (a plain module run, so it can be pipelined)
      tplabs.async_tasks.async_launch:
        jobs:
          - cmd: "sleep {{ seconds }}"
        async: 600
      register: launched
      when: method == 'async_launch'

    - name: Wait for them with async_wait
      tplabs.async_tasks.async_wait:
        jobs: "{{ launched }}"
        timeout: 600
      when: method == 'async_launch'
"""

# --long-poll: launch, then mark sshd's log (from the controller: no SSH), then wait; the
# channels after the mark are the wait's own.
LONG_POLL = """\
- name: Launch one job per host
  hosts: bench
  gather_facts: false
  tasks:
    - name: The job, in the background
      ansible.builtin.command: "sleep {{ seconds }}"
      async: 600
      poll: 0
      register: job
      changed_when: true

- name: Mark where the wait starts
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Note sshd's log size and the time
      ansible.builtin.copy:
        content: "{{ {'offset': lookup('ansible.builtin.pipe', 'stat -c %s ' ~ sshd_log) | int, 'at': now().timestamp()} | to_json }}"
        dest: "{{ mark_file }}"
        mode: "0600"

- name: Wait for the jobs
  hosts: bench
  gather_facts: false
  tasks:
    - name: Wait with async_wait
      tplabs.async_tasks.async_wait:
        jobs: "{{ job }}"
        window: "{{ window }}"
        timeout: 600
      register: waited_async_wait
      when: method == 'async_wait'

    - name: Wait with the lab's until loop
      ansible.builtin.async_status:
        jid: "{{ job.ansible_job_id }}"
      register: waited_until
      until: waited_until.finished
      retries: 600
      delay: 1
      when: method == 'until'

- name: Keep how many round trips each wait made
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write them, and the time
      ansible.builtin.copy:
        content: >-
          {{ {'at': now().timestamp(), 'trips': groups.bench | map('extract', hostvars, 'waited_async_wait')
          | map(attribute='polls') | list if method == 'async_wait' else groups.bench
          | map('extract', hostvars, 'waited_until') | map(attribute='attempts') | list} | to_json }}
        dest: "{{ counts_file }}"
        mode: "0600"
"""

SSHD_CONFIG = """\
# sshd of benchmarks/ssh_scale.py: loopback only, key only, this directory only.
ListenAddress 127.0.0.1
Port {port}
HostKey {state}/host_ed25519
Subsystem sftp {sftp}
AuthorizedKeysFile {state}/authorized_keys
PidFile {state}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
# A fleet of N hosts would be N sshds: let one take N masters at once.
MaxStartups 500
MaxSessions 100
# DEBUG1 logs each session channel opened: that is how round trips are counted.
LogLevel DEBUG1
"""


def find_sshd() -> tuple[str, str, dict[str, str]]:
    """sshd, sftp-server and the environment to run them with."""
    system = shutil.which("sshd") or "/usr/sbin/sshd"
    if os.access(system, os.X_OK):
        return system, "/usr/lib/openssh/sftp-server", {}
    root = STATE / "pkg"
    sshd = root / "usr" / "sbin" / "sshd"
    if not sshd.exists():
        debs = STATE / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        print(f"no sshd here: unpacking {', '.join(PACKAGES)} under {root} (nothing installed)")
        done = subprocess.run(
            ["apt-get", "download", *PACKAGES],
            cwd=debs,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"apt-get download {' '.join(PACKAGES)} failed: {done.stderr.strip()}")
        for deb in debs.glob("*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    libs = [str(p) for p in root.glob("**/lib/*-linux-gnu") if p.is_dir()]
    return (
        str(sshd),
        str(root / "usr" / "lib" / "openssh" / "sftp-server"),
        {"LD_LIBRARY_PATH": ":".join(libs)},
    )


@dataclass
class Sshd:
    """The benchmark's own sshd, on a free loopback port."""

    state: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.state / "sshd.log"

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o700)
        sshd, sftp, extra_env = find_sshd()
        for key in ("host_ed25519", "user_ed25519"):
            if not (self.state / key).exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.state / key)],
                    check=True,
                )
        shutil.copy(self.state / "user_ed25519.pub", self.state / "authorized_keys")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = self.state / "sshd_config"
        config.write_text(SSHD_CONFIG.format(port=self.port, state=self.state, sftp=sftp))
        # /run/sshd: the privilege separation directory sshd insists on.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.log.write_text("")
        cmd = [sshd, "-D", "-f", str(config), "-E", str(self.log)]
        self.proc = subprocess.Popen(self.privsep_user(cmd), env={**os.environ, **extra_env})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 2) as s,
            ):
                if s.recv(4) == b"SSH-":
                    return
            if self.proc.poll() is not None:
                raise SystemExit(f"sshd exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise SystemExit("sshd did not answer within 20 s")

    def privsep_user(self, cmd: list[str]) -> list[str]:
        """sshd run as root wants its privilege separation user `sshd`. When the machine has
        none (openssh-server not installed), sshd alone sees one: a copy of /etc/passwd with
        it, bind-mounted in a mount namespace of its own. Nothing on the machine changes."""
        try:
            pwd.getpwnam("sshd")
            return cmd
        except KeyError:
            pass
        passwd = self.state / "passwd"
        passwd.write_text(
            Path("/etc/passwd").read_text() + "sshd:x:64999:65534::/run/sshd:/usr/sbin/nologin\n"
        )
        script = 'mount --bind "$0" /etc/passwd && exec "$@"'
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            str(passwd),
            *cmd,
        ]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def mark(self) -> int:
        return self.log.stat().st_size

    def counts_since(self, offset: int) -> dict[str, int]:
        with self.log.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return {
            "connections": len(re.findall(r"Accepted publickey for", text)),
            "channels": len(re.findall(r"server_input_channel_open: ctype session", text)),
        }


def inventory(path: Path, hosts: int, transport: str, sshd: Sshd | None, async_dir: Path) -> None:
    width = max(2, len(str(hosts)))
    lines = ["bench:", "  hosts:"]
    for i in range(1, hosts + 1):
        name = f"host{i:0{width}d}"
        lines.append(f"    {name}:")
        if transport != "local":
            # One master per host, as with N real machines (the default %C path would give
            # every alias of 127.0.0.1 the same master).
            lines.append(f"      ansible_control_path: {STATE}/cp/{name}")
    lines.append("  vars:")
    lines.append(f"    ansible_async_dir: {async_dir}")
    if transport == "local":
        lines += [
            "    ansible_connection: local",
            f"    ansible_python_interpreter: {sys.executable}",
        ]
    else:
        assert sshd is not None
        lines += [
            "    ansible_connection: ansible.builtin.ssh",
            "    ansible_host: 127.0.0.1",
            f"    ansible_port: {sshd.port}",
            "    ansible_user: root",
            f"    ansible_ssh_private_key_file: {STATE}/user_ed25519",
            "    ansible_ssh_common_args: -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"
            " -o LogLevel=ERROR -o IdentitiesOnly=yes",
            f"    ansible_pipelining: {str(transport == 'ssh+pipelining').lower()}",
            "    ansible_python_interpreter: /usr/bin/python3",
        ]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Result:
    wall: float
    cpu: float
    rc: int
    connections: int = 0
    channels: int = 0


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(
    workdir: Path,
    hosts: int,
    transport: str,
    method: str,
    args: argparse.Namespace,
    sshd: Sshd | None,
) -> Result:
    inv = workdir / f"inv-{transport}-{hosts}.yml"
    inventory(inv, hosts, transport, sshd, workdir / "async")
    env = ansible_env(ANSIBLE_FORKS=str(args.forks), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.null")
    if method.endswith("+mitogen"):
        env["ANSIBLE_STRATEGY_PLUGINS"] = str(
            Path(args.mitogen) / "ansible_mitogen" / "plugins" / "strategy"
        )
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.mitogen, env.get("PYTHONPATH")]))
        # Mitogen's first connection (it starts its own Python on the host) takes longer.
        env.setdefault("ANSIBLE_TIMEOUT", "60")
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(inv),
        str(workdir / "play.yml"),
        "-e",
        json.dumps({"seconds": args.seconds, "method": method.split("+")[0]}),
    ]
    offset = sshd.mark() if sshd else 0
    cpu0 = children_cpu()
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    result = Result(wall=wall, cpu=children_cpu() - cpu0, rc=proc.returncode)
    if proc.returncode != 0:
        print(
            f"  {transport} {hosts} {method}: rc={proc.returncode}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        )
    if sshd:
        # Masters persist 60 s: stop them so the next run starts cold, as this one did.
        for sock in (STATE / "cp").glob("host*"):
            subprocess.run(
                ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                capture_output=True,
                check=False,
            )
        time.sleep(0.5)
        counts = sshd.counts_since(offset)
        result.connections, result.channels = counts["connections"], counts["channels"]
    return result


def stop_masters() -> None:
    """Masters persist 60 s: stop them so that the next run starts as cold as this one did."""
    for sock in (STATE / "cp").glob("host*"):
        subprocess.run(
            ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
            capture_output=True,
            check=False,
        )
    time.sleep(0.5)


def long_poll(args: argparse.Namespace, sshd: Sshd) -> list[dict]:
    """Round trips and SSH channels of one wait, per host: async_wait's long poll (one module
    run per window) against the lab's async_status loop (one per second)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="ssh-long-poll-") as tmp:
        workdir = Path(tmp)
        (workdir / "long_poll.yml").write_text(LONG_POLL)
        hosts = int(args.hosts.split(",")[0])
        variants = [("async_wait", w) for w in args.windows] + [("until", 0.0)]
        for transport in [t for t in args.transports.split(",") if t != "local"]:
            inv = workdir / f"inv-{transport}.yml"
            inventory(inv, hosts, transport, sshd, workdir / "async")
            for method, window in variants:
                extra = {
                    "seconds": args.seconds,
                    "method": method,
                    "window": window,
                    "sshd_log": str(sshd.log),
                    "mark_file": str(workdir / "mark.json"),
                    "counts_file": str(workdir / "counts.json"),
                }
                env = ansible_env(
                    ANSIBLE_FORKS=str(args.forks), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.null"
                )
                playbook = str(Path(sys.executable).parent / "ansible-playbook")
                cmd = [
                    playbook,
                    "-i",
                    str(inv),
                    "-e",
                    json.dumps(extra),
                    str(workdir / "long_poll.yml"),
                ]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                stop_masters()
                if done.returncode:
                    print(f"  {transport} {method}: {done.stdout[-1500:]}{done.stderr[-1500:]}")
                    rows.append({"transport": transport, "wait": method, "failed": True})
                    continue
                mark = json.loads((workdir / "mark.json").read_text())
                counts = json.loads((workdir / "counts.json").read_text())
                channels = sshd.counts_since(mark["offset"])["channels"]
                trips = [int(t) for t in counts["trips"]]
                row = {
                    "transport": transport,
                    "wait": f"async_wait window {window:g} s"
                    if method == "async_wait"
                    else "async_status until, delay 1",
                    "hosts": hosts,
                    "job_seconds": args.seconds,
                    "wait_seconds": round(counts["at"] - mark["at"], 2),
                    "round_trips_per_host": round(statistics.mean(trips), 1),
                    "ssh_channels_per_host": round(channels / hosts, 1),
                    "channels_per_round_trip": round(channels / sum(trips), 2)
                    if sum(trips)
                    else None,
                    "failed": False,
                    "load1": round(os.getloadavg()[0], 1),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    print()
    print(
        f"{args.seconds:g} s job per host, {hosts} hosts; the wait starts after every launch returned"
    )
    print(
        "| transport | wait | wait (s) | round trips per host | SSH channels per host | channels per round trip | load |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if r["failed"]:
            print(f"| {r['transport']} | {r['wait']} | failed | | | | |")
            continue
        print(
            f"| {r['transport']} | {r['wait']} | {r['wait_seconds']:.2f} | {r['round_trips_per_host']} |"
            f" {r['ssh_channels_per_host']} | {r['channels_per_round_trip']} | {r['load1']} |"
        )
    return rows


def median(results: list[Result], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in results)


@contextlib.contextmanager
def own_sshd(needed: bool) -> Iterator[Sshd | None]:
    if not needed:
        yield None
        return
    sshd = Sshd(STATE)

    def stop(signum: int, _frame: object) -> None:
        sshd.stop()
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, stop)
    try:
        sshd.start()
        (STATE / "cp").mkdir(exist_ok=True)
        yield sshd
    finally:
        sshd.stop()
        signal.signal(signal.SIGTERM, old)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", default="20,50")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--transports", default="local,ssh,ssh+pipelining")
    parser.add_argument("--mitogen", help="directory holding ansible_mitogen (pip show mitogen)")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--long-poll",
        action="store_true",
        help="measure one wait's round trips and SSH channels instead (first --hosts value)",
    )
    parser.add_argument("--windows", default="5,30", help="async_wait windows for --long-poll")
    args = parser.parse_args()
    args.windows = [float(w) for w in args.windows.split(",")]
    if args.long_poll:
        with own_sshd(True) as sshd:
            assert sshd is not None
            rows = long_poll(args, sshd)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return 1 if any(r["failed"] for r in rows) else 0
    counts = [int(n) for n in args.hosts.split(",")]
    transports = args.transports.split(",")
    methods = ["sync", "async_wait", "async_launch"]
    rows: list[dict] = []
    with (
        tempfile.TemporaryDirectory(prefix="ssh-scale-") as tmp,
        own_sshd(transports != ["local"]) as sshd,
    ):
        workdir = Path(tmp)
        (workdir / "play.yml").write_text(PLAYBOOK)
        for hosts in counts:
            for transport in transports:
                # Under Mitogen only the synchronous run: Mitogen runs async tasks itself, with
                # job ids async_wait does not accept (docs/running-at-scale.md#mitogen).
                mitogen = ["sync+mitogen"] if args.mitogen and transport != "local" else []
                variants = methods + mitogen
                runs: dict[str, list[Result]] = {m: [] for m in variants}
                for _unused in range(args.repeat):
                    for method in variants:
                        runs[method].append(run_once(workdir, hosts, transport, method, args, sshd))
                sync_wall = {"": median(runs["sync"], "wall")}
                if args.mitogen and transport != "local":
                    sync_wall["+mitogen"] = median(runs["sync+mitogen"], "wall")
                for method, results in runs.items():
                    suffix = "+mitogen" if method.endswith("+mitogen") else ""
                    wall = median(results, "wall")
                    rows.append(
                        {
                            "hosts": hosts,
                            "transport": transport + suffix,
                            "method": method.split("+")[0],
                            "wall": round(wall, 2),
                            "speedup_vs_sync": round(sync_wall[suffix] / wall, 2),
                            "controller_cpu": round(median(results, "cpu"), 2),
                            "ssh_connections": int(median(results, "connections"))
                            if sshd
                            else None,
                            "ssh_channels": int(median(results, "channels")) if sshd else None,
                            "failed_runs": sum(r.rc != 0 for r in results),
                            "load1": round(os.getloadavg()[0], 1),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    print()
    print(f"{args.seconds:g} s job per host, forks {args.forks}, median of {args.repeat} run(s)")
    print(
        "| hosts | transport | method | wall (s) | vs sync | controller CPU (s) | SSH connections | SSH channels | load |"
    )
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        ssh = (
            (r["ssh_connections"], r["ssh_channels"])
            if r["ssh_channels"] is not None
            else ("-", "-")
        )
        print(
            f"| {r['hosts']} | {r['transport']} | {r['method']} | {r['wall']:.2f} | {r['speedup_vs_sync']:.2f}x"
            f" | {r['controller_cpu']:.2f} | {ssh[0]} | {ssh[1]} | {r['load1']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if any(r["failed_runs"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
