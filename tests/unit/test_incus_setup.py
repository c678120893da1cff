"""scripts/incus-setup.sh helpers that decide what to do, run without root.

The script is sourceable: sourcing defines its functions and runs nothing.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "incus-setup.sh"


def call(function: str, *args: str) -> subprocess.CompletedProcess[str]:
    quoted = " ".join(shlex.quote(a) for a in args)
    return subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(SCRIPT))} && {function} {quoted}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def image_build() -> str:
    proc = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(SCRIPT))} && echo $IMAGE_BUILD"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.strip()


def test_sourcing_runs_nothing() -> None:
    proc = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(SCRIPT))}; echo sourced"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "sourced\n"
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("codename", "needed"),
    [("bookworm", True), ("trixie", False), ("noble", False), ("", False)],
)
def test_needs_backports_only_on_bookworm(codename: str, needed: bool) -> None:
    assert (call("needs_backports", codename).returncode == 0) is needed


def stanza(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.strip().splitlines())


def test_backports_stanza_reuses_the_deb822_mirror(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
    )
    proc = call("backports_source_line", str(sources))
    assert proc.returncode == 0, proc.stderr
    assert stanza(proc.stdout) == {
        "Types": "deb",
        "URIs": "http://mirror.example/debian",
        "Suites": "bookworm-backports",
        "Components": "main",
        "Signed-By": "/usr/share/keyrings/debian-archive-keyring.gpg",
    }


def test_backports_stanza_reads_one_line_sources(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list"
    sources.write_text(
        "# comment\ndeb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
    )
    proc = call("backports_source_line", str(sources))
    assert stanza(proc.stdout)["URIs"] == "http://mirror.example/debian"


@pytest.mark.parametrize(
    "content",
    [None, "deb http://security.example/debian-security bookworm-security main\n"],
    ids=["missing-file", "security-only"],
)
def test_backports_stanza_falls_back_to_deb_debian_org(tmp_path: Path, content: str | None) -> None:
    # Runs under the script's own `set -euo pipefail`: no match must not end the script.
    sources = tmp_path / "sources.list"
    if content is not None:
        sources.write_text(content)
    proc = call("backports_source_line", str(sources))
    assert proc.returncode == 0, proc.stderr
    assert stanza(proc.stdout)["URIs"] == "http://deb.debian.org/debian"


def test_image_metadata_is_what_incus_import_reads() -> None:
    proc = call("image_metadata", "x86_64", "1795800000", "bookworm")
    assert proc.returncode == 0, proc.stderr
    meta = yaml.safe_load(proc.stdout)
    build = image_build()
    assert meta == {
        "architecture": "x86_64",
        "creation_date": 1795800000,
        "properties": {
            "os": "debian",
            "release": "bookworm",
            "description": "tplabs offline Debian bookworm (debootstrap minbase)",
            "tplabs_build": build,
        },
    }


@pytest.mark.parametrize(
    ("current", "action"),
    [("<none>", "build"), ("1", "rebuild"), ("CURRENT", "present")],
    ids=["no-image", "older-build", "current-build"],
)
def test_image_action_builds_only_when_needed(current: str, action: str) -> None:
    build = image_build()
    assert build.isdigit() and int(build) >= 2
    value = build if current == "CURRENT" else current
    assert call("image_action", value).stdout.strip() == action


@pytest.mark.parametrize(
    ("filesystems", "loop", "usable"),
    [
        ("nodev\tsysfs\n\text4\n\tbtrfs\n", True, True),
        ("nodev\tsysfs\n\text4\n", True, False),
        ("\tbtrfs\n", False, False),
    ],
    ids=["btrfs-and-loop", "no-btrfs", "no-loop-device"],
)
def test_fast_pool_only_with_btrfs_and_loop_devices(
    tmp_path: Path, filesystems: str, loop: bool, usable: bool
) -> None:
    fs = tmp_path / "filesystems"
    fs.write_text(filesystems)
    loop_control = tmp_path / "loop-control"
    if loop:
        loop_control.touch()
    assert (call("can_use_btrfs", str(fs), str(loop_control)).returncode == 0) is usable


def test_image_packages_include_openssh_server() -> None:
    proc = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(SCRIPT))} && echo $IMAGE_PACKAGES"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert set(proc.stdout.strip().split(",")) >= {"python3", "systemd-sysv", "openssh-server"}
    assert int(image_build()) >= 3, "an image without openssh-server must be rebuilt"


def test_prepare_sshd_removes_image_host_keys_and_makes_one_at_boot(tmp_path: Path) -> None:
    ssh = tmp_path / "etc" / "ssh"
    ssh.mkdir(parents=True)
    for name in ("ssh_host_rsa_key", "ssh_host_rsa_key.pub", "ssh_host_ed25519_key"):
        (ssh / name).write_text("built into the image\n")
    (ssh / "sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    proc = call("prepare_sshd", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in ssh.iterdir()) == ["sshd_config", "sshd_config.d"]
    config = (ssh / "sshd_config.d" / "tplabs.conf").read_text().splitlines()
    assert "PasswordAuthentication no" in config
    assert "ListenAddress 127.0.0.1" in config
    assert "HostKey /etc/ssh/ssh_host_ed25519_key" in config
    dropin = tmp_path / "etc/systemd/system/ssh.service.d/tplabs-host-key.conf"
    lines = dropin.read_text().splitlines()
    # Debian's `sshd -t` is reset, then runs again after the key is made.
    assert lines[:2] == ["[Service]", "ExecStartPre="]
    assert "ssh-keygen -q -t ed25519" in lines[2]
    assert lines[3] == "ExecStartPre=/usr/sbin/sshd -t"
