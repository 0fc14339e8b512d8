"""Deterministic, position-dependent file content for the simulator.

Each seed gets one pseudo-random 1 MiB base buffer (SHAKE-256 of the seed). Block ``i`` of a
file is that buffer rotated by an amount that depends on ``i``, so every byte depends on its
absolute offset: a range written at the wrong place, or a block served twice, never matches.
Generating a block is one memory copy, which keeps serving at loopback speed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import lru_cache

from fastcrc.crc64 import xz as crc64_xz

BLOCK = 1 << 20


@lru_cache(maxsize=24)
def _doubled_base(seed: bytes) -> bytes:
    # Base twice in a row: a rotated block is then one contiguous slice.
    base = hashlib.shake_256(b"rds-sim-content\x00" + seed).digest(BLOCK)
    return base + base


def _rotation(seed_mix: int, block: int) -> int:
    # Odd multiplier, so consecutive blocks land far apart in the base.
    return (seed_mix + block * 0x9E3779B1) % BLOCK


@lru_cache(maxsize=256)
def _seed_mix(seed: bytes) -> int:
    return int.from_bytes(hashlib.sha256(seed).digest()[:8], "big")


def iter_content(seed: bytes, offset: int, length: int, chunk: int = BLOCK) -> Iterator[memoryview]:
    """Yield the bytes ``[offset, offset + length)`` of the seed's content, in pieces.

    Pieces are at most ``chunk`` bytes and never cross a 1 MiB block boundary. They are views
    into a cached buffer: consume (write or copy) each one before asking for the next.
    """
    if offset < 0 or length < 0:
        raise ValueError("offset and length must be >= 0")
    if chunk <= 0:
        raise ValueError("chunk must be > 0")
    if length == 0:
        return
    doubled = memoryview(_doubled_base(seed))
    mix = _seed_mix(seed)
    pos = offset
    end = offset + length
    while pos < end:
        block, within = divmod(pos, BLOCK)
        n = min(end - pos, BLOCK - within, chunk)
        start = _rotation(mix, block) + within
        yield doubled[start : start + n]
        pos += n


def content_bytes(seed: bytes, offset: int, length: int) -> bytes:
    """The bytes ``[offset, offset + length)`` of the content for ``seed``."""
    return b"".join(iter_content(seed, offset, length))


def content_digests(seed: bytes, size: int) -> tuple[str, str, int]:
    """(hex MD5, hex SHA-256, CRC-64/XZ) of the whole ``size``-byte content, streaming."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    crc = crc64_xz(b"")
    for piece in iter_content(seed, 0, size):
        md5.update(piece)
        sha.update(piece)
        crc = crc64_xz(piece, crc)
    return md5.hexdigest(), sha.hexdigest(), crc
