"""lab_measure's stamp when the host's answer is lost on the way (docs/known-issues.md, 2).

`incus exec` on a loaded CPU may run a command and lose its output; the `flaky` connection
(tests/integration/parity/connection_plugins) does the same on the local host, once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import REPO, ansible_env, playbook

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "lab_measure_lost.yml"
CONNECTIONS = REPO / "tests" / "integration" / "parity" / "connection_plugins"


def test_a_lost_stamp_answer_is_asked_again_and_the_time_stays_the_first(tmp_path: Path) -> None:
    env = ansible_env(ANSIBLE_CONNECTION_PLUGINS=str(CONNECTIONS))
    result = playbook(PLAYBOOK, "-e", json.dumps({"lossy_dir": str(tmp_path)}), env=env)
    assert result.rc == 0, result.output[-3000:]
    lost = (tmp_path / "faults").read_text().splitlines()
    # one output lost, and it was not empty: "lost TIME BYTES"
    assert len(lost) == 1 and lost[0].startswith("lost ") and int(lost[0].split()[2]) > 0, lost
    kept = json.loads((tmp_path / "kept.json").read_text())
    assert kept["attempts"] == 2
    step = tmp_path / "step"
    stamped = (step / "stamped").read_text().strip()
    assert kept["stamped"]["stdout_lines"] == ["written once", stamped]
    # Written by the first command, before its answer was lost; the second (at least the
    # retry's 1 s later) only showed the files.
    assert float(stamped) <= float(lost[0].split()[1])
    assert len(list(step.glob(".lab_measure_stamped.*"))) == 1
