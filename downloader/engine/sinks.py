"""Where a range's bytes go: the engine's sinks on the wire's seam
(:class:`downloader.wire.sink.Sink`). A slot's range (:class:`SlotSink`) lands in its part
file (:class:`PartFileSink`) or, for ``cat``, in the in-order window
(:mod:`downloader.engine.stream`)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiofiles

from downloader.disk import storage
from downloader.disk.digest import Piece
from downloader.disk.hashing import FileHasher
from downloader.engine.scheduler import Slot


class SlotSink:
    """A sink for one scheduler slot: its range is the slot's, and it is live while the
    slot is (subclasses say where the bytes go)."""

    def __init__(self, slot: Slot) -> None:
        self.slot = slot

    @property
    def pos(self) -> int:
        return self.slot.pos

    @property
    def live(self) -> bool:
        return not self.slot.stale

    def reach(self) -> int | None:
        return self.slot.end


class PartFileSink(SlotSink):
    """One range of one file into its part file, at its offsets (an async context manager:
    the file is opened at the first write and closed on exit).

    Unbuffered: a write that returned is in the kernel, so the hasher's pread and the
    journal's fsync see it (a buffered writer would hold small writes back). Each write is
    CRC-64'd from memory into the file's current hasher, then ``landed(pos, n)`` is told.
    """

    def __init__(
        self,
        slot: Slot,
        part: Path,
        hasher: Callable[[], FileHasher | None],
        landed: Callable[[int, int], None],
        *,
        executor: concurrent.futures.Executor | None,
        name: str,
        needed: Callable[[], int],
    ) -> None:
        super().__init__(slot)
        self._part = part
        self._hasher = hasher
        self._landed = landed
        self._executor = executor
        self._name = name
        self._needed = needed  # bytes still to come, for an ENOSPC message
        self._fh: Any = None
        self._at = -1  # the open handle's position
        self._piece: Piece | None = None

    async def write(self, pos: int, data: memoryview) -> None:
        try:
            if self._fh is None:
                await self._open()
            if self._at != pos:  # a probe, or a range turned into the file's one stream
                await self._fh.seek(pos)
            rest = data
            while rest:
                written = await self._fh.write(rest)
                rest = rest[written:]
        except OSError as exc:
            raise storage.disk_error(exc, self._name, self._needed()) from exc
        n = len(data)
        self._at = pos + n
        # Asked at each write, not once: a probe's sink exists before its answer tells the
        # file's size, and so before the file has a hasher.
        hasher = self._hasher()
        if hasher is not None:
            self._piece = hasher.wrote(self._piece, pos, data)
        self.slot.pos = pos + n
        self._landed(pos, n)

    async def _open(self) -> None:
        self._fh = await aiofiles.open(
            self._part,
            "r+b",
            buffering=0,
            opener=storage.part_opener,  # never through a link planted at its name
            executor=self._executor,
        )
        self._at = 0

    async def __aenter__(self) -> PartFileSink:
        """Open the part file before the request goes out, when it exists: the first bytes
        then land at once instead of waiting paused in libcurl for an open and a seek
        (while every connection's bytes wait the same way: peak memory at 32 connections
        grows by megabytes)."""
        if self.slot.file.size is not None:
            try:
                await self._open()
            except OSError as exc:
                raise storage.disk_error(exc, self._name, self._needed()) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            await self._fh.close()
            self._fh = None
