"""What the parts of one run share: its configuration, the scheduler, the connections'
session, the link resolver, the journal writer, the reporter, and the task group."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from downloader.content import checker_for
from downloader.disk.hashing import Digests, FileHasher, is_plain_md5_etag
from downloader.disk.journal.store import Journal
from downloader.disk.journal.writer import JournalWriter
from downloader.engine.fetcher import Wire
from downloader.engine.filejob import FileJob
from downloader.results import FileOutcome
from downloader.wire.retry import Backoff


@dataclass(frozen=True, slots=True)
class EngineConfig:
    out_dir: Path
    backup_id: str
    jobs: int = 8
    per_file: int = 8
    connections: int = 32
    chunk_size: int | None = None
    retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    limit_rate: int | None = None
    preallocate: bool = True
    check_md5: bool = True
    sha256: bool = False  # also record SHA-256 (read back: it does not combine like CRC-64)
    adaptive: bool = True  # start with fewer connections, add them while each is slow
    recheck: bool = False  # hash every finished file in place again, not only changed ones
    content_check: bool = True  # check each file's own structure as its bytes land

    @property
    def backoff(self) -> Backoff:
        # A server's Retry-After is honoured up to three times the longest backoff.
        return Backoff(self.backoff_base, self.backoff_max, self.backoff_max * 3)


@dataclass(eq=False, kw_only=True)
class RunContext(Wire):
    """A download run's parts: the wire's, plus the journal, the files' outcomes, and
    where part-file writes and checksums run."""

    cfg: EngineConfig
    journal: Journal
    writer: JournalWriter
    tg: asyncio.TaskGroup
    executor: concurrent.futures.Executor | None = None  # part-file writes
    clock: Callable[[], float] = time.monotonic
    outcomes: dict[str, FileOutcome] = field(default_factory=dict)

    def start_hasher(self, job: FileJob) -> None:
        """(Re)start the file's checksums from byte 0; its size and ETag are known."""
        assert job.plan.size is not None
        if job.hasher is not None:
            job.hasher.stop()
        md5 = self.cfg.check_md5 and is_plain_md5_etag(job.etag)
        digests = Digests.for_file(sha256=self.cfg.sha256, md5=md5)
        size = job.plan.size
        content = checker_for(job.name, size) if self.cfg.content_check else None
        job.hasher = FileHasher(job.name, job.part, job.done, size, digests, content)
        job.hasher.start(self.tg)
