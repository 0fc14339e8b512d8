"""PostgreSQL's ``.tar.gz`` (and a plain ``.tar``): gzip members, a tar inside.

gzip (RFC 1952): each member's header, its deflate data, and its trailer's CRC-32 and
length of the inflated bytes. tar (POSIX ustar, GNU and pax extensions): each 512-byte
header's checksum (the sum of its bytes, the checksum field read as spaces), sizes that
fit the archive, the two zero blocks that end it. A base backup's ``backup_label`` is
named when present. Inflating is bounded: at most :data:`OUT_STEP` bytes come out per
step, and the tar parser keeps one header.
"""

from __future__ import annotations

import struct
from typing import Any

from downloader.content.base import Damages, Gather, Stopped, crc32
from downloader.results import CONTENT_DAMAGED, CONTENT_OK, ContentVerdict, Damage

try:  # ISA-L inflates several times faster than zlib, same API
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover
    import zlib as _zlib  # type: ignore[no-redef]

_INFLATE_ERRORS: tuple[type[BaseException], ...] = (_zlib.error,)  # type: ignore[assignment]
GZIP_MAGIC = b"\x1f\x8b"
OUT_STEP = 1 << 20
IN_STEP = 256 * 1024
MAX_NAME = 64 * 1024  # a gzip header's file name or comment
BLOCK = 512

_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16


