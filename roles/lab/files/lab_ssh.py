# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the lab's Incus containers reachable over SSH on the machine's loopback.

Run by roles/lab (lab_transport: ssh) on the controller, once for all instances: one task
instead of several module runs per instance. Reads one JSON document on stdin:

    {"incus": ["incus"], "instances": ["host1", ...], "ports": [2201, ...] (0: any free
     port), "ssh_dir": "/abs/dir", "address": "127.0.0.1", "timeout": 120}

For each instance (in parallel): an Incus `proxy` device named `ssh` listening on
address:port of this machine and connecting to the container's own 127.0.0.1:22 (no NIC
involved), the lab key in root's authorized_keys, and a wait until sshd answers. The lab
key pair and a known_hosts file with each container's host key live in ssh_dir.

Prints {"changed": bool, "hosts": [{"name", "port", "host_key"}], "private_key",
"known_hosts"}; exits 1 with {"failed": true, "msg"} on an error.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

DEVICE = "ssh"
KEY_NAME = "id_ed25519"
KNOWN_HOSTS = "known_hosts"
LISTEN_RE = re.compile(r"^tcp:(?P<address>[^:]+):(?P<port>\d+)$")
HOST_KEY_RE = re.compile(r"^ssh-ed25519 [A-Za-z0-9+/=]+")
# Adds the key to root's authorized_keys unless it is there; exit 3 means "added".
AUTHORIZE = (
    "umask 077; mkdir -p /root/.ssh; f=/root/.ssh/authorized_keys; "
    'grep -qxF "$1" "$f" 2>/dev/null && exit 0; printf "%s\\n" "$1" >> "$f" && exit 3'
)
PICK_TRIES = 5


class LabSshError(Exception):
    """A step failed; the message says which instance and what Incus answered."""


@dataclass
class Host:
    name: str
    port: int
    host_key: str = ""
    changes: list[str] = field(default_factory=list)


