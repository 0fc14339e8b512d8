"""Keeps each file's journal record truthful while a run writes its part file.

The order is what makes it crash-safe: fsync the part file, then write the record naming
only bytes written before that fsync started. A record is flushed once a second and
whenever its file took a chunk of new bytes (``FLUSH_BYTES`` at most), and at the end; one
write at a time per file (:attr:`FileLog.lock`), so a flush caught in its fsync can never
write an older record over the finish's.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from downloader.disk import storage
from downloader.disk.journal.records import FLUSH_BYTES, FLUSH_SECONDS, FileRecord
from downloader.disk.journal.store import Journal
from downloader.ranges import RangeSet

log = logging.getLogger("rds_backup.journal")


@dataclass(eq=False, slots=True)
class FileLog:
    """What the journal knows of one file in this run."""

    name: str
    part: Path
    record: FileRecord
    done: RangeSet = field(default_factory=RangeSet)  # bytes on disk (maybe not fsynced)
    dirty: int = 0  # new bytes since the last flush
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one record write at a time
    finishing: bool = False  # its finish records it: flushes stay away
    epoch: int = 0  # bumped when the file restarts: a flush under way is then obsolete

    def wrote(self, pos: int, n: int) -> int:
        """Bytes ``[pos, pos + n)`` are on disk; returns how many of them are new (a split's
        overlap is not counted twice)."""
        new = self.done.add(pos, pos + n)
        self.dirty += new
        return new

    def reset(self, record: FileRecord) -> None:
        """The file starts over: nothing of it is on disk, and it has a new record."""
        self.record = record
        self.done = RangeSet()
        self.dirty = 0
        self.epoch += 1
        self.finishing = False


class JournalWriter:
    """The flushes of one run; :meth:`run` is its background task."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._now = asyncio.Event()

    def wrote(self, flog: FileLog, pos: int, n: int, chunk: int) -> int:
        """Note a write; a chunk of new bytes asks for a flush at once (so a kill costs at
        most about a chunk per connection, however fast the link). A file now complete is
        recorded by its finish instead."""
        new = flog.wrote(pos, n)
        size = flog.record.size or 0
        if flog.dirty >= min(FLUSH_BYTES, chunk) and flog.done.covered() < size:
            self._now.set()
        return new

    def soon(self) -> None:
        """Flush at the next turn (a file's size and identity were just learned)."""
        self._now.set()

    async def flush(self, flog: FileLog) -> None:
        """fsync the part file, then record what is on disk (in that order)."""
        async with flog.lock:
            record = flog.record
            if record.size is None or record.complete or flog.finishing:
                return
            if not flog.dirty and record.done == flog.done.intervals():
                return
            if not flog.part.exists():
                return  # discarded (or not created): nothing on disk to record
            # Snapshot first: every byte it names was written before the fsync below starts.
            snapshot = flog.done.intervals()
            epoch = flog.epoch
            flog.dirty = 0
            try:
                await asyncio.to_thread(storage.fsync_path, flog.part)
                if epoch != flog.epoch or flog.finishing:
                    return  # restarted meanwhile (obsolete), or its finish records it
                record.done = snapshot
                await asyncio.to_thread(self.journal.save, record)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.warning("%s: could not update the journal: %s", flog.name, exc.strerror)

    async def save(self, flog: FileLog, update: Callable[[FileRecord], None]) -> None:
        """Change the record and write it now, after any flush under way."""
        async with flog.lock:
            update(flog.record)
            await asyncio.to_thread(self.journal.save, flog.record)

    async def discard(self, flog: FileLog) -> None:
        """Remove the record and the part file (bytes that must not be resumed), after any
        flush under way, which would otherwise write the record back."""
        async with flog.lock:
            await asyncio.to_thread(self.journal.remove, flog.name)

    async def flush_all(self, flogs: Iterable[FileLog]) -> None:
        for flog in list(flogs):
            await self.flush(flog)

    async def run(self, flogs: Callable[[], Iterable[FileLog]]) -> None:
        """Flush dirty records every FLUSH_SECONDS, or at once when asked; until cancelled."""
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel() that
            # ends this task when the event fires at the same moment, and the run hangs.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_SECONDS):
                    await self._now.wait()
            self._now.clear()
            for flog in list(flogs()):
                if flog.dirty:
                    await self.flush(flog)
