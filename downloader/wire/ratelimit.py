"""A token bucket shared by every connection, for ``--limit-rate``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from downloader.errors import UsageError
from downloader.text.fmt import parse_size


def parse_rate(text: str) -> int:
    """``50M`` -> bytes per second (K/M/G are powers of 1024; a trailing ``B``/``/s`` is ok)."""
    try:
        value = parse_size(text)
    except ValueError:
        raise UsageError(
            f"invalid rate {text!r}: use a number with an optional K, M or G"
        ) from None
    if value < 1024:
        raise UsageError(f"rate {text!r} is too low: at least 1K")
    return value


class RateLimiter:
    """Callers take ``n`` bytes' worth of tokens after reading them; the bucket refills at
    ``rate`` bytes/s.

    It starts empty, and its clock starts at the first take: a full bucket at the start
    (or one filled while the run listed files and opened connections) would let a transfer
    of a few seconds average well over ``rate`` (60M gave 67 MiB/s). From the first take to
    the return of the last, at most ``rate`` bytes pass per second. Only a pause within a
    transfer refills it, by at most a quarter second's worth, so a connection that waited
    on the network does not lose its share.
    """

    def __init__(
        self,
        rate: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(rate / 4, 64 * 1024)
        self._clock = clock
        self._sleep = sleep
        self._tokens = 0.0
        self._stamp: float | None = None  # no refill before the first take
        self._lock = asyncio.Lock()

    async def take(self, n: int) -> None:
        async with self._lock:  # FIFO, so connections share the rate fairly
            wait = self.charge(n)
            if wait > 0:
                await self._sleep(wait)

    def charge(self, n: int) -> float:
        """Take ``n`` bytes' worth now; returns the seconds the caller must hold off before
        it takes more (or returns). For callers that cannot await (libcurl's write
        callback): the debt is shared, so connections that charge in turn queue as
        :meth:`take`'s do."""
        now = self._clock()
        if self._stamp is not None:
            refill = (now - self._stamp) * self.rate
            self._tokens = min(self.capacity, self._tokens + refill)
        self._stamp = now
        self._tokens -= n
        return -self._tokens / self.rate if self._tokens < 0 else 0.0
