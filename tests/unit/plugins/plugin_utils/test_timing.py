"""The one definition of "running at once", and the filters built on it."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tplabs.async_tasks.plugins.filter.concurrency import FilterModule as Conc
from ansible_collections.tplabs.async_tasks.plugins.filter.max_running import FilterModule as Max
from ansible_collections.tplabs.async_tasks.plugins.plugin_utils import _timing

max_running = Max().filters()["max_running"]
concurrency = Conc().filters()["concurrency"]


@pytest.mark.parametrize(
    ("spans", "tolerance", "expected"),
    [
        ([], 0, 0),
        ([(0, 5)], 0, 1),
        ([(0, 5), (5, 10)], 0, 1),  # back to back: half-open spans
        ([(0, 5), (4.9, 10)], 0, 2),
        ([(0, 5), (4.9, 10)], 0.15, 1),  # a hand-off within the tolerance
        ([(0, 5), (1, 6), (2, 7)], 0, 3),
        ([(0, 5), (1, 6), (6, 9)], 0, 2),
        ([(0, 0.1), (0.5, 0.6)], 0.15, 1),  # shorter than the tolerance: each still ran
        ([(0, 0.1), (0, 0.1)], 0.15, 2),
        ([(1, 1)], 0, 0),  # empty
    ],
)
def test_max_running(spans, tolerance, expected):
    assert _timing.max_running(spans, tolerance) == expected


@pytest.mark.parametrize(
    "spans",
    [[(0, 5), (4.95, 10)], [(0, 1), (0.9, 2), (1.95, 3)], [(0, 5), (1, 6)], [(0, 3), (3, 6)]],
)
@pytest.mark.parametrize("tolerance", [0, 0.15])
def test_overlap_and_max_running_agree(spans, tolerance):
    """One definition: no overlap time exactly when at most one runs at once."""
    running = _timing.max_running(spans, tolerance)
    overlap = _timing.overlap_seconds(spans, tolerance)
    assert (running <= 1) == (overlap == 0)


def test_union_length():
    assert _timing.union_length([(0, 2), (1, 3), (5, 6)]) == 4
    assert _timing.union_length([(0, 2), (1, 3)], tolerance=0.5) == pytest.approx(2.5)


def test_filter_accepts_every_shape():
    assert max_running([[0, 5], {"start": 1, "end": 6}, "g h 2 7"]) == 3
    assert max_running([[0, 5], [4.9, 10]], tolerance=0.15) == 1


def test_concurrency_matches_what_the_roles_printed():
    lines = [
        "poll0 host1 100.0 105.0",
        "poll0 host2 100.2 105.2",
        "poll0 host3 105.1 110.1",
        "batch host1 0 1",
    ]
    assert concurrency(lines) == {
        "batch": {
            "jobs": 1,
            "max_running": 1,
            "start_spread": 0.0,
            "wall": 1.0,
            "hosts": ["host1"],
        },
        "poll0": {
            "jobs": 3,
            "max_running": 2,
            "start_spread": 5.1,
            "wall": 10.1,
            "hosts": ["host1", "host2", "host3"],
        },
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0 5", "must be a list"),
        ([[0]], r"spans\[0\] is \[0\]"),
        (["a b c"], "expected a line 'GROUP HOST START END'"),
        ([{"start": 1}], "no 'start' and 'end' keys"),
        ([[5, 1]], "ends .* before it starts"),
        ([["x", 1]], "start is 'x', not a time"),
        ([[True, 1]], "start is a boolean"),
    ],
)
def test_filter_bad_input(value, message):
    with pytest.raises(AnsibleFilterError, match=message):
        max_running(value)


def test_filter_bad_tolerance():
    with pytest.raises(AnsibleFilterError, match="tolerance must be a number of seconds, got 'x'"):
        concurrency([[0, 1]], tolerance="x")


def test_subtract_and_length_within():
    assert _timing.subtract((0, 10), []) == [(0, 10)]
    assert _timing.subtract((0, 10), [(2, 3), (5, 12)]) == [(0, 2), (3, 5)]
    assert _timing.subtract((0, 10), [(-1, 11)]) == []
    assert _timing.subtract((0, 10), [(10, 12)]) == [(0, 10)]  # half-open: touching is no hole
    assert _timing.length_within([(0, 4), (2, 6)], 3, 5) == pytest.approx(3.0)
    assert _timing.length_within([(0, 1)], 2, 3) == 0.0
