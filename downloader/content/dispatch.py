"""Which checker reads a file: chosen by its first bytes (the magic), never by its name
alone: a name says what a file should be, the bytes what it is. A file whose first bytes
match no known format is ``not-checked``."""

from __future__ import annotations

from collections.abc import Callable

from downloader.content import binlog, mtf, targz, xbstream
from downloader.content.base import Checker
from downloader.results import CONTENT_NOT_CHECKED, ContentVerdict

SNIFF = 512  # a tar's "ustar" sits at byte 257 of its first header


def _pick(head: bytes) -> Callable[[int | None], Checker] | None:
    if head.startswith(xbstream.MAGIC):
        return xbstream.XbstreamChecker
    if head.startswith(targz.GZIP_MAGIC):
        return targz.TarGzChecker
    if head.startswith(binlog.MAGIC):
        return binlog.BinlogChecker
    if head.startswith(mtf.MAGIC):
        return mtf.MtfChecker
    if head[257:262] == b"ustar":
        return targz.PlainTarChecker
    return None


class Sniffer:
    """Holds the first :data:`SNIFF` bytes, then hands everything to the checker they
    call for (or to none)."""

    def __init__(self, name: str, size: int | None) -> None:
        self.name = name
        self.size = size
        self.head = bytearray()
        self.inner: Checker | None = None
        self.decided = False

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.decided:
            if self.inner is not None:
                self.inner.feed(data)
            return
        self.head += memoryview(data).cast("B")
        if len(self.head) >= SNIFF or (self.size is not None and len(self.head) >= self.size):
            self._decide()

    def _decide(self) -> None:
        self.decided = True
        make = _pick(bytes(self.head))
        if make is not None:
            self.inner = make(self.size)
            self.inner.feed(self.head)
        self.head = bytearray()

    def finish(self) -> ContentVerdict:
        if not self.decided:
            self._decide()
        if self.inner is None:
            return ContentVerdict(CONTENT_NOT_CHECKED, None, "no format this tool knows")
        return self.inner.finish()


def checker_for(name: str, size: int | None = None) -> Checker:
    """A checker for the file ``name`` of ``size`` bytes (None: unknown, as in a stream
    whose end is not known), choosing its format from its first bytes."""
    return Sniffer(name, size)
