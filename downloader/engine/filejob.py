"""One file in one run: its plan (the scheduler's), its journal log, its hasher, and what
happened to it. The engine's parts share these; the transitions of its state belong to the
scheduler (:mod:`downloader.engine.lifecycle`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from downloader.disk.hashing import FileHasher
from downloader.disk.journal.records import FileRecord
from downloader.disk.journal.writer import FileLog
from downloader.engine.lifecycle import Event, after
from downloader.engine.scheduler import PlanFile, Scheduler
from downloader.errors import ObjectChangedError, RdsBackupError
from downloader.models import BackupFile
from downloader.ranges import RangeSet
from downloader.results import SERVER_CHECKSUM, ContentVerdict, RunStats

MAX_RESTARTS = 2


@dataclass(eq=False, slots=True)
class FileJob:
    bf: BackupFile
    plan: PlanFile
    log: FileLog
    final: Path
    chunk: int = 0
    restarts: int = 0
    error: RdsBackupError | None = None  # the first reason it failed
    reason: str = ""  # why it restarts
    hasher: FileHasher | None = None
    started: float | None = None
    fetched: int = 0  # bytes received for it this run
    content: ContentVerdict | None = None  # its content check's verdict, once read whole

    @property
    def name(self) -> str:
        return self.bf.name

    @property
    def part(self) -> Path:
        return self.log.part

    @property
    def record(self) -> FileRecord:
        return self.log.record

    @property
    def done(self) -> RangeSet:
        return self.log.done

    @property
    def etag(self) -> str | None:
        return self.log.record.etag

    def fresh_record(self, backup_id: str) -> FileRecord:
        return FileRecord(
            backup_id, self.name, self.bf.size_kb, database_name=self.bf.database_name
        )

    def reported_crc64(self, crc: int) -> None:
        """The store's CRC-64 of the whole object: what the bytes must match."""
        self.log.record.crc64 = crc
        self.log.record.integrity = SERVER_CHECKSUM

    def fail(self, sched: Scheduler, exc: RdsBackupError) -> None:
        """Give the file up once its ranges in flight end; the first error is the one kept."""
        if sched.fail(self.plan):
            self.error = self.error or exc

    def restart(self, sched: Scheduler, stats: RunStats, reason: str) -> None:
        """Start the file over (its object changed), at most MAX_RESTARTS times."""
        if after(self.plan.state, Event.RESTART) is None:
            return  # draining, finishing or closed: nothing to restart
        if self.restarts >= MAX_RESTARTS:
            self.fail(
                sched,
                ObjectChangedError(
                    f"{self.name}: the object keeps changing ({reason}); giving up",
                    file=self.name,
                ),
            )
            return
        if sched.restart(self.plan):
            self.restarts += 1
            stats.restarts += 1
            self.reason = reason
