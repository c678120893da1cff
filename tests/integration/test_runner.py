"""make runner-demo: lab step 5 through ansible-runner, and what its artifacts hold.

scripts/runner-demo builds a private data dir (project with the collection installed next
to the playbook, inventory, env) and runs `ansible-runner run`; this test runs the same
script in a temporary directory and reads the artifacts as AWX would: status, rc, the job
events (playbook_on_stats and its artifact_data, where set_stats data goes) and the
time_saved report the callback writes into the directory named by AWX_ISOLATED_DATA_DIR.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO, VENV_BIN, ansible_env, run

pytestmark = pytest.mark.integration

IDENT = "step5"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    if shutil.which("ansible-runner", path=str(VENV_BIN)) is None:
        pytest.skip("ansible-runner is not installed: run `make venv` (requirements.txt pins it)")
    private = tmp_path_factory.mktemp("runner") / "demo"
    # Short jobs, core's way (poll 0) and async_launch's, and the hosts' files in a directory
    # of this run's own (the checker's tests run step 5 with the role's default directory).
    extravars = {
        "throttle_seconds": 3,
        "throttle_delay": 1,
        "throttle_modes": ["poll0", "launch"],
        "throttle_dir": f"{private.parent}/hosts/{{{{ inventory_hostname }}}}",
    }
    env = ansible_env(
        RUNNER_DEMO_DIR=str(private),
        RUNNER_DEMO_IDENT=IDENT,
        RUNNER_DEMO_EXTRAVARS=json.dumps(extravars),
    )
    result = run([str(REPO / "scripts" / "runner-demo")], env=env, timeout=900)
    return result, private / "artifacts" / IDENT


def events(artifacts: Path) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")]
    return sorted(found, key=lambda e: e.get("counter", 0))


def test_runner_ran_step5_successfully(demo: tuple) -> None:
    result, artifacts = demo
    assert result.rc == 0, result.output[-4000:]
    assert (artifacts / "status").read_text().strip() == "successful"
    assert (artifacts / "rc").read_text().strip() == "0"
    # ansible-playbook ran in the project dir, whose collections/ holds the installed
    # collection, with no collection path or config of this checkout in its env.
    command = json.loads((artifacts / "command").read_text())
    assert Path(command["command"][0]).name == "ansible-playbook"
    assert command["command"][-1] == "step5.yml"
    project = Path(command["cwd"])
    assert project == artifacts.parent.parent / "project"
    installed = project / "collections" / "ansible_collections" / "tplabs" / "async_tasks"
    assert (installed / "MANIFEST.json").is_file()
    assert not {"ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_CONFIG"} & set(command.get("env", {}))
    stats = [e for e in events(artifacts) if e["event"] == "playbook_on_stats"]
    assert len(stats) == 1
    assert stats[0]["event_data"]["failures"] == {}
    assert set(stats[0]["event_data"]["ok"]) == {"host1", "host2", "host3"}


def test_time_saved_report_is_in_the_artifacts(demo: tuple) -> None:
    result, artifacts = demo
    assert result.rc == 0, result.output[-4000:]
    report = json.loads((artifacts / "time_saved.json").read_text())
    assert report["version"] >= 2
    assert [p["name"] for p in report["plays"]] == ["Step 5 - control parallelism with throttle"]
    # Step 5's jobs, every one finished: 3 hosts x (1 job with poll 0 + 3 async_launch jobs).
    assert report["job_states"] == {"finished": 12}, report["job_states"]
    assert report["wall"] > 0 and report["baseline"] > report["wall"]
    timeline = (artifacts / "time_saved.html").read_text()
    assert timeline.lstrip().lower().startswith("<!doctype html")
    assert "<svg" in timeline


def test_time_saved_summary_reaches_awx_as_artifact_data(demo: tuple) -> None:
    """AWX shows a job's artifacts from playbook_on_stats' artifact_data (set_stats, _run)."""
    result, artifacts = demo
    assert result.rc == 0, result.output[-4000:]
    stats = next(e for e in events(artifacts) if e["event"] == "playbook_on_stats")
    data = stats["event_data"].get("artifact_data") or {}
    assert "time_saved" in data, f"artifact_data: {json.dumps(data)[:500]}"
    summary = data["time_saved"]
    report = json.loads((artifacts / "time_saved.json").read_text())
    assert summary["wall"] == pytest.approx(report["wall"], abs=0.01)