def run(
    cmd: list[str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def listen_port(listen: str, address: str) -> int | None:
    """The port of a proxy device's listen= value when it listens on address over TCP."""
    match = LISTEN_RE.match(listen.strip())
    if not match or match.group("address") != address:
        return None
    return int(match.group("port"))


def free_port(address: str) -> int:
    """A port the kernel says is free now (Incus binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def ensure_proxy(incus: list[str], host: Host, address: str) -> None:
    current = run([*incus, "config", "device", "get", host.name, DEVICE, "listen"])
    existing = listen_port(current.stdout, address) if current.returncode == 0 else None
    if existing is not None and host.port in (0, existing):
        host.port = existing
        return
    if current.returncode == 0:
        # A device of that name listening elsewhere: move it to the wanted port.
        port = host.port or free_port(address)
        done = run(
            [*incus, "config", "device", "set", host.name, DEVICE, f"listen=tcp:{address}:{port}"]
        )
        if done.returncode != 0:
            raise LabSshError(
                f"{host.name}: cannot move the ssh proxy to {address}:{port}: {done.stderr.strip()}"
            )
        host.port = port
        host.changes.append(f"proxy moved to {address}:{port}")
        return
    tries = PICK_TRIES if host.port == 0 else 1
    error = ""
    for _unused in range(tries):
        port = host.port or free_port(address)
        added = run(
            [
                *incus,
                "config",
                "device",
                "add",
                host.name,
                DEVICE,
                "proxy",
                f"listen=tcp:{address}:{port}",
                "connect=tcp:127.0.0.1:22",
            ]
        )
        if added.returncode == 0:
            host.port = port
            host.changes.append(f"proxy {address}:{port} -> 127.0.0.1:22")
            return
        error = added.stderr.strip()
    raise LabSshError(
        f"{host.name}: cannot add the ssh proxy on {address}:{host.port or 'a free port'}: {error}"
    )


def authorize(incus: list[str], host: Host, public_key: str) -> None:
    done = run([*incus, "exec", host.name, "--", "sh", "-c", AUTHORIZE, "sh", public_key])
    if done.returncode == 3:
        host.changes.append("key added to /root/.ssh/authorized_keys")
    elif done.returncode != 0:
        raise LabSshError(
            f"{host.name}: cannot write root's authorized_keys: {done.stderr.strip()}"
        )


def banner(address: str, port: int, timeout: float = 5) -> bool:
    """True when an SSH server greets on address:port (the proxy alone accepts, then closes)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_sshd(incus: list[str], host: Host, address: str, timeout: float) -> None:
    """Until the container made its host key and sshd greets through the proxy."""
    deadline = time.monotonic() + timeout
    if run([*incus, "exec", host.name, "--", "test", "-x", "/usr/sbin/sshd"]).returncode == 1:
        raise LabSshError(
            f"{host.name}: the image has no /usr/sbin/sshd: rebuild the default image with"
            " scripts/incus-setup.sh (make incus; image build 3 has openssh-server), or set"
            " lab_image to an image with openssh-server"
        )
    while True:
        if not host.host_key:
            pulled = run(
                [*incus, "file", "pull", f"{host.name}/etc/ssh/ssh_host_ed25519_key.pub", "-"]
            )
            match = HOST_KEY_RE.match(pulled.stdout.strip()) if pulled.returncode == 0 else None
            if match:
                host.host_key = match.group(0)
        if host.host_key and banner(address, host.port):
            return
        if time.monotonic() > deadline:
            state = (
                "no SSH greeting"
                if host.host_key
                else "no host key /etc/ssh/ssh_host_ed25519_key.pub"
            )
            raise LabSshError(
                f"{host.name}: sshd not answering on {address}:{host.port} after {timeout:.0f} s ({state});"
                " is openssh-server in the image (scripts/incus-setup.sh builds it in)?"
            )
        time.sleep(0.5)


def ensure_key_pair(ssh_dir: str) -> tuple[str, bool]:
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    private = os.path.join(ssh_dir, KEY_NAME)
    created = False
    if not os.path.exists(private):
        made = run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tplabs-async-lab", "-f", private]
        )
        if made.returncode != 0:
            raise LabSshError(f"ssh-keygen failed for {private}: {made.stderr.strip()}")
        created = True
    with open(private + ".pub", encoding="utf-8") as pub:
        return pub.read().strip(), created


def known_hosts_text(hosts: list[Host], address: str) -> str:
    return "".join(
        f"[{address}]:{h.port} {h.host_key}\n" for h in sorted(hosts, key=lambda h: h.port)
    )


def write_if_changed(path: str, text: str) -> bool:
    try:
        with open(path, encoding="utf-8") as current:
            if current.read() == text:
                return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".known_hosts.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)
    return True


def setup(request: dict) -> dict:
    incus = list(request["incus"])
    address = request.get("address", "127.0.0.1")
    timeout = float(request.get("timeout", 120))
    ssh_dir = os.path.abspath(os.path.expanduser(request["ssh_dir"]))
    public_key, key_created = ensure_key_pair(ssh_dir)
    hosts = [
        Host(name, int(port))
        for name, port in zip(request["instances"], request["ports"], strict=True)
    ]

    def one(host: Host) -> Host:
        ensure_proxy(incus, host, address)
        authorize(incus, host, public_key)
        wait_for_sshd(incus, host, address, timeout)
        return host

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        done = list(pool.map(one, hosts))
    known_hosts = os.path.join(ssh_dir, KNOWN_HOSTS)
    hosts_changed = write_if_changed(known_hosts, known_hosts_text(done, address))
    return {
        "changed": key_created or hosts_changed or any(h.changes for h in done),
        "hosts": [
            {"name": h.name, "port": h.port, "host_key": h.host_key, "changes": h.changes}
            for h in done
        ],
        "private_key": os.path.join(ssh_dir, KEY_NAME),
        "known_hosts": known_hosts,
    }


def main() -> int:
    try:
        print(json.dumps(setup(json.load(sys.stdin))))
    except (LabSshError, OSError, subprocess.TimeoutExpired, KeyError, ValueError) as err:
        print(json.dumps({"failed": True, "msg": str(err)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
