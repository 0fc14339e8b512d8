"""Shared fixtures: a running simulator, in the test's event loop or in a thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from downloader.sim import Simulator, SimulatorThread


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A started ``Simulator()`` (default catalog) on 127.0.0.1, stopped afterwards."""
    simulator = Simulator()
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
def sim_thread() -> Iterator[Simulator]:
    """A ``Simulator()`` served from a background thread, for sync and subprocess tests."""
    simulator = Simulator()
    with SimulatorThread(simulator):
        yield simulator
