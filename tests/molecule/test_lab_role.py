"""roles/lab on real Incus: create, idempotence, delete, and the missing-image message.

Runs with the Molecule tests (after `make incus`); instance names carry a per-run prefix.
"""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from tests.helpers import ansible_env, playbook_json
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
