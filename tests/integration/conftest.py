"""How the integration tests share out between pytest-xdist workers (`make integration`:
``-n 3 --dist loadfile``).

Each test file is one unit of work: its tests run together, in order, on one worker (module
fixtures and the state its tests leave each other stay there). Two changes to plain
``loadfile``, made by a scheduler of our own (``pytest_xdist_make_scheduler``, the hook
pytest-xdist offers for this):

- a file listed in LANES (lanes.py) splits into lanes, each a unit of its own: test_steps.py
  runs every lab step with jobs that sleep, about 15 min on one worker, the longest unit;
- the units start longest first (WEIGHTS in lanes.py, seconds measured on a quiet 2-core
  machine; a unit not listed weighs 5 s per test), so that no long unit starts last, alone.

(``--dist loadgroup`` with ``xdist_group`` marks would do the lanes, but with pytest 9.2
pytest-xdist 3.8 drops the groups without a word and spreads the tests one by one:
pytest-dev/pytest-xdist#1386.)
"""

from __future__ import annotations

from typing import Any

from tests.integration.lanes import PER_TEST, WEIGHTS, unit_of

try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # no pytest-xdist (make test-matrix's venvs): the tests run in one process
    LoadScopeScheduling = None


if LoadScopeScheduling is not None:

    class LaneScheduling(LoadScopeScheduling):
        """pytest-xdist's per-file scheduling, with lanes, longest unit first."""

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            def weight(unit: str) -> float:
                return WEIGHTS.get(unit, PER_TEST * len(self.workqueue[unit]))

            heaviest = max(self.workqueue, key=weight)
            self.workqueue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    def pytest_xdist_make_scheduler(config: Any, log: Any) -> LoadScopeScheduling | None:
        if config.getvalue("dist") == "loadfile":
            return LaneScheduling(config, log)
        return None
