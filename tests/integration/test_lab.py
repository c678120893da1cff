"""roles/lab refuses bad input before it runs any incus command (no Incus needed).

The Incus side of the role (create, idempotence, delete, missing image) is tested in
tests/molecule/test_lab_role.py, which runs after `make incus`.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import playbook

pytestmark = pytest.mark.integration

FIRST_INCUS_TASK = "List the existing Incus instances"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"lab_instances": []},
            ["lab_instances must name at least one instance, got an empty list"],
        ),
        (
            {"lab_instances": ["host1", "bad_name", "9lives", "end-"]},
            [
                '"bad_name", "9lives", "end-" are not valid Incus instance names',
                "starting with a letter",
            ],
        ),
        ({"lab_instances": ["a" * 64]}, ["is not a valid Incus instance name", "1-63"]),
        ({"lab_instances": ["host1", "host1"]}, ["lab_instances lists a name twice: host1, host1"]),
        ({"lab_state": "started"}, ["lab_state", "present, absent", "got: started"]),
        ({"lab_ready_timeout": "soon"}, ["lab_ready_timeout", "int"]),
        ({"lab_transport": "winrm"}, ["lab_transport", "incus, ssh", "got: winrm"]),
        (
            {"lab_transport": "ssh", "lab_remote": "far"},
            ["lab_transport: ssh needs the local Incus", 'lab_remote \\"far\\"'],
        ),
        (
            {"lab_transport": "ssh", "lab_ssh_port_base": 65534},
            ["lab_ssh_port_base: 65534 leaves no room for 3 ports", "0 picks free ports"],
        ),
        (
            {"lab_transport": "ssh", "lab_ssh_port_base": 22},
            ["lab_ssh_port_base: 22 leaves no room"],
        ),
    ],
    ids=[
        "empty",
        "bad-names",
        "too-long",
        "duplicate",
        "bad-state",
        "bad-timeout",
        "bad-transport",
        "ssh-remote",
        "ssh-ports-high",
        "ssh-ports-low",
    ],
)
def test_bad_input_fails_before_incus(extra: dict, expected: list[str]) -> None:
    run = playbook("playbooks/step0.yml", "-e", json.dumps(extra))
    assert run.rc == 2, run.output
    for text in expected:
        assert text in run.output, f"{text!r} not in output:\n{run.output}"
    assert FIRST_INCUS_TASK not in run.output, run.output
    assert "Traceback" not in run.output
