# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time spans and how many of them ran at once: the one definition the collection uses.

Private to the collection (controller side only): the time_saved callback, the
``max_running`` and ``concurrency`` filters, the lab's roles, Molecule verifies and tests
all count "jobs running at once" here.

A span is a half-open interval ``[start, end)`` in seconds. Two spans overlap when one
starts before the other ends, by more than ``tolerance`` seconds: a span that starts within
``tolerance`` of another's end is a hand-off (one after the other), not concurrency. The
default tolerance is 0, for timestamps taken where the work ran (on the hosts); the
callback passes its own for times taken on the controller, where Ansible starts the next
host in a freed worker before it reports the previous host's result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Span = tuple[float, float]
# What is left of a span shorter than the tolerance: it still ran, once.
MIN_SPAN = 1e-9


def trimmed(spans: Iterable[Span], tolerance: float = 0.0) -> list[Span]:
    """The spans with their last ``tolerance`` seconds cut off; empty spans dropped.

    A span shorter than the tolerance keeps an instant (it ran: it counts once). Every
    figure below is computed on these, so that "how many at once" and "how much time
    overlapped" can never disagree.
    """
    out = []
    for start, end in spans:
        if end > start:
            out.append((float(start), max(float(end) - tolerance, float(start) + MIN_SPAN)))
    return out


def max_running(spans: Iterable[Span], tolerance: float = 0.0) -> int:
    """Largest number of spans open at the same instant."""
    events: list[tuple[float, int]] = []
    for start, end in trimmed(spans, tolerance):
        events.append((start, 1))
        events.append((end, -1))
    # At equal times, ends (-1) sort before starts (+1): [a, b) and [b, c) never overlap.
    events.sort()
    best = current = 0
    for _stamp, delta in events:
        current += delta
        best = max(best, current)
    return best


def union_length(spans: Iterable[Span], tolerance: float = 0.0) -> float:
    """Seconds during which at least one span was open."""
    total = 0.0
    cur_start = cur_end = None
    for start, end in sorted(trimmed(spans, tolerance)):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def overlap_seconds(spans: Iterable[Span], tolerance: float = 0.0) -> float:
    """Seconds of span time that ran beside another span: total length minus union.

    Zero exactly when ``max_running`` is at most 1, for the same tolerance.
    """
    cut = trimmed(spans, tolerance)
    return max(0.0, sum(end - start for start, end in cut) - union_length(cut))


def subtract(span: Span, holes: Iterable[Span]) -> list[Span]:
    """The parts of ``span`` outside every hole."""
    parts = [span]
    for hole_start, hole_end in sorted(holes):
        kept = []
        for start, end in parts:
            if hole_end <= start or hole_start >= end:
                kept.append((start, end))
                continue
            if hole_start > start:
                kept.append((start, hole_start))
            if hole_end < end:
                kept.append((hole_end, end))
        parts = kept
    return parts


def length_within(spans: Iterable[Span], start: float, end: float) -> float:
    """Seconds of the spans (summed, overlaps counted each time) between start and end."""
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


# -- the input shapes the filters accept -----------------------------------------------------


class SpanError(ValueError):
    """An input that is not a list of spans; the message names the element."""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise SpanError(f"{where} is a boolean, not a time in seconds")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SpanError(f"{where} is {value!r}, not a time in seconds") from None


def to_span(value: Any, where: str) -> tuple[Span, dict[str, str]]:
    """One span and its labels from [start, end], {start, end, ...} or "GROUP HOST START END"."""
    labels: dict[str, str] = {}
    if isinstance(value, str):
        fields = value.split()
        if len(fields) != 4:
            raise SpanError(
                f"{where} is {value!r}: expected a line 'GROUP HOST START END' (epoch seconds)"
            )
        labels = {"group": fields[0], "host": fields[1]}
        start, end = fields[2], fields[3]
    elif isinstance(value, Mapping):
        if "start" not in value or "end" not in value:
            raise SpanError(f"{where} has no 'start' and 'end' keys: {sorted(value)!r}")
        start, end = value["start"], value["end"]
        labels = {k: str(value[k]) for k in ("group", "host") if value.get(k) is not None}
    elif isinstance(value, Sequence) and len(value) == 2:
        start, end = value
    else:
        raise SpanError(
            f"{where} is {value!r}: expected [start, end], a dict with start and end, "
            "or a line 'GROUP HOST START END'"
        )
    begin, finish = _number(start, f"{where} start"), _number(end, f"{where} end")
    if finish < begin:
        raise SpanError(f"{where} ends ({finish}) before it starts ({begin})")
    return (begin, finish), labels


def to_spans(values: Any, name: str = "spans") -> list[tuple[Span, dict[str, str]]]:
    if isinstance(values, (str, Mapping)) or not isinstance(values, Sequence):
        raise SpanError(f"{name} must be a list, got {type(values).__name__}")
    return [to_span(value, f"{name}[{index}]") for index, value in enumerate(values)]


def concurrency(values: Any, tolerance: float = 0.0) -> dict[str, dict[str, Any]]:
    """Per group: jobs, max_running, start_spread, wall, hosts (spans without a group: "all")."""
    groups: dict[str, list[tuple[Span, dict[str, str]]]] = {}
    for span, labels in to_spans(values):
        groups.setdefault(labels.get("group", "all"), []).append((span, labels))
    out: dict[str, dict[str, Any]] = {}
    for group in sorted(groups):
        rows = groups[group]
        spans = [span for span, _labels in rows]
        starts = [start for start, _end in spans]
        out[group] = {
            "jobs": len(spans),
            "max_running": max_running(spans, tolerance),
            "start_spread": round(max(starts) - min(starts), 2),
            "wall": round(max(end for _start, end in spans) - min(starts), 2),
            "hosts": sorted({labels["host"] for _span, labels in rows if "host" in labels}),
        }
    return out
