"""xbstream (MySQL's ``.qp``: Percona XtraBackup's ``xbstream``, MariaDB's ``mbstream``).

A stream is chunks, each::

    "XBSTCK01" | flags (1) | type (1) | path length (4, LE) | path
    [sparse map size (4)]  payload length (8) | payload offset (8) | CRC-32 (4)   (P and S)
    [sparse map: (skip 4, length 4) * size] payload

``P`` carries payload bytes of the member ``path`` at ``offset``, ``S`` the same with a
sparse map (holes), ``E`` closes the member. The CRC-32 covers the sparse map and the
payload (``xb_stream_validate_checksum`` in XtraBackup's ``xbstream_read.cc``).

Checked while the bytes pass: every chunk's magic, type and CRC-32; each member's offsets
running on without a hole or an overlap; an ``E`` closing every member; no chunk running
past the end of the file. A chunk failing its CRC-32 is local damage (its bytes, fetched
again, may heal it) and the parse goes on; anything else stops it. Memory: one header
(the path at most :data:`MAX_PATH` bytes) and the open members' names.
"""

from __future__ import annotations

import struct

from downloader.content.base import Damages, Gather, Stopped, crc32
from downloader.results import CONTENT_DAMAGED, CONTENT_OK, ContentVerdict, Damage

MAGIC = b"XBSTCK01"
FORMAT = "xbstream"
MAX_PATH = 4096  # XtraBackup's paths are FN_REFLEN (512) at most
MAX_OPEN = 65536  # members open at once (xtrabackup --parallel keeps a few)
MAX_SPARSE = 1 << 20  # sparse map entries in one chunk
IGNORABLE = 0x01
# Members a restore cannot do without, by any of their names (compressed ones end .qp).
RESTORE_NEEDS = {
    "checkpoints": ("xtrabackup_checkpoints", "mariadb_backup_checkpoints"),
    "backup-my.cnf": ("backup-my.cnf",),
}
_SUFFIXES = (".qp", ".zst", ".lz4", ".xbcrypt")

_HEAD, _PATH, _SPSIZE, _NUMS, _SPMAP, _PAYLOAD = range(6)


