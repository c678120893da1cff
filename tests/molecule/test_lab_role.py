"""roles/lab on real Incus: create, idempotence, delete, and the missing-image message.

Runs with the Molecule tests (after `make incus`); instance names carry a per-run prefix.
"""

from __future__ import annotations

import json
import random
import secrets
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, ansible_env, playbook_json
from tests.molecule.incus import incus_instances, incus_problem

pytestmark = pytest.mark.incus


@pytest.fixture(scope="module")
def names():
    problem = incus_problem()
    if problem:
        pytest.skip(f"Incus not usable: {problem}")
    prefix = f"t-lab-{secrets.token_hex(3)}"
    created = [f"{prefix}-a", f"{prefix}-b"]
    yield created
    leftovers = [n for n in incus_instances() if n.startswith(prefix + "-")]
    if leftovers:
        subprocess.run(["incus", "delete", "--force", *leftovers], check=False)


def fast_pool() -> str:
    """The btrfs pool of scripts/incus-setup.sh when it exists (launch = snapshot)."""
    show = subprocess.run(["incus", "storage", "show", "tplabs"], capture_output=True, check=False)
    return "tplabs" if show.returncode == 0 else ""


def lab(path: str, **extra: object) -> tuple[int, dict, str]:
    extra.setdefault("lab_storage_pool", fast_pool())
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    run, doc = playbook_json(path, "-e", json.dumps(extra), env=env)
    return run.rc, doc.get("stats", {}).get("localhost", {}), run.output


