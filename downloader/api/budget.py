"""A budget for our own RDS API calls, so the tool never exceeds the per-user rate limit.

RDS allows "60 calls per minute for a single user" (facts §3, [HW-doc] rds_00_0002), and the
gateway also throttles per second (APIG.0308 "... limit:XX,time:1 second"). Two rules together:

* a sliding window: at most ``per_minute`` calls in any ``period`` seconds (the documented
  limit, never exceeded whatever the burst);
* a token bucket of ``burst`` tokens refilled at ``per_minute / period`` per second, which
  spreads calls out instead of spending the whole minute in the first second.

Clock and sleep are injected so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

DEFAULT_PER_MINUTE = 60
DEFAULT_BURST = 10
_EPSILON = 1e-9  # float refill arithmetic must not cause a second, tiny sleep
_MIN_SLEEP = 0.001


class ApiBudget:
    """Await :meth:`acquire` before each API request."""

    def __init__(
        self,
        per_minute: int = DEFAULT_PER_MINUTE,
        *,
        burst: int | None = None,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        if period <= 0:
            raise ValueError("period must be positive")
        self.per_minute = per_minute
        self.period = period
        self.burst = max(1, min(per_minute, burst if burst is not None else DEFAULT_BURST))
        self._rate = per_minute / period  # tokens per second
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._window: deque[float] = deque(maxlen=per_minute)
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.acquired = 0

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self._rate)
        self._stamp = now

    def wait_time(self) -> float:
        """Seconds until a call may start (0 if now). Pure apart from reading the clock."""
        now = self._clock()
        self._refill(now)
        waits = [self._paused_until - now]
        if self._tokens < 1.0 - _EPSILON:
            waits.append((1.0 - self._tokens) / self._rate)
        if len(self._window) >= self.per_minute:
            waits.append(self._window[0] + self.period - now)
        wait = max(waits)
        return wait if wait > 0 else 0.0

    async def acquire(self) -> None:
        """Wait until a call fits the budget, then spend it. Waiters are served in order."""
        async with self._lock:
            while True:
                wait = self.wait_time()
                if wait <= 0:
                    break
                # A floor, so float rounding cannot turn this into a busy loop of 1e-15 s sleeps.
                await self._sleep(max(wait, _MIN_SLEEP))
            now = self._clock()
            self._tokens -= 1.0
            self._window.append(now)
            self.acquired += 1

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (the server said Retry-After / throttled us)."""
        if seconds > 0:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
