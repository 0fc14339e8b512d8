"""Test doubles shared by the suites. Import as ``from fakes import FakeClock``: pytest puts
``tests/`` on ``sys.path`` because ``tests/conftest.py`` lives there."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Injected time: a monotonic clock that moves only when told, and a sleep that moves it
    instead of waiting.

    Pass the instance itself (or its ``clock`` method) where code takes
    ``clock: Callable[[], float]``, and ``sleep`` where it takes
    ``sleep: Callable[[float], Awaitable[None]]``. Every sleep asked for is kept in ``sleeps``.
    The default start is not zero, so code that treats a zero timestamp as "never" is caught.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self.sleeps: list[float] = []

    @property
    def now(self) -> float:
        """The current fake time (read-only: move it with ``advance`` or ``sleep``)."""
        return self._now

    def clock(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the time forward and return the new time."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds} s)")
        self._now += seconds
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))  # asyncio.sleep takes a negative delay as zero
        await asyncio.sleep(0)  # still a suspension point, so other tasks run as they would
