"""Keeps each file's journal record truthful while a run writes its part file.

The order is what makes it crash-safe: fsync the part file, then write the record naming
only bytes written before that fsync started. A file's record is flushed once its oldest
unrecorded byte is ``FLUSH_SECONDS`` old, or as soon as it took a chunk of new bytes
(``FLUSH_BYTES`` at most), and at the end; one write at a time per file
(:attr:`FileLog.lock`), so a flush caught in its fsync can never write an older record over
the finish's. A file that finishes within a second of its first byte is recorded once, by
its finish: a run of many small files does not pay for flushes its finish makes moot.

The record a finish writes after the move into place ("complete") is written by this
writer's task, in batches (:meth:`JournalWriter.complete`): its file is already verified,
fsynced and in place, and the record written before the move names every byte and the
checksums, so a run stopped before the batch is written finds the file in place and checks
it against that record (:mod:`downloader.engine.resume`) instead of fetching it again. A
batch is every record that waits when the task gets to it (a group commit: the ones that
finish while a batch is being written make the next one), each record atomically, with one
fsync of the journal folder for the batch; the finish does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from downloader.disk import storage
from downloader.disk.journal.records import FLUSH_BYTES, FLUSH_SECONDS, FileRecord
from downloader.disk.journal.store import Journal
from downloader.errors import StorageError
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
    dirty_since: float | None = None  # when the oldest of them landed
    due: bool = False  # a chunk of them: flush at the next turn
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one record write at a time
    finishing: bool = False  # its finish records it: flushes stay away
    epoch: int = 0  # bumped when the file restarts: a flush under way is then obsolete

    def wrote(self, pos: int, n: int, now: float) -> int:
        """Bytes ``[pos, pos + n)`` are on disk (at ``now``); returns how many of them are new
        (a split's overlap is not counted twice)."""
        new = self.done.add(pos, pos + n)
        if new and not self.dirty:
            self.dirty_since = now
        self.dirty += new
        return new

    def clean(self) -> None:
        """Every byte on disk is being recorded."""
        self.dirty = 0
        self.dirty_since = None
        self.due = False

    def reset(self, record: FileRecord) -> None:
        """The file starts over: nothing of it is on disk, and it has a new record."""
        self.record = record
        self.done = RangeSet()
        self.clean()
        self.epoch += 1
        self.finishing = False


class JournalWriter:
    """The flushes of one run; :meth:`run` is its background task."""

    def __init__(self, journal: Journal, clock: Callable[[], float] = time.monotonic) -> None:
        self.journal = journal
        self.clock = clock
        self.saves = 0  # record writes in this run (each atomic), for tests and the bench
        self._now = asyncio.Event()
        self._completed: list[FileLog] = []
        self._writing: asyncio.Task[None] | None = None

    def wrote(self, flog: FileLog, pos: int, n: int, chunk: int) -> int:
        """Note a write; a chunk of new bytes asks for a flush at once (so a kill costs at
        most about a chunk per connection, however fast the link). A file now complete is
        recorded by its finish instead."""
        new = flog.wrote(pos, n, self.clock())
        size = flog.record.size or 0
        if flog.dirty >= min(FLUSH_BYTES, chunk) and flog.done.covered() < size:
            flog.due = True
            self._now.set()
        return new

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
            flog.clean()
            try:
                await asyncio.to_thread(storage.fsync_path, flog.part)
                if epoch != flog.epoch or flog.finishing:
                    return  # restarted meanwhile (obsolete), or its finish records it
                record.done = snapshot
                self.saves += 1
                await asyncio.to_thread(self.journal.save, record)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.warning("%s: could not update the journal: %s", flog.name, exc.strerror)

    async def save(self, flog: FileLog, update: Callable[[FileRecord], None]) -> None:
        """Change the record and write it now, after any flush under way."""
        async with flog.lock:
            update(flog.record)
            self.saves += 1
            await asyncio.to_thread(self.journal.save, flog.record)

    def complete(self, flog: FileLog, update: Callable[[FileRecord], None]) -> None:
        """Change the record of a file verified and moved into place, and write it with the
        next batch (see the module's docstring for why that may wait)."""
        update(flog.record)
        self._completed.append(flog)
        self._now.set()

    async def write_completed(self) -> None:
        """Write the waiting completed records: each atomically, one folder fsync for all.

        Raises :class:`~downloader.errors.StorageError` when they cannot be written (the
        files stay in place; a later run checks them against their earlier records)."""
        await self._written()
        batch, self._completed = self._completed, []
        if not batch:
            return
        # Its own task, shielded: a cancel (the end of the run cancels this writer's task)
        # must not leave a batch half-known; flush_all waits for it (_written).
        writing = self._writing = asyncio.create_task(self._save(batch))
        try:
            await asyncio.shield(writing)
        finally:
            if writing.done():
                self._writing = None

    async def _save(self, batch: list[FileLog]) -> None:
        try:
            await asyncio.to_thread(self.journal.save_many, [f.record for f in batch])
        except OSError as exc:
            # Kept for the next batch: the end of the run tries once more, and fails the
            # run if it still cannot (the manifest is built from these records).
            self._completed = batch + self._completed
            names = ", ".join(f.name for f in batch)
            raise StorageError(
                f"cannot record {names} as complete in the journal: {exc.strerror or exc}"
            ) from exc
        self.saves += len(batch)

    async def _written(self) -> None:
        """Wait for a batch still being written (its caller was cancelled meanwhile)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            with contextlib.suppress(StorageError):  # its records wait for the next batch
                await writing

    async def discard(self, flog: FileLog) -> None:
        """Remove the record and the part file (bytes that must not be resumed), after any
        flush under way, which would otherwise write the record back."""
        async with flog.lock:
            await asyncio.to_thread(self.journal.remove, flog.name)

    async def flush_all(self, flogs: Iterable[FileLog]) -> None:
        """At the end of a run: every dirty record, then the completed ones."""
        for flog in list(flogs):
            await self.flush(flog)
        await self.write_completed()

    def _wait(self, flogs: Iterable[FileLog], now: float) -> float:
        """Seconds until the next flush is due (at most FLUSH_SECONDS)."""
        starts = [f.dirty_since for f in flogs if f.dirty and f.dirty_since is not None]
        if not starts:
            return FLUSH_SECONDS
        return min(FLUSH_SECONDS, max(0.0, min(starts) + FLUSH_SECONDS - now))

    async def run(self, flogs: Callable[[], Iterable[FileLog]]) -> None:
        """Flush each dirty record once it is due, and write the completed records waiting;
        until cancelled."""
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel() that
            # ends this task when the event fires at the same moment, and the run hangs.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._wait(flogs(), self.clock())):
                    await self._now.wait()
            self._now.clear()
            now = self.clock()
            for flog in list(flogs()):
                if flog.dirty and (
                    flog.due
                    or (flog.dirty_since is not None and now - flog.dirty_since >= FLUSH_SECONDS)
                ):
                    await self.flush(flog)
            try:
                await self.write_completed()
            except StorageError as exc:
                log.warning("%s", exc)  # tried again with the next batch, and at the end
