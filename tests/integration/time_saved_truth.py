"""Ground truth for the time_saved shape tests: the hosts' own timestamps, on the report's clock.

Each shape playbook makes its hosts write ``START END`` (epoch seconds, taken where the work
ran) to ``<stamps>/<name>-<host>.stamp``. The report's times are seconds since the playbook
start, whose wall-clock time is ``started_at_epoch`` (or ``started_at``, ISO 8601).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import _timing
from tests.helpers import REPO, Run, ansible_env, playbook

SHAPES = REPO / "tests" / "integration" / "playbooks" / "shapes"
SCHEMA = json.loads((REPO / "docs" / "schemas" / "time_saved.schema.json").read_text())

# Tolerances, in seconds, of the callback's figures against the hosts' stamps:
# - a job's end placed from its job file (directly, or through async_wait's ended_ago) lags
#   the module's own end by async_wrapper's time to write the result: 0.05 s on a quiet
#   machine, 1.8 s measured under a load average of 20 on 2 cores, 2.6 s under 39;
END_TOL = 4.0
# - a duration the module reports itself (delta) against the stamps taken inside the same
#   shell: two `date` processes, a few ms quiet, a few hundred ms under heavy load.
RUN_TOL = 0.8
# - the module's delta and the hosts' stamps read the same clock: rounding only.
CLOCK_TOL = 0.01


@dataclass
class Shaped:
    """One shape playbook run: its output, its report and the hosts' stamps."""

    run: Run
    report: dict[str, Any]
    stamps: dict[str, tuple[float, float]]  # "<name>-<host>" -> (start, end), report clock

    def play(self, name: str) -> dict[str, Any]:
        found = [play for play in self.report["plays"] if play["name"] == name]
        assert len(found) == 1, f"{len(found)} plays named {name!r} in the report"
        return found[0]

    def truth(self, name: str) -> dict[str, tuple[float, float]]:
        """host -> (start, end) of the stamps called ``name``."""
        prefix = f"{name}-"
        return {k[len(prefix) :]: v for k, v in self.stamps.items() if k.startswith(prefix)}

    def jobs(self, play: str, task: str) -> dict[str, dict[str, Any]]:
        return {job["host"]: job for job in self.play(play)["jobs"] if job["task"] == task}

    def task(self, play: str, name: str) -> dict[str, Any]:
        [task] = [task for task in self.play(play)["tasks"] if task["name"] == name]
        return task


def report_epoch(report: dict[str, Any]) -> float:
    if report.get("started_at_epoch") is not None:
        return float(report["started_at_epoch"])
    return datetime.fromisoformat(report["started_at"]).timestamp()


def read_stamps(directory: Path, epoch: float) -> dict[str, tuple[float, float]]:
    stamps = {}
    for path in directory.glob("*.stamp"):
        start, end = (float(value) for value in path.read_text().split())
        stamps[path.stem] = (start - epoch, end - epoch)
    return stamps


def run_shape(name: str, out: Path, *args: str, rc: int = 0) -> Shaped:
    """Run shapes/<name>.yml with the callback; the hosts stamp into ``out``."""
    stamps = out / "stamps"
    stamps.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    result = playbook(
        SHAPES / f"{name}.yml",
        "-e",
        f"shapes_stamps={stamps}",
        *args,
        env=ansible_env(
            ANSIBLE_CALLBACKS_ENABLED="tplabs.async_tasks.time_saved",
            ANSIBLE_CALLBACK_TIME_SAVED_OUTPUT_JSON=str(report_path),
        ),
        timeout=1200,
    )
    assert result.rc == rc, result.output[-6000:]
    report = json.loads(report_path.read_text())
    return Shaped(result, report, read_stamps(stamps, report_epoch(report)))


def validate(report: dict[str, Any]) -> None:
    jsonschema.validate(report, SCHEMA)


def overlap(span: tuple[float, float], start: float, end: float) -> float:
    return max(0.0, min(span[1], end) - max(span[0], start))


def max_running(spans: list[tuple[float, float]]) -> int:
    return _timing.max_running(spans)
