# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The concurrency filter: per group of jobs, how many ran at once, and over how long."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: concurrency
short_description: Per group of jobs, how many ran at once and over how long
version_added: 0.2.0
description:
  - Takes the start and end timestamps that jobs wrote on the hosts, groups them, and
    returns for each group the number of jobs, the largest number running at the same
    instant, how far apart they started, and the time from the first start to the last end.
  - Counts "running at once" exactly as P(tplabs.async_tasks.max_running#filter) does.
positional: _input
options:
  _input:
    description:
      - A list of spans. Each span is a string C(GROUP HOST START END) (epoch seconds), a
        dictionary with keys C(start), C(end) and optionally C(group) and C(host), or a list
        C([start, end]). Spans without a group are in group C(all).
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
- name: Read the intervals the jobs wrote, then summarise them
  ansible.builtin.set_fact:
    measured: "{{ lines | tplabs.async_tasks.concurrency }}"
  vars:
    lines:
      - poll0 host1 100.0 105.0
      - poll0 host2 100.2 105.2
      - poll0 host3 105.1 110.1
# measured.poll0 == {"jobs": 3, "max_running": 2, "start_spread": 5.1,
#                    "wall": 10.1, "hosts": ["host1", "host2", "host3"]}
"""

RETURN = r"""
_value:
  description: One entry per group, by group name.
  type: dict
  contains:
    jobs:
      description: Number of spans in the group.
      type: int
    max_running:
      description: Largest number of spans open at the same instant.
      type: int
    start_spread:
      description: Seconds between the first and the last start.
      type: float
    wall:
      description: Seconds from the first start to the last end.
      type: float
    hosts:
      description: The hosts named by the spans, sorted.
      type: list
      elements: str
"""

from typing import Any  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.tplabs.async_tasks.plugins.plugin_utils._timing import (  # noqa: E402
    SpanError,
    concurrency,
)


def concurrency_filter(spans: Any, tolerance: Any = 0) -> dict[str, dict[str, Any]]:
    try:
        cut = float(tolerance)
    except (TypeError, ValueError):
        raise AnsibleFilterError(
            f"concurrency: tolerance must be a number of seconds, got {tolerance!r}"
        ) from None
    try:
        return concurrency(spans, cut)
    except SpanError as err:
        raise AnsibleFilterError(f"concurrency: {err}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"concurrency": concurrency_filter}
