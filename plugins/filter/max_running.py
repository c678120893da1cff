# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The max_running filter: how many time spans were open at the same instant."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: max_running
short_description: How many jobs (or tasks) ran at the same instant
version_added: 0.2.0
description:
  - Takes time spans, such as the start and end timestamps that jobs wrote on the hosts,
    and returns the largest number of them that were open at the same instant.
  - A span is half-open, from its start included to its end excluded, so a span that
    starts exactly when another ends does not overlap it. With O(tolerance), a span that
    starts less than O(tolerance) seconds before another ends is a hand-off, not
    concurrency.
  - The same definition as the C(tplabs.async_tasks.time_saved) callback and the
    P(tplabs.async_tasks.concurrency#filter) filter.
positional: _input
options:
  _input:
    description:
      - A list of spans. Each span is a list C([start, end]) of numbers, a dictionary with
        keys C(start) and C(end), or a string C(GROUP HOST START END) (what the lab's jobs
        write on the hosts).
    type: list
    elements: raw
    required: true
  tolerance:
    description: Seconds at the end of each span that do not count as overlap.
    type: float
    default: 0
author:
  - tplabs developers (@tplabs)
"""

EXAMPLES = r"""
- name: Three jobs, two of them at once
  ansible.builtin.debug:
    msg: "{{ [[0, 5], [1, 6], [6, 9]] | tplabs.async_tasks.max_running }}"  # 2

- name: From the lines the jobs wrote on the hosts ("GROUP HOST START END")
  ansible.builtin.assert:
    that: job_lines | tplabs.async_tasks.max_running <= 2
  vars:
    job_lines: "{{ ansible_play_hosts | map('extract', hostvars, ['read', 'stdout_lines']) | flatten }}"
"""

RETURN = r"""
_value:
  description: The largest number of spans open at the same instant (0 for no span).
  type: int
"""

from typing import Any  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._timing import (  # noqa: E402
    SpanError,
    max_running,
    to_spans,
)


def max_running_filter(spans: Any, tolerance: Any = 0) -> int:
    try:
        parsed = to_spans(spans)
        cut = float(tolerance)
    except SpanError as err:
        raise AnsibleFilterError(f"max_running: {err}") from None
    except (TypeError, ValueError):
        raise AnsibleFilterError(
            f"max_running: tolerance must be a number of seconds, got {tolerance!r}"
        ) from None
    return max_running([span for span, _labels in parsed], cut)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"max_running": max_running_filter}
