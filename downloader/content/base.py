"""What every content checker is (:class:`Checker`), the CRC-32 they share, and the
bounded buffer their headers are gathered in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from downloader.results import ContentVerdict, Damage

try:  # ISA-L's CRC-32 runs ~19 GiB/s here against zlib's ~3.9 (the check's main cost)
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib gives the same values
    from zlib import crc32 as _crc32

crc32: Callable[[bytes | bytearray | memoryview, int], int] = _crc32

# A damaged file names this many places at most: enough to heal a few transit errors,
# bounded whatever a hostile file holds.
MAX_DAMAGE = 16


class Checker(Protocol):
    """One file's content check: ``feed`` its bytes in order, then ``finish``."""

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """The next bytes of the file (any size, possibly empty)."""
        ...

    def finish(self) -> ContentVerdict:
        """The verdict, once every byte was fed (an end inside a record is damage)."""
        ...


class Stopped(Exception):
    """A parser met something it cannot read past (the damage is recorded)."""


class Gather:
    """Up to ``n`` bytes gathered across feeds (a header split between two writes)."""

    __slots__ = ("buf", "want")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.want = 0

    def need(self, n: int) -> None:
        self.buf.clear()
        self.want = n

    def take(self, view: memoryview, at: int) -> int:
        """Take what is missing from ``view[at:]``; returns the new ``at``."""
        missing = self.want - len(self.buf)
        piece = view[at : at + missing]
        self.buf += piece
        return at + len(piece)

    @property
    def full(self) -> bool:
        return len(self.buf) >= self.want


class Damages:
    """The damage found so far, bounded; the first one stops parsers that cannot go on."""

    __slots__ = ("items", "more")

    def __init__(self) -> None:
        self.items: list[Damage] = []
        self.more = 0

    def add(self, damage: Damage) -> None:
        if len(self.items) < MAX_DAMAGE:
            self.items.append(damage)
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.items)

    def stop(self, damage: Damage) -> Stopped:
        self.add(damage)
        return Stopped(damage.what)
