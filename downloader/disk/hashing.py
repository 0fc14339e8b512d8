"""A file's checksums: which ones it gets, and the one loop that reads a whole file.

Every file gets a CRC-64 (combined from pieces as it is written, :mod:`downloader.disk.digest`);
SHA-256 with ``--sha256``; MD5 where the object's ETag is a plain MD5 (a single-PUT
object's), to compare with it. :class:`Digests` holds one file's set; :func:`hash_file`
is the whole-file read that the engine (a file found in place), ``verify`` and the demo
share.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from downloader.disk.digest import Crc64, Piece, PieceLog
from downloader.errors import StorageError
from downloader.ranges import RangeSet
from downloader.results import ContentVerdict

HASH_SPAN = 1024 * 1024  # bytes read back per step
_MD5_ETAG = re.compile(r'^"?[0-9a-fA-F]{32}"?$')


def is_plain_md5_etag(etag: str | None) -> bool:
    """A single-PUT object's ETag is the MD5 of its bytes; a multipart one (``"…-3"``) is not."""
    return bool(etag and _MD5_ETAG.match(etag))


def etag_md5(etag: str | None) -> str | None:
    """The MD5 a plain-MD5 ETag names (lower case, unquoted), else None."""
    return etag.strip('"').lower() if etag and is_plain_md5_etag(etag) else None


def _md5() -> Any:
    # MD5 here checks integrity against the object's ETag; it protects nothing secret.
    return hashlib.md5(usedforsecurity=False)


@dataclass(slots=True)
class Digests:
    """The running checksums of one file's bytes, in file order."""

    crc64: Crc64 = field(default_factory=Crc64)
    sha256: Any = None
    md5: Any = None

    @classmethod
    def for_file(cls, *, sha256: bool, md5: bool) -> Digests:
        return cls(Crc64(), hashlib.sha256() if sha256 else None, _md5() if md5 else None)

    @property
    def reads_back(self) -> bool:
        """SHA-256 and MD5 do not combine: a file that needs them is read back in order."""
        return self.sha256 is not None or self.md5 is not None

    def new_piece_log(self) -> PieceLog | None:
        """Pieces of CRC-64 from the writes, when CRC-64 is all this file needs."""
        return None if self.reads_back else PieceLog()

    def update(self, data: Any) -> None:
        self.crc64.update(data)
        for h in (self.sha256, self.md5):
            if h is not None:
                h.update(data)

    def update_others(self, data: Any) -> None:
        """Everything but the CRC-64 (which took the same bytes as a piece)."""
        for h in (self.sha256, self.md5):
            if h is not None:
                h.update(data)

    def sha256_hex(self) -> str | None:
        return self.sha256.hexdigest() if self.sha256 is not None else None

    def md5_hex(self) -> str | None:
        return self.md5.hexdigest() if self.md5 is not None else None


class ContentFeed(Protocol):
    """A file's content check (:class:`downloader.content.Checker`): its bytes in order,
    then a verdict. Given by the caller: the disk knows no formats."""

    def feed(self, data: bytes | bytearray | memoryview) -> None: ...

    def finish(self) -> ContentVerdict: ...


def read_span(fd: int, offset: int, n: int, digests: Digests | None) -> bytes:
    """``n`` bytes of an open file from ``offset``, hashed into ``digests`` (a blocking
    call: run it in a thread)."""
    data = os.pread(fd, n, offset)
    if digests is not None:
        digests.update(data)
    return data


def hash_file(
    path: Path,
    *,
    sha256: bool = False,
    md5: bool = False,
    progress: Callable[[int], None] | None = None,
    block: int = 4 * 1024 * 1024,
    content: ContentFeed | None = None,
) -> Digests:
    """Read a whole file once and return its checksums. ``progress`` gets each block's size;
    ``content``, when given, each block in order (the same read checks the content)."""
    digests = Digests.for_file(sha256=sha256, md5=md5)
    with open(path, "rb") as fh:
        while data := fh.read(block):
            digests.update(data)
            if content is not None:
                content.feed(data)
            if progress is not None:
                progress(len(data))
    return digests


