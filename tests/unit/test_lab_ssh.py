"""roles/lab/files/lab_ssh.py: the decisions it takes, with the incus CLI faked.

The real thing (proxy devices, sshd, host keys) runs on Incus in
tests/molecule/test_lab_role.py::test_ssh_transport.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import load_file

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "lab" / "files" / "lab_ssh.py"


@pytest.fixture(scope="module")
def lab_ssh() -> ModuleType:
    return load_file(SCRIPT, "lab_ssh")


class FakeIncus:
    """Answers `incus config device get/set/add` from a dict of listen values."""

    def __init__(self, devices: dict[str, str], busy: set[int] | None = None) -> None:
        self.devices = devices
        self.busy = busy or set()
        self.calls: list[list[str]] = []

    def __call__(self, cmd: list[str], stdin: str | None = None, timeout: float = 60):
        self.calls.append(cmd)
        at = cmd.index("device")
        action, name = cmd[at + 1], cmd[at + 2]
        if action == "get":
            if name in self.devices:
                return subprocess.CompletedProcess(cmd, 0, self.devices[name] + "\n", "")
            return subprocess.CompletedProcess(cmd, 1, "", "Error: Device doesn't exist\n")
        listen = next(a for a in cmd if a.startswith("listen="))
        port = int(listen.rsplit(":", 1)[1])
        if port in self.busy:
            return subprocess.CompletedProcess(cmd, 1, "", "Error: address already in use\n")
        self.devices[name] = listen.split("=", 1)[1]
        return subprocess.CompletedProcess(cmd, 0, "", "")


@pytest.mark.parametrize(
    ("listen", "port"),
    [
        ("tcp:127.0.0.1:2201", 2201),
        ("tcp:127.0.0.1:2201\n", 2201),
        ("tcp:0.0.0.0:2201", None),
        ("unix:/run/x.sock", None),
        ("", None),
    ],
    ids=["loopback", "newline", "other-address", "unix", "empty"],
)
def test_listen_port(lab_ssh: ModuleType, listen: str, port: int | None) -> None:
    assert lab_ssh.listen_port(listen, "127.0.0.1") == port


def test_existing_device_is_kept(lab_ssh: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeIncus({"h1": "tcp:127.0.0.1:40001"})
    monkeypatch.setattr(lab_ssh, "run", fake)
    for wanted in (0, 40001):
        host = lab_ssh.Host("h1", wanted)
        lab_ssh.ensure_proxy(["incus"], host, "127.0.0.1")
        assert (host.port, host.changes) == (40001, [])
    assert all(call[call.index("device") + 1] == "get" for call in fake.calls)


def test_device_moves_to_the_wanted_port(
    lab_ssh: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeIncus({"h1": "tcp:127.0.0.1:40001"})
    monkeypatch.setattr(lab_ssh, "run", fake)
    host = lab_ssh.Host("h1", 2201)
    lab_ssh.ensure_proxy(["incus"], host, "127.0.0.1")
    assert host.port == 2201
    assert fake.devices["h1"] == "tcp:127.0.0.1:2201"
    assert host.changes == ["proxy moved to 127.0.0.1:2201"]


def test_missing_device_is_added_connecting_to_the_container_sshd(
    lab_ssh: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeIncus({})
    monkeypatch.setattr(lab_ssh, "run", fake)
    host = lab_ssh.Host("h1", 2202)
    lab_ssh.ensure_proxy(["incus", "--project", "p"], host, "127.0.0.1")
    add = fake.calls[-1]
    assert add == [
        "incus",
        "--project",
        "p",
        "config",
        "device",
        "add",
        "h1",
        "ssh",
        "proxy",
        "listen=tcp:127.0.0.1:2202",
        "connect=tcp:127.0.0.1:22",
    ]
    assert host.changes == ["proxy 127.0.0.1:2202 -> 127.0.0.1:22"]


def test_a_free_port_taken_meanwhile_is_retried(
    lab_ssh: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeIncus({}, busy={50001})
    picks = iter([50001, 50002])
    monkeypatch.setattr(lab_ssh, "run", fake)
    monkeypatch.setattr(lab_ssh, "free_port", lambda address: next(picks))
    host = lab_ssh.Host("h1", 0)
    lab_ssh.ensure_proxy(["incus"], host, "127.0.0.1")
    assert host.port == 50002


def test_a_fixed_port_in_use_fails_naming_it(
    lab_ssh: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lab_ssh, "run", FakeIncus({}, busy={2201}))
    with pytest.raises(
        lab_ssh.LabSshError, match=r"h1: cannot add the ssh proxy on 127.0.0.1:2201: .*in use"
    ):
        lab_ssh.ensure_proxy(["incus"], lab_ssh.Host("h1", 2201), "127.0.0.1")


def test_known_hosts_and_rewrite_only_on_change(lab_ssh: ModuleType, tmp_path: Path) -> None:
    hosts = [lab_ssh.Host("b", 2202, "ssh-ed25519 BBB"), lab_ssh.Host("a", 2201, "ssh-ed25519 AAA")]
    text = lab_ssh.known_hosts_text(hosts, "127.0.0.1")
    assert text == "[127.0.0.1]:2201 ssh-ed25519 AAA\n[127.0.0.1]:2202 ssh-ed25519 BBB\n"
    path = tmp_path / "known_hosts"
    assert lab_ssh.write_if_changed(str(path), text) is True
    assert lab_ssh.write_if_changed(str(path), text) is False
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["known_hosts"]
