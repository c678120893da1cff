"""Shared pytest set-up: the repo paths, and no skip may pass silently in CI."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".collections"

# Unit tests import the plugins as `ansible_collections.tplabs.async_tasks...` from the
# installed copy (make install), or from the work tree through a symlink farm made here.
_farm = REPO / ".cache" / "collections"
_link = _farm / "ansible_collections" / "tplabs" / "async_tasks"
if not _link.exists():
    _link.parent.mkdir(parents=True, exist_ok=True)
    _link.symlink_to(REPO)
if str(_farm) not in sys.path:
    sys.path.insert(0, str(_farm))


# Every Python process the tests start loads the code of AnsiballZ payloads from a bytecode
# cache and freezes its GC at its first fork (tests/python_speedups.py, put in the venv by
# make venv): less CPU for the same work. Set either empty to run as Python does by default.
os.environ.setdefault("TPLABS_ZIPIMPORT_CACHE", str(REPO / ".cache" / "zipimport"))
os.environ.setdefault("TPLABS_GC_FREEZE", "1")

# Ported ansible-core test modules and plugins (async_test.py would be taken for a test file
# and run as a module): tests/integration/test_parity.py runs them through ansible-playbook.
collect_ignore_glob = ["integration/parity/*"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


CPU_START = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With CI=true, a skipped test is a failed test: nothing may pass by not running.

    Also each test's CPU, set-up to teardown (its fixtures and the ansible-playbook runs it
    waited for; not the detached async jobs): the property cpu_s of reports/*.xml, to see
    where a stage's CPU goes.
    """
    if call.when == "teardown" and CPU_START in item.stash:
        item.user_properties.append(("cpu_s", round(cpu_seconds() - item.stash[CPU_START], 2)))
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true makes skips fail): {reason}"


def cpu_seconds() -> float:
    """User + system CPU of this process and of every child it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[CPU_START] = cpu_seconds()