def test_present_twice_then_absent_twice(names: list[str]) -> None:
    rc, stats, out = lab("playbooks/step0.yml", lab_instances=names)
    assert rc == 0, out
    assert stats["changed"] >= 1
    assert set(names) <= set(incus_instances())
    for name in names:
        python = subprocess.run(
            ["incus", "exec", name, "--", "python3", "-c", "print(6 * 7)"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert python.stdout == "42\n", python.stderr

    rc, stats, out = lab("playbooks/step0.yml", lab_instances=names)
    assert rc == 0, out
    assert stats["changed"] == 0, "second run of the lab role must change nothing"

    # A stopped instance is started again (and that is a change).
    subprocess.run(["incus", "stop", "--force", names[0]], check=True)
    rc, stats, out = lab("playbooks/step0.yml", lab_instances=names)
    assert rc == 0, out
    assert stats["changed"] == 1

    rc, stats, out = lab("playbooks/lab_down.yml", lab_instances=names)
    assert rc == 0, out
    assert stats["changed"] == 1
    assert not set(names) & set(incus_instances())

    rc, stats, out = lab("playbooks/lab_down.yml", lab_instances=names)
    assert rc == 0, out
    assert stats["changed"] == 0


def test_missing_image_says_how_to_get_one(names: list[str]) -> None:
    rc, _stats, out = lab(
        "playbooks/step0.yml", lab_instances=names[:1], lab_image="tplabs/no-such-image"
    )
    assert rc == 2, out
    assert 'lab_image: image \\"tplabs/no-such-image\\" not found' in out
    assert "make incus" in out
    assert "images:ubuntu/24.04/cloud" in out
    assert names[0] not in incus_instances()


def free_port_block(count: int) -> int:
    """A base port with `count` free ports after it on 127.0.0.1 (checked, not reserved)."""
    for _unused in range(50):
        base = random.randint(20000, 60000)
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no block of free ports found")


def ssh_inventory(path: Path, names: list[str], base: int, ssh_dir: Path) -> None:
    """inventories/incus-ssh.yml as shipped, with this run's ports and key directory."""
    doc = yaml.safe_load((REPO / "inventories" / "incus-ssh.yml").read_text())
    lab = doc["all"]["children"]["lab"]
    shipped = lab["vars"]
    lab["hosts"] = {f"host{i + 1}": {"ansible_port": base + i} for i in range(len(names))}
    shipped["ansible_ssh_private_key_file"] = str(ssh_dir / "id_ed25519")
    shipped["ansible_ssh_common_args"] = shipped["ansible_ssh_common_args"].replace(
        "~/.ssh/tplabs-async-lab", str(ssh_dir)
    )
    path.write_text(yaml.safe_dump(doc))


SSH_PLAY = """
- name: Over SSH, with the inventory's settings
  hosts: lab
  gather_facts: false
  tasks:
    - name: Read the SSH session on the host
      ansible.builtin.command: sh -c 'echo "$SSH_CONNECTION"'
      register: session
      changed_when: false
    - name: Launch a job
      ansible.builtin.command: sleep 2
      async: 60
      poll: 0
      register: job
      changed_when: true
    - name: Wait for it
      tplabs.async_tasks.async_wait:
        jobs: "{{ job }}"
        timeout: 120
      register: waited
"""


def test_ssh_transport(names: list[str], tmp_path: Path) -> None:
    ssh_dir = tmp_path / "ssh"
    base = free_port_block(len(names))
    params = {
        "lab_instances": names,
        "lab_transport": "ssh",
        "lab_ssh_dir": str(ssh_dir),
        "lab_ssh_port_base": base,
    }
    rc, stats, out = lab("playbooks/step0.yml", **params)
    assert rc == 0, out
    for i, name in enumerate(names):
        device = subprocess.run(
            ["incus", "config", "device", "get", name, "ssh", "listen"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert device.stdout.strip() == f"tcp:127.0.0.1:{base + i}"
        expanded = subprocess.run(
            ["incus", "config", "show", "--expanded", name],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "type: nic" not in expanded.stdout, f"{name} has a network device"
    known = (ssh_dir / "known_hosts").read_text().splitlines()
    assert [line.split()[0] for line in known] == [
        f"[127.0.0.1]:{base + i}" for i in range(len(names))
    ]
    assert len({line.split()[2] for line in known}) == len(names), (
        "each container has its own host key"
    )

    # Idempotent, and the shipped SSH inventory (host key checking on) reaches the lab.
    rc, stats, out = lab("playbooks/step0.yml", **params)
    assert rc == 0, out
    assert stats["changed"] == 0, "second run of the lab role over SSH must change nothing"
    inventory = tmp_path / "incus-ssh.yml"
    ssh_inventory(inventory, names, base, ssh_dir)
    (tmp_path / "play.yml").write_text(SSH_PLAY)
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    run, doc = playbook_json(tmp_path / "play.yml", "-i", str(inventory), env=env)
    assert run.rc == 0, run.output
    for host in doc["plays"][0]["tasks"][0]["hosts"].values():
        # client address, client port, server address, server port: the container's sshd.
        assert host["stdout_lines"][0].split()[2:] == ["127.0.0.1", "22"], host
    waited = doc["plays"][0]["tasks"][2]["hosts"]
    assert [h["jobs"][0]["state"] for h in waited.values()] == ["finished"] * len(names)

    # A wrong host key is refused: the inventory really checks them (on a new connection:
    # an SSH master still open from the run above would be reused without a check).
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(tmp_path / "cp")
    (ssh_dir / "known_hosts").write_text(
        "".join(f"{k.split()[0]} {known[-1].split(None, 1)[1]}\n" for k in known[:1])
    )
    run, _unused = playbook_json(
        tmp_path / "play.yml", "-i", str(inventory), "--limit", "host1", env=env
    )
    assert run.rc == 4, run.output
    assert (
        "Host key verification failed" in run.output
        or "REMOTE HOST IDENTIFICATION HAS CHANGED" in run.output
    )

    rc, stats, out = lab("playbooks/lab_down.yml", **params)
    assert rc == 0, out
    assert not ssh_dir.exists(), "lab_state=absent deletes the lab's keys"
    assert not set(names) & set(incus_instances())
