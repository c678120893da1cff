"""time_saved on play shapes without async jobs (issue 9 points 1, 6 and 9), one playbook run.

shapes/plays.yml: serial 1 and 2, the free and host_pinned strategies, sub-second tasks one
host at a time, a rescued block, ignore_errors, a handler, include_tasks, include_role, a
loop, run_once, delegate_to, and an unreachable host. Hosts stamp their own work (the ground truth).
"""

from __future__ import annotations

import pytest

from tests.integration.time_saved_truth import Shaped, max_running, run_shape, validate

pytestmark = pytest.mark.integration

ALL_PLAYS = [
    "Shapes serial 1",
    "Shapes serial 2",
    "Shapes free strategy",
    "Shapes host_pinned strategy",
    "Shapes sub-second tasks one host at a time",
    "Shapes forgiven failures, handlers, blocks, includes, loops, run_once",
    "Shapes unreachable host",
]


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Shaped:
    # rc 4: the unreachable host, on purpose
    return run_shape("plays", tmp_path_factory.mktemp("plays"), rc=4)


def test_report_is_valid_and_has_each_play_once(shaped: Shaped) -> None:
    validate(shaped.report)
    assert [play["name"] for play in shaped.report["plays"]] == ALL_PLAYS
    for name in ALL_PLAYS:
        assert shaped.run.stdout.count(f"TIME SAVED [play: {name}]") == 1, name


@pytest.mark.parametrize(("name", "batches"), [("serial1", 3), ("serial2", 2)])
def test_serial_batches_are_one_play_whose_wall_covers_every_batch(
    shaped: Shaped, name: str, batches: int
) -> None:
    """Point 1: each serial batch restarts the play; the report keeps one play for all."""
    play = shaped.play(f"Shapes serial {name[-1]}")
    truth = shaped.truth(name)
    assert sorted(truth) == ["host1", "host2", "host3"]
    assert play["batches"] == batches
    first = min(start for start, _end in truth.values())
    last = max(end for _start, end in truth.values())
    # the play's wall holds every host's work, from the first batch to the last
    assert play["start"] <= first and play["end"] >= last, (play, truth)
    assert play["wall"] >= last - first
    # include_tasks gives each batch tasks of its own; together they ran on every host
    stamped = [t for t in play["tasks"] if t["name"] == f"Run and stamp {name}"]
    assert sorted(h for t in stamped for h in t["hosts"]) == ["host1", "host2", "host3"]
    if batches == 3:  # one host at a time: the hosts say so, and nothing was saved
        assert max_running(list(truth.values())) == 1
        assert {t["max_concurrent_hosts"] for t in stamped} == {1}
        assert play["speedup"] <= 1.05, play


def test_one_definition_of_at_once(shaped: Shaped) -> None:
    """Point 9: a task that ran on at most one host at once saved nothing, and is not listed."""
    tasks = [task for play in shaped.report["plays"] for task in play["tasks"]]
    alone = [task for task in tasks if task["max_concurrent_hosts"] <= 1]
    assert alone  # the serial 1 and throttle 1 tasks
    assert [(t["name"], t["saved"]) for t in alone if t["saved"] != 0] == []


def test_forgiven_failures_are_not_failed_hosts(shaped: Shaped) -> None:
    """Point 6: ansible's recap says failed=0 (rescued=1, ignored=1); so does the report."""
    assert "host2                      : ok=" in shaped.run.stdout
    recap = {line.split()[0]: line for line in shaped.run.stdout.splitlines() if " : ok=" in line}
    assert "failed=0" in recap["host2"] and "rescued=1" in recap["host2"]
    assert "failed=0" in recap["host3"] and "ignored=1" in recap["host3"]
    play = shaped.play("Shapes forgiven failures, handlers, blocks, includes, loops, run_once")
    assert play["hosts"]["host2"]["failed"] == 0 and play["hosts"]["host2"]["rescued"] == 1
    assert play["hosts"]["host3"]["failed"] == 0 and play["hosts"]["host3"]["ignored"] == 1
    assert play["failed_time"] == 0.0
    block = shaped.run.stdout.split("TIME SAVED [play: Shapes forgiven")[1].split("TIME SAVED")[0]
    assert "hosts 3: 3 ok" in block and "with failures" not in block
    # their time is work like any other
    failing = next(t for t in play["tasks"] if t["name"] == "Fail on host2")
    assert failing["hosts"]["host2"]["baseline"] == failing["hosts"]["host2"]["duration"]


def test_other_shapes_are_all_there(shaped: Shaped) -> None:
    play = shaped.play("Shapes forgiven failures, handlers, blocks, includes, loops, run_once")
    names = {task["name"]: task for task in play["tasks"]}
    assert sorted(names["Shapes handler"]["hosts"]) == ["host1", "host2", "host3"]
    assert names["Loop of two items"]["hosts"]["host1"]["items"] == 2
    assert len(names["Once for all hosts"]["hosts"]) == 1
    assert names["Rescue host2"]["hosts"].keys() == {"host2"}
    assert sorted(names["shapes_role : A task of a role"]["hosts"]) == ["host1", "host2", "host3"]
    # no job, no failure: every host's busy time is its work
    assert play["baseline"] == pytest.approx(
        sum(h["busy"] for h in play["hosts"].values()), abs=0.01
    )
    for strategy in ("free", "pinned"):
        assert sorted(shaped.truth(strategy)) == ["host1", "host2", "host3"]
        tasks = [
            t
            for p in shaped.report["plays"]
            for t in p["tasks"]
            if t["name"] == f"Run and stamp {strategy}"
        ]
        # each host includes its own copy of the file under these strategies
        assert sorted(h for t in tasks for h in t["hosts"]) == ["host1", "host2", "host3"]


def test_unreachable_host_is_apart(shaped: Shaped) -> None:
    play = shaped.play("Shapes unreachable host")
    assert play["hosts"]["shapes-ghost"]["unreachable"] == 1
    assert play["hosts"]["shapes-ghost"]["baseline"] == 0.0
    assert play["failed_time"] > 0
    block = shaped.run.stdout.split("TIME SAVED [play: Shapes unreachable host]")[1]
    assert "hosts 4: 3 ok, 0 with failures, 1 unreachable" in block