class FileHasher:
    """One file's checksums in this run, as its bytes land (a background task).

    CRC-64 pieces written by the connections are folded in file order onto the verified
    prefix; bytes no piece describes (written by an earlier run, or a split's overlap), and
    every byte when SHA-256 or MD5 is wanted, are read back from the page cache. The part
    file's ``done`` set says how far the prefix reaches.

    ``content`` (a format's own check) takes the same bytes in file order: a write that
    lands where the fed prefix ends is fed from memory; bytes that landed ahead of it
    (another connection's range) are read back from the page cache with ``pread`` once
    the contiguous prefix reaches them, :data:`HASH_SPAN` at a time. Nothing is held
    for it but one span, and no byte is fed twice: ``content_read_back`` counts the
    bytes read back for it.
    """

    def __init__(
        self,
        name: str,
        part: Path,
        done: RangeSet,
        size: int,
        digests: Digests,
        content: ContentFeed | None = None,
    ) -> None:
        self.name = name
        self.part = part
        self.done = done
        self.size = size
        self.digests = digests
        self.pieces = digests.new_piece_log()
        self.hashed = 0
        self.read_back = 0  # bytes read from the part file (none when pieces cover all)
        self.content = content
        self.fed = 0  # bytes the content check has taken, in order
        self.content_read_back = 0  # of them, read back rather than taken from a write
        self.error: str | None = None
        self._wake = asyncio.Event()
        self._wake.set()
        self._settled = asyncio.Event()  # whole, or failed
        self._task: asyncio.Task[None] | None = None

    def start(self, tg: asyncio.TaskGroup) -> None:
        self._task = tg.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def wrote(self, piece: Piece | None, pos: int, data: Any) -> Piece | None:
        """``data`` is on disk at ``pos``; returns the CRC piece it went into, for the
        writer's next write. Checksummed here, from memory: CRC-64 runs at memory speed and
        nothing is read back for it."""
        if self.content is not None and pos == self.fed:
            self.content.feed(data)
            self.fed += len(data)
        if self.pieces is not None:
            return self.pieces.wrote(piece, pos, data)
        return piece

    def landed(self) -> None:
        """The contiguous prefix may have grown: read it back (pieces wait for the end, but
        the content check follows the prefix while its bytes are in the page cache)."""
        if self.pieces is None or self.content is not None:
            self._wake.set()

    def verdict(self) -> ContentVerdict | None:
        """The content check's verdict, once :meth:`result` has returned (None: no check)."""
        return self.content.finish() if self.content is not None else None

    @property
    def _whole(self) -> bool:
        return self.hashed >= self.size and (self.content is None or self.fed >= self.size)

    async def result(self) -> Digests:
        """The checksums of all ``size`` bytes, once every byte is hashed."""
        self._wake.set()
        while not self._whole:
            if self._task is None or self._task.done():
                raise StorageError(
                    f"{self.name}: could not read the part file back to hash it "
                    f"({self.error or 'hasher stopped'})",
                    file=self.name,
                )
            await self._settled.wait()
            self._settled.clear()
        return self.digests

    def _feed_content(self, start: int, data: bytes, *, read: bool) -> None:
        """Bytes ``[start, start + len(data))`` read back: the part the content check has
        not taken yet (a write may have fed some of it meanwhile)."""
        if self.content is None:
            return
        skip = self.fed - start
        if 0 <= skip < len(data):
            rest = memoryview(data)[skip:]
            self.content.feed(rest)
            self.fed += len(rest)
            if read:
                self.content_read_back += len(rest)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        fd: int | None = None
        digests = self.digests
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                target = self.done.prefix()
                if target <= self.hashed and (self.content is None or target <= self.fed):
                    continue
                try:
                    while self.hashed < target:
                        limit = target
                        if self.pieces is not None:
                            piece = self.pieces.take(self.hashed)
                            if piece is not None:
                                digests.crc64.append(piece.crc, piece.end - piece.start)
                                self.hashed = piece.end
                                # A combine costs a CRC pass over as many zero bytes as the
                                # piece is long (~1 ms per 64 MiB): let others run between.
                                await asyncio.sleep(0)
                                continue
                            # Bytes no piece describes: read them back, up to the next piece.
                            nearest = self.pieces.next_start(self.hashed)
                            if nearest is not None:
                                limit = min(limit, nearest)
                        n = min(HASH_SPAN, limit - self.hashed)
                        if fd is None:
                            fd = os.open(self.part, os.O_RDONLY | os.O_NOFOLLOW)
                        start = self.hashed
                        data = await loop.run_in_executor(None, read_span, fd, start, n, digests)
                        if not data:
                            raise OSError(errno.EIO, "part file shorter than the journal says")
                        self._feed_content(start, data, read=False)
                        self.hashed += len(data)
                        self.read_back += len(data)
                    while self.content is not None and self.fed < target:
                        if fd is None:
                            fd = os.open(self.part, os.O_RDONLY | os.O_NOFOLLOW)
                        start = self.fed
                        n = min(HASH_SPAN, target - start)
                        data = await loop.run_in_executor(None, read_span, fd, start, n, None)
                        if not data:
                            raise OSError(errno.EIO, "part file shorter than the journal says")
                        self._feed_content(start, data, read=True)
                except OSError as exc:
                    # Not raised into the TaskGroup (that would end the whole run): the
                    # file's finish sees the hasher gone and fails this file only.
                    self.error = f"{exc.strerror or exc}"
                    return
                if self._whole:
                    self._settled.set()
        finally:
            if fd is not None:
                os.close(fd)
            self._settled.set()  # ended (failed, cancelled): the finish must not wait on it
