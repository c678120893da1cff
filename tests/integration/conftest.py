"""How the integration tests share out between pytest-xdist workers (`make integration`:
``-n 4 --dist loadgroup``).

A module's tests run together, in order, on one worker (its module fixtures and the state
its tests leave for each other stay on that worker): each test gets its module as xdist
group, unless it names a group of its own, as test_steps.py does to spread its sleeping jobs
over three lanes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE) and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
