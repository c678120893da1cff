"""The smoke test of the collection, on whatever ansible-core runs it (make test-matrix).

async_wait and the time_saved callback on the 3 local hosts: the report must count the
jobs, their time and the baseline, on ansible-core 2.17, 2.18 and 2.19 alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import REPO, ansible_env, playbook

pytestmark = pytest.mark.integration


def test_async_wait_and_time_saved(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = playbook(
        REPO / "tests" / "integration" / "playbooks" / "smoke.yml",
        env=ansible_env(
            ANSIBLE_CALLBACKS_ENABLED="tplabs.async_tasks.time_saved",
            ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON=str(report),
        ),
        timeout=300,
    )
    assert result.rc == 0, result.output[-4000:]
    assert "failed=0" in result.stdout
    data = json.loads(report.read_text())
    [play] = data["plays"]
    jobs = play["jobs"]
    assert len(jobs) == 6, jobs  # 2 jobs x 3 hosts
    assert {job["state"] for job in jobs} == {"finished"}, jobs
    assert {job["host"] for job in jobs} == {"host1", "host2", "host3"}
    # Each job slept 1 s: the baseline holds at least the jobs' own time.
    assert all(job["duration"] >= 1.0 for job in jobs), jobs
    assert play["baseline"] >= 6.0, play
    assert "time on failed" not in result.output
