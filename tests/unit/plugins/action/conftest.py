"""Fixtures of the async_wait action tests (the fakes are in async_wait_fakes.py).

The fakes import ansible's plugin loader, so they are imported inside the fixtures, once the
collection loader is set up, not when this file is read.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def clock():
    from async_wait_fakes import FakeClock

    return FakeClock()


@pytest.fixture
def make_action(mocker, monkeypatch, clock):
    from async_wait_fakes import action_factory

    return action_factory(mocker, monkeypatch, clock)
