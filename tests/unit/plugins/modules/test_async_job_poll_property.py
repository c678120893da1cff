"""Property: whatever bytes a job file holds, the poll neither crashes nor lets that file
change what it says of the other jobs."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.tplabs.async_tasks.plugins.module_utils import _job
from ansible_collections.tplabs.async_tasks.plugins.modules import async_job_poll as poll
from ansible_collections.tplabs.async_tasks.plugins.modules.async_job_poll import Poller
from tests.unit.plugins.modules.async_job_poll_fakes import jobs_by_jid, run_poll

GOOD = {"j1.100": {"rc": 0, "stdout": "fine"}, "j1.101": {"rc": 3, "failed": True}}
EXPECTED = {"j1.100": "finished", "j1.101": "failed"}
BAD = "j1.666"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
records = st.dictionaries(
    st.sampled_from(["started", "finished", "failed", "rc", "msg", "child_pid", "queued"])
    | st.sampled_from([_job.KILLED_MARK, _job.PROCESS_KEY, "ansible_job_id"])
    | st.text(max_size=8),
    json_values,
    max_size=8,
).map(lambda r: json.dumps(r).encode())
contents = st.binary(max_size=4096) | records


def poll_once(content: bytes) -> dict:
    base = Path(tempfile.mkdtemp(prefix="poll-property-"))
    try:
        for jid, record in GOOD.items():
            (base / jid).write_text(json.dumps(record))
        (base / BAD).write_bytes(content)
        poller = Poller([*GOOD, BAD], str(base))
        poller.wait(window=0, interval=0.1, fail_fast=False)
        poller.cleanup()
        reply = {"jobs": poller.reply_jobs()}
        json.dumps(reply)  # what exit_json will have to send
        assert sorted(p.name for p in base.iterdir() if p.name in GOOD) == []
        return reply
    finally:
        shutil.rmtree(base, ignore_errors=True)


# No example database: nothing is written in the work tree.
@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(contents)
def test_random_job_files_never_crash_the_poll_nor_affect_other_jobs(content: bytes) -> None:
    jobs = jobs_by_jid(poll_once(content))
    assert list(jobs) == [*GOOD, BAD]
    for jid, state in EXPECTED.items():
        assert jobs[jid]["state"] == state
        assert jobs[jid]["result"] == GOOD[jid]
        assert jobs[jid]["erased"] is True
    assert jobs[BAD]["state"] in _job.STATES


@settings(
    max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(contents)
def test_random_job_files_through_main(content: bytes) -> None:
    base = Path(tempfile.mkdtemp(prefix="poll-property-"))
    try:
        for jid, record in GOOD.items():
            (base / jid).write_text(json.dumps(record))
        (base / BAD).write_bytes(content)
        reply = run_poll(poll, jids=[*GOOD, BAD], async_dir=str(base), window=0, timeout=60)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    jobs = jobs_by_jid(reply)
    assert {jid: jobs[jid]["state"] for jid in GOOD} == EXPECTED
    assert jobs[BAD]["state"] in _job.STATES
