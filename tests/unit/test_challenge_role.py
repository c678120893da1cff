"""roles/challenge refuses an async_status wait that cannot cover the job, before anything runs.

The role's first task is the check; its condition is evaluated here as Ansible evaluates an
assert (a Jinja expression), with the lab's values and with values that fall short.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "challenge"


def test_the_first_task_refuses_retries_x_delay_that_do_not_cover_the_job() -> None:
    first = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())[0]
    check = first["ansible.builtin.assert"]
    assert "does not cover" in check["fail_msg"]
    covers = jinja2.Environment().compile_expression(check["that"])
    job = {"challenge_waiter": "async_status", "challenge_seconds": 5}
    assert covers(**job, challenge_retries=10, challenge_delay=1)  # the lab's 10 x 1 s
    assert not covers(**job, challenge_retries=4, challenge_delay=1)
    assert not covers(**job, challenge_retries=5, challenge_delay=1)  # gives up as the job ends
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert covers(**defaults), defaults
