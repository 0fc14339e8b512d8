"""What a transfer writes into: the :class:`Sink` seam.

A sink takes bytes at their offsets and says how far its range still reaches (a split may
cut it shorter while it runs) and whether its bytes are still wanted at all. The transfer
knows nothing else of files, journals or progress; the engine's sinks
(:mod:`downloader.engine.sinks`) say where the bytes land.
"""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    @property
    def pos(self) -> int:
        """The next byte the range wants."""
        ...

    @property
    def live(self) -> bool:
        """Whether its bytes are still wanted (False: the transfer stops, writing nothing)."""
        ...

    def reach(self) -> int | None:
        """One past the last byte wanted; None: to the end of the object."""
        ...

    async def write(self, pos: int, data: memoryview) -> None:
        """Take ``data`` at ``pos`` (which is :attr:`pos`)."""
        ...
