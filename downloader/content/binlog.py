"""MySQL binlogs: the magic ``\\xfebin``, then events, each a 19-byte header (timestamp,
type, server id, event size, next position, flags) and its body.

The first event describes the format (FORMAT_DESCRIPTION_EVENT, type 15); since MySQL
5.6.1 it says whether every event ends with a CRC-32 of the rest of it
(``binlog_checksum=CRC32``, the default). Checked: the magic, every event's size
(at least a header, never past the end of the file), its next-position field where it
is set, and its CRC-32 where the file has them. A bad CRC-32 is local damage (that
event's bytes); anything else stops the parse. Memory: the first event only.
"""

from __future__ import annotations

import struct

from downloader.content.base import Damages, Gather, Stopped, crc32
from downloader.results import CONTENT_DAMAGED, CONTENT_OK, ContentVerdict, Damage

MAGIC = b"\xfebin"
FORMAT = "binlog"
HEADER = 19
FORMAT_DESCRIPTION = 15
MAX_FIRST = 64 * 1024  # a format description event is some hundred bytes

_MAGIC, _HEAD, _FIRST, _BODY, _CRC = range(5)


class BinlogChecker:
    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self.pos = 0
        self.damage = Damages()
        self.stopped = False
        self.state = _MAGIC
        self.gather = Gather()
        self.gather.need(4)
        self.checksums: bool | None = None  # known after the first event
        self.events = 0
        self.event_start = 0
        self.event_size = 0
        self.crc = 0
        self.left = 0
        self._first_head = b""

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.stopped or not data:
            return
        try:
            self._feed(memoryview(data).cast("B"))
        except Stopped:
            self.stopped = True

    def _stop(self, what: str) -> Stopped:
        return self.damage.stop(Damage(self.event_start, max(self.pos, self.event_start + 1), what))

    def _feed(self, view: memoryview) -> None:
        at, n = 0, len(view)
        g = self.gather
        while at < n:
            if self.state == _BODY:
                take = min(self.left, n - at)
                if self.checksums:
                    self.crc = crc32(view[at : at + take], self.crc)
                at += take
                self.pos += take
                self.left -= take
                if not self.left:
                    if self.checksums:
                        self.state = _CRC
                        g.need(4)
                    else:
                        self._next()
                continue
            before = at
            at = g.take(view, at)
            self.pos += at - before
            if not g.full:
                continue
            buf = bytes(g.buf)
            if self.state == _MAGIC:
                if buf != MAGIC:
                    raise self._stop("no binlog magic at the start")
                self._next()
            elif self.state == _HEAD:
                self._head(buf)
            elif self.state == _FIRST:
                self._first(buf)
            elif self.state == _CRC:
                (want,) = struct.unpack("<I", buf)
                if want != self.crc:
                    self.damage.add(
                        Damage(
                            self.event_start,
                            self.pos,
                            f"event CRC-32 {self.crc:08x}, the event says {want:08x}",
                            local=True,
                        )
                    )
                self._next()

    def _next(self) -> None:
        self.event_start = self.pos
        self.state = _HEAD
        self.gather.need(HEADER)

    def _head(self, head: bytes) -> None:
        _, kind, _, size, next_pos, _ = struct.unpack("<IBIIIH", head)
        limit = self.size if self.size is not None else 1 << 48
        if size < HEADER or self.event_start + size > limit:
            raise self._stop(f"an event of {size} bytes (past the end of the file or too short)")
        if next_pos and next_pos != (self.event_start + size) & 0xFFFFFFFF:
            raise self._stop(
                f"an event whose next position is {next_pos}, not {self.event_start + size}"
            )
        self.events += 1
        self.event_size = size
        if self.checksums is None:
            if kind != FORMAT_DESCRIPTION or size > MAX_FIRST:
                raise self._stop("the first event is not a format description")
            self.state = _FIRST
            self.gather.need(size - HEADER)
            self._first_head = head
            return
        body = size - HEADER - (4 if self.checksums else 0)
        if body < 0:
            raise self._stop(f"an event of {size} bytes, too short for its checksum")
        self.crc = crc32(head, 0) if self.checksums else 0
        self.left = body
        self.state = _BODY
        if not body:
            self.left = 0
            self._body_done()

    def _body_done(self) -> None:
        if self.checksums:
            self.state = _CRC
            self.gather.need(4)
        else:
            self._next()

    def _first(self, body: bytes) -> None:
        whole = self._first_head + body
        # With checksums on, the event ends in the algorithm byte (1: CRC32) and the CRC-32.
        if len(whole) >= HEADER + 5 and whole[-5] == 1:
            (want,) = struct.unpack("<I", whole[-4:])
            if crc32(whole[:-4], 0) != want:
                self.damage.add(
                    Damage(self.event_start, self.pos, "format description CRC-32", local=True)
                )
            self.checksums = True
        else:
            self.checksums = False
        self._next()

    def finish(self) -> ContentVerdict:
        if not self.stopped and (self.state != _HEAD or self.gather.buf):
            self.damage.add(
                Damage(
                    self.event_start,
                    max(self.pos, 1),
                    "the binlog ends inside an event (truncated)",
                )
            )
        sums = "CRC-32 of every event" if self.checksums else "no event checksums in this file"
        checked = f"binlog: {self.events} events, sizes and positions, {sums}"
        if self.damage:
            return ContentVerdict(CONTENT_DAMAGED, FORMAT, checked, tuple(self.damage.items))
        return ContentVerdict(CONTENT_OK, FORMAT, checked)
