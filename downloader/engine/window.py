"""The reorder window between parallel ranges and an in-order consumer.

Ranges land at their offsets, in any order; the consumer takes bytes strictly in order from
``next``. The window is one ring of ``size`` bytes (anonymous memory, so pages are only
backed once bytes land in them): byte ``p`` lives at ``p % size``, and nothing past
``next + size`` is ever written (a write waits for :meth:`Window.room`; the scheduler's
ranges are admitted only when they end inside, :meth:`Window.admits`). So memory is
bounded by the window whatever the file's size, nothing is copied twice, and a slow
consumer slows the fetch instead of growing memory.
"""

from __future__ import annotations

import asyncio
import mmap

from downloader.ranges import RangeSet

TAKE_MAX = 4 * 1024 * 1024  # the most handed to the consumer at once
PAGE = mmap.PAGESIZE


class Window:
    def __init__(self, start: int, size: int) -> None:
        self.next = start  # the next byte the consumer takes
        self.size = size
        self.peak = 0  # the most bytes held at once
        self._ring = mmap.mmap(-1, size)
        self._view = memoryview(self._ring)
        # Bytes held or already taken: [0, next) always, and what landed after it.
        self._held = RangeSet([(0, start)] if start else [])
        self._lent = 0  # bytes at next handed out by take(), not yet released
        self._closed = False
        self._dropped = False
        self._changed = asyncio.Condition()

    @property
    def buffered(self) -> int:
        return self._held.covered() - self.next

    def admits(self, end: int) -> bool:
        """A range ending at ``end`` fits in the window as it stands."""
        return end <= self.next + self.size

    async def room(self, end: int) -> None:
        """Wait until bytes up to ``end`` fit in the window."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or self.admits(end))

    async def put(self, pos: int, data: memoryview) -> int:
        """Hold ``data`` (landed at ``pos``, inside the window) until the consumer reaches
        it; bytes held or taken already are skipped. Returns how many bytes were new."""
        end = pos + len(data)
        if end > self.next + self.size:
            raise ValueError("bytes past the window")  # room() was not awaited
        new = 0
        for a, b in _gaps(self._held, pos, end):
            self._copy_in(a, data[a - pos : b - pos])
            new += b - a
        if new:
            self._held.add(pos, end)
            self.peak = max(self.peak, self.buffered)
            async with self._changed:
                self._changed.notify_all()
        return new

    def _copy_in(self, pos: int, data: memoryview) -> None:
        at = pos % self.size
        first = min(len(data), self.size - at)
        self._view[at : at + first] = data[:first]
        if first < len(data):
            self._view[: len(data) - first] = data[first:]

    async def take(self) -> memoryview | None:
        """A view of the held bytes at ``next`` (waiting for them), lent until
        :meth:`release`; None once closed and nothing more is at ``next``."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or self._held.prefix() > self.next)
            run = self._held.prefix() - self.next
            if run <= 0 or (self._closed and self._dropped):
                return None
            at = self.next % self.size
            n = min(run, self.size - at, TAKE_MAX)
            self._lent = n
            return self._view[at : at + n]

    async def release(self) -> None:
        """The consumer has the bytes :meth:`take` lent: their room is free again, and
        their pages go back to the system (the ring wraps: without that, every page of it
        would stay resident after the first lap, however little is held)."""
        async with self._changed:
            at = self.next % self.size
            lo = -(-at // PAGE) * PAGE
            hi = (at + self._lent) // PAGE * PAGE
            if hi > lo:
                self._ring.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
            self.next += self._lent
            self._lent = 0
            self._changed.notify_all()

    async def close(self, *, drop: bool = False) -> None:
        """No more bytes will land; ``drop`` discards what is held (the stream failed)."""
        async with self._changed:
            self._closed = True
            self._dropped = drop
            self._changed.notify_all()


def _gaps(held: RangeSet, start: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` that ``held`` does not cover."""
    out = []
    pos = start
    for a, b in held.intervals():
        if b <= pos:
            continue
        if a >= end:
            break
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
        if pos >= end:
            break
    if pos < end:
        out.append((pos, end))
    return out
