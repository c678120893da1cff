"""The scenarios start first; print how long each Molecule scenario took, even with -q."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_scenarios_found first: it starts the scenario pool (the scenarios run in threads
    of their own), then the other tests run while the scenarios do."""
    items.sort(key=lambda item: item.name != "test_scenarios_found")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "") != "call":
                continue
            seconds = dict(report.user_properties).get("molecule_seconds")
            if seconds is not None:
                rows.append((report.nodeid.split("[", 1)[-1].rstrip("]"), seconds, outcome))
    if rows:
        terminalreporter.section("Molecule scenario times")
        for scenario, seconds, outcome in sorted(rows):
            terminalreporter.write_line(f"{scenario:<20} {seconds:7.1f}s  {outcome}")