def _octal(field: bytes) -> int | None:
    """A tar number: octal digits (space or NUL ended), or GNU base-256 (high bit set)."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value if not field[0] & 0x40 else None  # negative: nonsense here
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


class TarChecker:
    """A tar archive's headers, in order. ``where()`` names the bytes of the file being
    read (for a tar inside gzip, the compressed member's)."""

    def __init__(self, damage: Damages, where: Any) -> None:
        self.damage = damage
        self.where = where
        self.gather = Gather()
        self.gather.need(BLOCK)
        self.skip = 0  # data bytes (rounded to blocks) still to pass
        self.entries = 0
        self.zeros = 0
        self.ended = False
        self.name = ""
        self.backup_label = False

    def feed(self, view: memoryview) -> None:
        at, n = 0, len(view)
        while at < n:
            if self.ended:
                return  # past the end marks: padding to the record size
            if self.skip:
                take = min(self.skip, n - at)
                self.skip -= take
                at += take
                continue
            at = self.gather.take(view, at)
            if self.gather.full:
                self._header(bytes(self.gather.buf))
                self.gather.need(BLOCK)

    def _header(self, h: bytes) -> None:
        if h == bytes(BLOCK):
            self.zeros += 1
            self.ended = self.zeros >= 2
            return
        self.zeros = 0
        stored = _octal(h[148:156])
        total = sum(h[:148]) + 8 * 32 + sum(h[156:])
        signed = total - 2 * sum(b for b in h[:148] + h[156:] if b >= 128)
        name = h[:100].split(b"\0", 1)[0]
        if h[257:262] == b"ustar" and h[345] != 0:
            name = h[345:500].split(b"\0", 1)[0] + b"/" + name
        self.name = name.decode("utf-8", "replace")
        if stored is None or stored not in (total, signed):
            start, end = self.where()
            raise self.damage.stop(
                Damage(start, end, "a tar header whose checksum does not match", self.name)
            )
        size = _octal(h[124:136])
        if size is None:
            start, end = self.where()
            raise self.damage.stop(Damage(start, end, "a tar header with no size", self.name))
        kind = h[156:157]
        if kind in (b"1", b"2", b"3", b"4", b"5", b"6"):
            size = 0  # links, devices, folders, FIFOs carry no data
        self.entries += 1
        if self.name.rsplit("/", 1)[-1] == "backup_label" and kind in (b"0", b"\0"):
            self.backup_label = True
        self.skip = -(-size // BLOCK) * BLOCK

    def unfinished(self) -> str | None:
        if self.ended:
            return None
        if self.skip or self.gather.buf:
            return f"the tar archive ends inside entry {self.name!r} (truncated)"
        return "the tar archive has no end marks (truncated)"

    def checked(self) -> str:
        label = "; holds backup_label" if self.backup_label else ""
        return f"{self.entries} tar entries, the checksum of every tar header{label}"


_GZHEAD, _GZEXTRA_LEN, _GZEXTRA, _GZNAME, _GZCOMMENT, _GZHCRC, _INFLATE, _TRAILER, _AFTER = range(9)


class TarGzChecker:
    """gzip members (each checked against its trailer) with a tar inside."""

    FORMAT = "tar.gz"

    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self.pos = 0
        self.member_start = 0
        self.damage = Damages()
        self.tar = TarChecker(self.damage, lambda: (self.member_start, max(self.pos, 1)))
        self.stopped = False
        self.state = _GZHEAD
        self.gather = Gather()
        self.gather.need(10)
        self.flags = 0
        self.members = 0
        self.inflater: Any = None
        self.crc = 0
        self.isize = 0
        self.name_len = 0
        self.trailing_zeros = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.stopped or not data:
            return
        try:
            self._feed(memoryview(data).cast("B"))
        except Stopped:
            self.stopped = True

    def _stop(self, what: str, *, local: bool = False) -> Stopped:
        return self.damage.stop(
            Damage(self.member_start, max(self.pos, self.member_start + 1), what, local=local)
        )

    def _feed(self, view: memoryview) -> None:
        at, n = 0, len(view)
        g = self.gather
        while at < n:
            state = self.state
            if state == _INFLATE:
                at += self._inflate(view[at : at + min(IN_STEP, n - at)])
                continue
            if state in (_GZNAME, _GZCOMMENT):
                zero = bytes(view[at:]).find(b"\0")
                took = (n - at) if zero < 0 else zero + 1
                self.name_len += took
                at += took
                self.pos += took
                if self.name_len > MAX_NAME:
                    raise self._stop(f"a gzip header field longer than {MAX_NAME} bytes")
                if zero >= 0:
                    self._header_next(state)
                continue
            if state == _AFTER:
                rest = bytes(view[at:])
                if rest.strip(b"\0"):
                    if rest.lstrip(b"\0")[:1] != GZIP_MAGIC[:1] or self.trailing_zeros:
                        raise self._stop("bytes after the last gzip member that are not one")
                    lead = len(rest) - len(rest.lstrip(b"\0"))
                    self.pos += lead
                    at += lead
                    self._begin_member()
                    continue
                self.trailing_zeros += len(rest)
                self.pos += len(rest)
                return
            before = at
            at = g.take(view, at)
            self.pos += at - before
            if not g.full:
                continue
            buf = bytes(g.buf)
            if state == _GZHEAD:
                if buf[:3] != b"\x1f\x8b\x08":
                    raise self._stop("no gzip header where a gzip member must start")
                self.flags = buf[3]
                self._header_next(_GZHEAD)
            elif state == _GZEXTRA_LEN:
                (xlen,) = struct.unpack("<H", buf)
                self.state = _GZEXTRA
                g.need(xlen)
                if not xlen:
                    self._header_next(_GZEXTRA)
            elif state == _GZEXTRA:
                self._header_next(_GZEXTRA)
            elif state == _GZHCRC:
                self._header_next(_GZHCRC)
            elif state == _TRAILER:
                self._trailer(buf)

    def _begin_member(self) -> None:
        self.member_start = self.pos
        self.state = _GZHEAD
        self.gather.need(10)

    def _header_next(self, done: int) -> None:
        """After header part ``done``, the next one the flags call for (or the data)."""
        order = [
            (_GZEXTRA_LEN, _FEXTRA, 2),
            (_GZNAME, _FNAME, 0),
            (_GZCOMMENT, _FCOMMENT, 0),
            (_GZHCRC, _FHCRC, 2),
        ]
        rank = {_GZHEAD: 0, _GZEXTRA: 1, _GZNAME: 2, _GZCOMMENT: 3, _GZHCRC: 4}[done]
        for state, flag, need in order[rank:]:
            if self.flags & flag:
                self.state = state
                self.name_len = 0
                if need:
                    self.gather.need(need)
                return
        self.state = _INFLATE
        self.inflater = _zlib.decompressobj(-15)
        self.crc = 0
        self.isize = 0

    def _inflate(self, data: memoryview) -> int:
        """Inflate what of ``data`` belongs to the member; returns how much that was."""
        d = self.inflater
        chunk: Any = data
        while True:
            try:
                out = d.decompress(chunk, OUT_STEP)
            except _INFLATE_ERRORS as exc:
                raise self._stop(
                    f"deflate data that does not inflate ({exc})", local=True
                ) from None
            if out:
                self.crc = crc32(out, self.crc)
                self.isize += len(out)
                self.tar.feed(memoryview(out))
            if d.eof:
                # What follows the deflate data is the trailer (and maybe another member).
                used = len(data) - len(d.unused_data)
                self.pos += used
                self.state = _TRAILER
                self.gather.need(8)
                return used
            chunk = d.unconsumed_tail
            if not chunk:
                break
        self.pos += len(data)
        return len(data)

    def _trailer(self, buf: bytes) -> None:
        want_crc, want_size = struct.unpack("<II", buf)
        self.members += 1
        if want_crc != self.crc or want_size != self.isize & 0xFFFFFFFF:
            self.damage.add(
                Damage(
                    self.member_start,
                    self.pos,
                    f"gzip member {self.members}: CRC-32 {self.crc:08x} of "
                    f"{self.isize} inflated bytes, its trailer says {want_crc:08x} of {want_size}",
                    self.tar.name or None,
                    local=True,
                )
            )
        self.state = _AFTER

    def finish(self) -> ContentVerdict:
        if not self.stopped:
            if self.state != _AFTER:
                self.damage.add(
                    Damage(
                        self.member_start,
                        max(self.pos, 1),
                        "the gzip stream ends early (truncated)",
                    )
                )
            else:
                problem = self.tar.unfinished()
                if problem is not None:
                    self.damage.add(Damage(self.member_start, max(self.pos, 1), problem))
        checked = f"gzip: {self.members} members with CRC-32 and length; {self.tar.checked()}"
        if self.damage:
            return ContentVerdict(CONTENT_DAMAGED, self.FORMAT, checked, tuple(self.damage.items))
        return ContentVerdict(CONTENT_OK, self.FORMAT, checked)


class PlainTarChecker:
    """A tar that is not compressed: its headers alone."""

    FORMAT = "tar"

    def __init__(self, size: int | None = None) -> None:
        self.pos = 0
        self.damage = Damages()
        self.tar = TarChecker(self.damage, lambda: (max(0, self.pos - BLOCK), max(self.pos, 1)))
        self.stopped = False

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.stopped or not data:
            return
        view = memoryview(data).cast("B")
        try:
            # Block by block, so a bad header names its own 512 bytes.
            for at in range(0, len(view), BLOCK):
                piece = view[at : at + BLOCK]
                self.pos += len(piece)
                self.tar.feed(piece)
        except Stopped:
            self.stopped = True

    def finish(self) -> ContentVerdict:
        if not self.stopped:
            problem = self.tar.unfinished()
            if problem is not None:
                self.damage.add(Damage(max(0, self.pos - BLOCK), max(self.pos, 1), problem))
        checked = self.tar.checked()
        if self.damage:
            return ContentVerdict(CONTENT_DAMAGED, self.FORMAT, checked, tuple(self.damage.items))
        return ContentVerdict(CONTENT_OK, self.FORMAT, checked)