def _base(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    return name


class XbstreamChecker:
    """An xbstream's chunks, checked in order; ``size`` (when known) bounds every length."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self.pos = 0
        self.state = _HEAD
        self.gather = Gather()
        self.gather.need(14)
        self.damage = Damages()
        self.stopped = False
        self.open: dict[str, int] = {}  # member -> the offset its next chunk must start at
        self.members = 0
        self.chunks = 0
        self.found: set[str] = set()
        # The chunk being read.
        self.chunk_start = 0
        self.ctype = b""
        self.path = ""
        self.sparse_n = 0
        self.sparse_skip = 0  # file bytes the map adds (holes and data)
        self.sparse_len = 0
        self.length = 0
        self.offset = 0
        self.want_crc = 0
        self.crc = 0
        self.crc_start = 0
        self.left = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.stopped or not data:
            return
        view = memoryview(data).cast("B")
        try:
            self._feed(view)
        except Stopped:
            self.stopped = True

    def _feed(self, view: memoryview) -> None:
        at, n = 0, len(view)
        g = self.gather
        while at < n:
            if self.state == _PAYLOAD:
                take = min(self.left, n - at)
                self.crc = crc32(view[at : at + take], self.crc)
                at += take
                self.pos += take
                self.left -= take
                if not self.left:
                    self._payload_done()
                continue
            before = at
            at = g.take(view, at)
            self.pos += at - before
            if not g.full:
                continue
            if self.state == _HEAD:
                self._head(bytes(g.buf))
            elif self.state == _PATH:
                self._path(bytes(g.buf))
            elif self.state == _SPSIZE:
                (self.sparse_n,) = struct.unpack("<I", g.buf)
                if self.sparse_n > MAX_SPARSE:
                    raise self._bad(f"a sparse map of {self.sparse_n} entries")
                self.state = _NUMS
                g.need(20)
            elif self.state == _NUMS:
                self._nums(bytes(g.buf))
            elif self.state == _SPMAP:
                self.crc = crc32(g.buf, self.crc)
                skip, length = struct.unpack("<II", g.buf)
                self.sparse_skip += skip + length
                self.sparse_len += length
                self.sparse_n -= 1
                self._after_map()

    def _bad(self, what: str, end: int | None = None) -> Stopped:
        stop = self.pos if end is None else end
        return self.damage.stop(
            Damage(self.chunk_start, max(stop, self.chunk_start + 1), what, self.path or None)
        )

    def _head(self, head: bytes) -> None:
        self.chunk_start = self.pos - 14
        self.path = ""
        if head[:8] != MAGIC:
            raise self._bad("no chunk magic (XBSTCK01) where a chunk must start")
        flags, ctype = head[8], head[9:10]
        (pathlen,) = struct.unpack("<I", head[10:14])
        if ctype not in (b"P", b"E", b"S") and not (flags & IGNORABLE):
            raise self._bad(f"a chunk of unknown type {ctype!r}")
        if pathlen == 0 or pathlen > MAX_PATH:
            raise self._bad(f"a chunk path of {pathlen} bytes (at most {MAX_PATH})")
        self.ctype = ctype
        self.state = _PATH
        self.gather.need(pathlen)

    def _path(self, raw: bytes) -> None:
        self.path = raw.decode("utf-8", "replace")
        self.chunks += 1
        if self.ctype == b"E":
            if self.open.pop(self.path, None) is None:
                self.members += 1  # an empty member: its end chunk alone
            self.found.add(_base(self.path))
            self._next_chunk()
            return
        self.sparse_n = self.sparse_skip = self.sparse_len = 0
        if self.ctype == b"S":
            self.state = _SPSIZE
            self.gather.need(4)
        else:
            self.state = _NUMS
            self.gather.need(20)

    def _nums(self, nums: bytes) -> None:
        self.length, self.offset, self.want_crc = struct.unpack("<QQI", nums)
        self.crc = 0
        self.crc_start = self.pos
        end = self.pos + self.sparse_n * 8 + self.length
        limit = self.size if self.size is not None else 1 << 48
        if end > limit:
            raise self._bad(
                f"a chunk of {self.length} payload bytes running past the end of the file "
                f"({limit} bytes: truncated, or a length that cannot be)"
            )
        if self.ctype in (b"P", b"S"):
            expected = self.open.get(self.path)
            if expected is None:
                if len(self.open) >= MAX_OPEN:
                    raise self._bad(f"more than {MAX_OPEN} members open at once")
                expected = 0
                self.members += 1
            if self.offset != expected:
                hole = "a hole" if self.offset > expected else "an overlap"
                raise self._bad(
                    f"{hole}: the chunk's offset is {self.offset}, the member's bytes so far "
                    f"end at {expected}"
                )
        self._after_map()

    def _after_map(self) -> None:
        if self.sparse_n:
            self.state = _SPMAP
            self.gather.need(8)
            return
        if self.ctype == b"S" and self.sparse_len != self.length:
            raise self._bad(
                f"a sparse map placing {self.sparse_len} bytes for a payload of {self.length}"
            )
        self.left = self.length
        self.state = _PAYLOAD
        if not self.left:
            self._payload_done()

    def _payload_done(self) -> None:
        if self.crc != self.want_crc:
            self.damage.add(
                Damage(
                    self.crc_start,
                    self.pos,
                    f"chunk CRC-32 {self.crc:08x}, the chunk says {self.want_crc:08x}",
                    self.path,
                    local=True,
                )
            )
        if self.ctype in (b"P", b"S"):
            grown = self.sparse_skip if self.ctype == b"S" else self.length
            self.open[self.path] = self.offset + grown
        self._next_chunk()

    def _next_chunk(self) -> None:
        self.state = _HEAD
        self.gather.need(14)

    def finish(self) -> ContentVerdict:
        if not self.stopped:
            if self.state != _HEAD or self.gather.buf:
                self.damage.add(
                    Damage(
                        self.chunk_start
                        if self.state != _HEAD
                        else self.pos - len(self.gather.buf),
                        max(self.pos, 1),
                        "the stream ends inside a chunk (truncated)",
                        self.path or None,
                    )
                )
            for path in list(self.open)[:4]:
                self.damage.add(Damage(self.pos, self.pos, "the member has no end chunk", path))
        if self.damage:
            return ContentVerdict(
                CONTENT_DAMAGED, FORMAT, self._checked(), tuple(self.damage.items)
            )
        return ContentVerdict(CONTENT_OK, FORMAT, self._checked())

    def _checked(self) -> str:
        held = [k for k, names in RESTORE_NEEDS.items() if self.found & set(names)]
        holds = f"; holds {' and '.join(held)}" if held else ""
        return (
            f"xbstream: {self.members} members, {self.chunks} chunks, CRC-32 of every "
            f"chunk, offsets and end chunks{holds}"
        )
