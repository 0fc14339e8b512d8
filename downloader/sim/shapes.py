"""Content-shaped files for the simulator: a real xbstream (MySQL's ``.qp``) and a real
``.tar.gz`` (PostgreSQL), deterministic from the file's seed and exactly its size.

xbstream: the members a restore needs (``backup-my.cnf``, ``xtrabackup_checkpoints``),
then ``ibdata1`` in chunks of :data:`PAYLOAD` bytes of the seed's content
(:mod:`downloader.sim.content`), each with its CRC-32, and every member's end chunk. Its
layout is arithmetic, so any range is served without building the file; a chunk's CRC-32
is computed when its header is served (cached). ``mbstream -x`` extracts it.

tar.gz: ``backup_label`` and a data file in a tar, gzipped, then zero bytes up to the
size (which gzip ignores after the last member). Built whole once per seed (cached), so
only for files up to :data:`TARGZ_MAX`.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from collections.abc import Iterator
from functools import lru_cache

from downloader.sim.content import content_bytes, iter_content

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover
    from zlib import crc32

XBSTREAM = "xbstream"
TARGZ = "tar.gz"
SHAPES = (XBSTREAM, TARGZ)
PAYLOAD = 1 << 20
BIG = b"ibdata1"
_HEAD = 14 + len(BIG) + 20  # a payload chunk's header
_END = 14 + len(BIG)  # the end chunk
TARGZ_MAX = 64 * 1024 * 1024


def _chunk(path: bytes, payload: bytes) -> bytes:
    head = b"XBSTCK01\0P" + struct.pack("<I", len(path)) + path
    return head + struct.pack("<QQI", len(payload), 0, crc32(payload)) + payload


def _end(path: bytes) -> bytes:
    return b"XBSTCK01\0E" + struct.pack("<I", len(path)) + path


def _prefix(seed: bytes) -> bytes:
    cnf = b"[mysqld]\ninnodb_page_size=16384\ninnodb_data_file_path=ibdata1:12M:autoextend\n"
    points = b"backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = %d\n" % (
        int.from_bytes(seed[:4].ljust(4, b"\0"), "big") + 18000000
    )
    return (
        _chunk(b"backup-my.cnf", cnf)
        + _end(b"backup-my.cnf")
        + _chunk(b"xtrabackup_checkpoints", points)
        + _end(b"xtrabackup_checkpoints")
    )


class XbLayout:
    """Where each part of a shaped xbstream of ``size`` bytes lies."""

    def __init__(self, seed: bytes, size: int) -> None:
        self.seed = seed
        self.size = size
        self.prefix = _prefix(seed)
        avail = size - len(self.prefix) - _END
        if avail < _HEAD + 1:
            raise ValueError(f"{size} bytes is too small for a shaped xbstream")
        n = -(-avail // (_HEAD + PAYLOAD))
        last = avail - (n - 1) * (_HEAD + PAYLOAD) - _HEAD
        if last <= 0:  # the remainder cannot hold a header: the previous chunk takes it
            n -= 1
            last = avail - (n - 1) * (_HEAD + PAYLOAD) - _HEAD
        self.chunks = n
        self.last = last
        self.body = len(self.prefix)  # where ibdata1's first chunk starts

    def payload_len(self, k: int) -> int:
        return self.last if k == self.chunks - 1 else PAYLOAD

    def chunk_at(self, k: int) -> int:
        return self.body + k * (_HEAD + PAYLOAD)

    def header(self, k: int) -> bytes:
        n = self.payload_len(k)
        crc = _payload_crc(self.seed, k, n)
        head = b"XBSTCK01\0P" + struct.pack("<I", len(BIG)) + BIG
        return head + struct.pack("<QQI", n, k * PAYLOAD, crc)

    def iter(self, offset: int, length: int) -> Iterator[bytes | memoryview]:
        end = offset + length
        pos = offset
        while pos < end:
            if pos < self.body:
                yield self.prefix[pos : min(end, self.body)]
                pos = min(end, self.body)
                continue
            k = (pos - self.body) // (_HEAD + PAYLOAD)
            if pos >= self.size - _END:  # the last chunk may be short: by position
                tail = _end(BIG)
                at = pos - (self.size - _END)
                yield tail[at : at + end - pos]
                pos = end
                continue
            start = self.chunk_at(k)
            within = pos - start
            if within < _HEAD:
                piece = self.header(k)[within : within + end - pos]
                yield piece
                pos += len(piece)
                continue
            into = within - _HEAD
            n = min(self.payload_len(k) - into, end - pos)
            yield from iter_content(self.seed, k * PAYLOAD + into, n)
            pos += n


@lru_cache(maxsize=4096)
def _payload_crc(seed: bytes, k: int, n: int) -> int:
    crc = 0
    for piece in iter_content(seed, k * PAYLOAD, n):
        crc = crc32(piece, crc)
    return crc


@lru_cache(maxsize=8)
def _targz(seed: bytes, size: int) -> bytes:
    label = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: sim\n"
    data_len = max(0, size - 12 * 1024 - size // 500)
    for _ in range(8):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
            for name, body in (
                ("backup_label", label),
                ("base/1/16384", content_bytes(seed, 0, data_len)),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                info.mtime = 1716220800
                tf.addfile(info, io.BytesIO(body))
        packed = gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)
        if len(packed) <= size:
            return packed + bytes(size - len(packed))
        data_len = max(0, data_len - (len(packed) - size) - 64)
    raise ValueError(f"{size} bytes is too small for a shaped tar.gz")


def shaped(shape: str | None, seed: bytes, size: int) -> XbLayout | bytes | None:
    """The shaped content of a file (a layout, or the bytes themselves), or None when it
    has no shape."""
    if shape == XBSTREAM:
        return _layout(seed, size)
    if shape == TARGZ:
        if size > TARGZ_MAX:
            raise ValueError(f"a shaped tar.gz is built whole: {size} bytes is too big")
        return _targz(seed, size)
    return None


@lru_cache(maxsize=64)
def _layout(seed: bytes, size: int) -> XbLayout:
    return XbLayout(seed, size)


def iter_shaped(
    shape: str | None, seed: bytes, size: int, offset: int, length: int
) -> Iterator[bytes | memoryview]:
    """The bytes ``[offset, offset + length)`` of the file, in pieces."""
    got = shaped(shape, seed, size)
    if got is None:
        yield from iter_content(seed, offset, length)
    elif isinstance(got, bytes):
        yield memoryview(got)[offset : offset + length]
    else:
        yield from got.iter(offset, length)
