"""Pure byte-range arithmetic: half-open intervals ``[start, end)``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

Interval = tuple[int, int]

KIB = 1024
MIB = 1024 * 1024


class RangeSet:
    """A set of bytes as sorted, disjoint, non-adjacent half-open intervals."""

    __slots__ = ("_covered", "_iv")

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self._iv: list[list[int]] = []
        self._covered = 0
        for start, end in intervals:
            self.add(start, end)

    def add(self, start: int, end: int) -> int:
        """Add ``[start, end)``; returns how many of its bytes were not in the set yet."""
        if end <= start:
            return 0
        iv = self._iv
        # Find the first interval whose end >= start (could merge), then absorb overlaps.
        lo = 0
        hi = len(iv)
        while lo < hi:
            mid = (lo + hi) // 2
            if iv[mid][1] < start:
                lo = mid + 1
            else:
                hi = mid
        i = lo
        j = i
        absorbed = 0
        while j < len(iv) and iv[j][0] <= end:
            start = min(start, iv[j][0])
            end = max(end, iv[j][1])
            absorbed += iv[j][1] - iv[j][0]
            j += 1
        iv[i:j] = [[start, end]]
        new = end - start - absorbed
        self._covered += new
        return new

    def intervals(self) -> list[Interval]:
        return [(s, e) for s, e in self._iv]

    def covered(self) -> int:
        return self._covered

    def prefix(self) -> int:
        """Length of the contiguous run starting at byte 0."""
        if self._iv and self._iv[0][0] == 0:
            return self._iv[0][1]
        return 0

    def contains(self, start: int, end: int) -> bool:
        return any(s <= start and end <= e for s, e in self._iv)

    def missing(self, total: int) -> list[Interval]:
        """The gaps in ``[0, total)``."""
        out: list[Interval] = []
        pos = 0
        for s, e in self._iv:
            if s >= total:
                break
            if s > pos:
                out.append((pos, s))
            pos = max(pos, e)
        if pos < total:
            out.append((pos, total))
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and self._iv == other._iv

    def __repr__(self) -> str:
        return f"RangeSet({self.intervals()!r})"


def split(intervals: Iterable[Interval], chunk: int) -> Iterator[Interval]:
    """Cut each interval into pieces of at most ``chunk`` bytes, in order."""
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    for start, end in intervals:
        pos = start
        while pos < end:
            nxt = min(end, pos + chunk)
            yield (pos, nxt)
            pos = nxt


def default_chunk_size(size: int, connections: int) -> int:
    """Chunk size for a file: big enough that per-request overhead vanishes, small enough
    that every connection gets several pieces and a lost piece costs little.

    At least 4 MiB (one request per ~10 ms on a fast link), at most 64 MiB, aiming at about
    four pieces per connection, rounded to a MiB.
    """
    if size <= 0:
        return 4 * MIB
    target = size // max(1, connections * 4)
    target = max(4 * MIB, min(64 * MIB, target))
    return (target + MIB - 1) // MIB * MIB


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``bytes a-b/total`` -> (a, b_inclusive, total); ``bytes */total`` -> (None, None, total).

    Any part that is missing or malformed comes back as None; ``*`` as the total too.
    """
    if not value:
        return None, None, None
    unit, _, rest = value.strip().partition(" ")
    if unit.lower() != "bytes":
        return None, None, None
    span, _, total_s = rest.partition("/")
    total = int(total_s) if total_s.strip().isdigit() else None
    if span.strip() == "*":
        return None, None, total
    a, sep, b = span.partition("-")
    if not sep or not a.strip().isdigit() or not b.strip().isdigit():
        return None, None, total
    return int(a), int(b), total


def kb_figures(size_bytes: int) -> frozenset[int]:
    """Every KB figure an honest listing may give for an object of ``size_bytes`` bytes.

    The API's rounding is undocumented, so a KB is read as 1024 or as 1000 bytes and the
    figure as floor, ceil or round of the byte count in that unit (round, half up or half to
    even, always lands on the floor or the ceil); an empty object may be listed as 0 or 1 KB.
    Nothing wider: the KB figure is the only statement, independent of the object store, of
    how big the file should be, and a truncated upload must not pass it.
    """
    if size_bytes < 0:
        return frozenset()
    out = {1} if size_bytes == 0 else set()
    for unit in (KIB, 1000):
        out |= {size_bytes // unit, -(-size_bytes // unit)}
    return frozenset(out)


def kb_size_matches(size_bytes: int, size_kb: int) -> bool:
    """True when the API's KB ``size`` is one of the roundings of ``size_bytes`` that
    :func:`kb_figures` allows (integers only, so exact at any size)."""
    return size_kb in kb_figures(size_bytes)
