# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the time_saved callback writes, and the summary it publishes as custom stats.

Private to the collection (controller side only).

Under ansible-runner (the engine of AWX and of execution environments) the environment
variable ``AWX_ISOLATED_DATA_DIR`` names the run's artifacts directory
(``<private_data_dir>/artifacts/<ident>``); with no explicit output path, the callback
writes its JSON report, HTML timeline and Chrome trace there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from typing import Any

RUNNER_ARTIFACTS_ENV = "AWX_ISOLATED_DATA_DIR"
RUNNER_FILES = {
    "json": "time_saved.json",
    "timeline": "time_saved.html",
    "trace": "time_saved.trace.json",
}
STATS_KEY = "time_saved"


def write_atomically(path: str, text: str) -> None:
    """Write a file whole or not at all: a temporary file beside it, then a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".time_saved-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def runner_artifacts(environ: Mapping[str, str]) -> str | None:
    """The ansible-runner artifacts directory of this run, when there is one."""
    path = environ.get(RUNNER_ARTIFACTS_ENV) or ""
    return path if path and os.path.isdir(path) else None


def default_paths(environ: Mapping[str, str]) -> dict[str, str]:
    """Output paths to use when none is configured: the runner's artifacts, else none."""
    directory = runner_artifacts(environ)
    if directory is None:
        return {}
    return {kind: os.path.join(directory, name) for kind, name in RUNNER_FILES.items()}


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures an operator looks at first, small enough for custom stats (AWX artifacts)."""
    return {
        "version": report["version"],
        "wall": report["wall"],
        "baseline": report["baseline"],
        "saved": report["saved"],
        "speedup": report["speedup"],
        "wall_if_sync_estimate": (report.get("what_if") or {}).get("wall_if_sync"),
        "failed_time": report.get("failed_time", 0.0),
        "job_states": report.get("job_states", {}),
        "plays": [
            {
                "name": play["name"],
                "wall": play["wall"],
                "baseline": play["baseline"],
                "saved": play["saved"],
                "speedup": play["speedup"],
            }
            for play in report["plays"]
        ],
    }


def publish(stats: Any, report: dict[str, Any]) -> bool:
    """Put the summary in the run's custom stats, as ``set_stats`` would (aggregate, _run)."""
    setter = getattr(stats, "update_custom_stats", None)
    if not callable(setter):
        return False
    setter(STATS_KEY, summary(report))
    return True
