"""A file's checksums, computed from the bytes as they arrive rather than by reading the
finished file again.

Every file gets a CRC-64/XZ: the checksum OBS itself reports (``x-obs-checksum-crc64ecma``),
computed at memory speed. CRCs combine: knowing ``crc(A)`` and ``crc(B)`` gives
``crc(A + B)``. So each connection checksums the bytes it writes, as it writes them, into
a :class:`Piece` (one per contiguous run of writes), and the file's CRC grows by folding
pieces in file order onto the verified prefix (:class:`PieceLog`). Bytes that no piece
describes (written by an earlier run, or overlapped by a split range) are read back from
the page cache instead; the result is the same either way.

SHA-256 (asked for with ``--sha256``) and MD5 (checked against ETags that are plain MD5s)
do not combine, so files that need them are hashed over the growing prefix, read back.
"""

from __future__ import annotations

import functools
from typing import Any

from fastcrc.crc64 import xz as _crc64_xz

_ZEROS = memoryview(bytes(1024 * 1024))


def crc64(data: Any, previous: int = 0) -> int:
    """CRC-64/XZ of ``data``, continuing from the CRC of the bytes before it."""
    return _crc64_xz(data, previous)


def crc64_hex(value: int) -> str:
    """A CRC-64 as JSON carries it (manifest, ``--json``): 16 hex digits, as OBS writes it.
    As a JSON number, a value above 2^53 is rounded by jq and JavaScript."""
    return f"{value:016x}"


def crc64_from_json(value: object) -> int | None:
    """A CRC-64 read from JSON: 16 hex digits, or an integer (manifests of version 1); None
    when it is neither."""
    if isinstance(value, str) and len(value) == 16:
        try:
            return int(value, 16)
        except ValueError:
            return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64:
        return value
    return None


def _crc_of_zeros(n: int, previous: int) -> int:
    crc = previous
    while n > 0:
        step = min(n, len(_ZEROS))
        crc = _crc64_xz(_ZEROS[:step], crc)
        n -= step
    return crc


@functools.lru_cache(maxsize=64)
def _zeros_from_empty(n: int) -> int:
    return _crc_of_zeros(n, 0)


def crc64_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """``crc(A + B)`` from ``crc(A)``, ``crc(B)`` and ``len(B)``.

    The CRC's register update is linear, so continuing from ``crc_a`` over ``B`` differs
    from continuing from 0 over ``B`` exactly as it does over ``len(B)`` zero bytes:
    ``crc(A + B) = crc(B) ^ crc_from(crc_a, zeros) ^ crc_from(0, zeros)``.
    """
    if len_b == 0:
        return crc_a
    return crc_b ^ _crc_of_zeros(len_b, crc_a) ^ _zeros_from_empty(len_b)


class Crc64:
    """A running CRC-64/XZ (ECMA-182 polynomial, reflected, all-ones init and final XOR):
    what OBS reports as ``x-obs-checksum-crc64ecma`` (esdk-obs-python's ``Crc64``: crcmod
    with poly 0x142F0E1EBA9EA3693, rev=True, xorOut=~0)."""

    __slots__ = ("length", "value")

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def update(self, data: Any) -> None:
        self.value = _crc64_xz(data, self.value)
        self.length += len(data)

    def append(self, crc: int, length: int) -> None:
        """Extend by ``length`` bytes whose own CRC is ``crc``."""
        self.value = crc if self.length == 0 else crc64_combine(self.value, crc, length)
        self.length += length


class Piece:
    """A contiguous run of bytes one connection wrote, ``[start, end)``, and their CRC."""

    __slots__ = ("crc", "end", "start", "taken")

    def __init__(self, start: int) -> None:
        self.start = start
        self.end = start
        self.crc = 0
        self.taken = False


class PieceLog:
    """The pieces of one file written in this run and not yet folded into its prefix."""

    __slots__ = ("_pieces",)

    def __init__(self) -> None:
        self._pieces: dict[int, Piece] = {}

    def __len__(self) -> int:
        return len(self._pieces)

    def wrote(self, piece: Piece | None, pos: int, data: Any) -> Piece:
        """Record that ``data`` is now on disk at ``pos``; returns the piece that holds it
        (the caller's own, extended, or a new one when that was taken or does not end at
        ``pos``)."""
        if piece is None or piece.taken or piece.end != pos:
            piece = Piece(pos)
        piece.crc = _crc64_xz(data, piece.crc)
        piece.end = pos + len(data)
        self._pieces[piece.start] = piece
        return piece

    def take(self, pos: int) -> Piece | None:
        """The piece starting exactly at ``pos``, removed; later writes of its connection
        start a new piece."""
        piece = self._pieces.pop(pos, None)
        if piece is not None:
            piece.taken = True
        return piece

    def next_start(self, pos: int) -> int | None:
        """Where the first piece after ``pos`` starts. Pieces starting before ``pos`` are
        dropped: the prefix already covers their start, so they no longer fit."""
        nearest = None
        for start in list(self._pieces):
            if start < pos:
                self._pieces.pop(start).taken = True
            elif nearest is None or start < nearest:
                nearest = start
        return nearest
