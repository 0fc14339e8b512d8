"""One download run: plan -> a TaskGroup of connection workers -> verify -> move into place.

The engine receives the files to fetch (already resolved and selected), a resolver that
keeps their links fresh, an aiohttp session and a reporter. Decisions are made by the pure
:class:`~downloader.scheduler.Scheduler` and :func:`~downloader.transfer.classify`; this
module does the I/O and keeps the journal truthful.

Tasks in the group: ``connections`` workers (each runs one range at a time), a journal
flusher, a progress ticker, and one hasher per open file (SHA-256 and, where the ETag is a
plain MD5, MD5 of the growing contiguous prefix, read back from the page cache, so no second
pass over the finished file is needed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiofiles
import aiohttp
from yarl import URL

from downloader import storage
from downloader.digest import Crc64, Piece, PieceLog
from downloader.errors import (
    FileGoneError,
    LinkRefusedError,
    ObjectChangedError,
    RdsBackupError,
    StorageError,
    TransferError,
    VerificationError,
)
from downloader.journal import FLUSH_BYTES, FLUSH_SECONDS, FileRecord, Journal
from downloader.models import BackupFile
from downloader.progress import Reporter
from downloader.ranges import RangeSet, default_chunk_size, kb_size_matches, split
from downloader.ratelimit import RateLimiter
from downloader.resolver import Link, LinkResolver
from downloader.scheduler import FileState, Limits, PlanFile, Scheduler, Slot
from downloader.transfer import (
    Answer,
    Kind,
    classify,
    error_code,
    is_plain_md5_etag,
    request_headers,
)

log = logging.getLogger("rds_backup.engine")

READ_SIZE = 256 * 1024
WRITE_SIZE = 512 * 1024  # at least READ_SIZE: one read always fits an emptied buffer
WRITE_AGE = 0.25
# Part-file writes go through threads of their own, apart from fsyncs and journal saves.
# Few: concurrent writes to one file queue on its inode lock, and in a VM a writer that
# loses its CPU while holding it leaves the others spinning in the kernel.
WRITER_THREADS = 2
HASH_SPAN = 1024 * 1024
MAX_RESTARTS = 2
GOVERNOR_PERIOD = 0.25
SLOW_CONNECTION = 32 * 1024 * 1024  # bytes/s; faster connections mean the CPU is the limit


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


@dataclass(slots=True)
class FileOutcome:
    name: str
    database_name: str | None
    ok: bool
    skipped: bool = False
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    crc64: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    seconds: float = 0.0
    fetched: int = 0
    detail: str | None = None
    error: RdsBackupError | None = None


@dataclass(slots=True)
class RunStats:
    retries: int = 0
    restarts: int = 0
    bytes_fetched: int = 0


@dataclass(eq=False)
class FileJob:
    """Everything the engine tracks for one file."""

    bf: BackupFile
    plan: PlanFile
    part: Path
    final: Path
    record: FileRecord
    done: RangeSet = field(default_factory=RangeSet)
    chunk: int = 0
    restarts: int = 0
    action: str | None = None  # what to do once drained: "restart" or "fail"
    error: RdsBackupError | None = None
    reason: str = ""
    sha256: Any = None
    md5: Any = None
    crc64: Any = None
    pieces: PieceLog | None = None  # CRC-64 of what this run wrote, when CRC-64 is all
    hashed: int = 0
    hash_error: str | None = None
    hash_wake: asyncio.Event = field(default_factory=asyncio.Event)
    hash_task: asyncio.Task[None] | None = None
    hash_settled: asyncio.Event = field(default_factory=asyncio.Event)  # whole, or failed
    dirty: int = 0
    save_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one journal write at a time
    started: float | None = None
    fetched: int = 0
    outcome: FileOutcome | None = None

    @property
    def name(self) -> str:
        return self.bf.name

    @property
    def etag(self) -> str | None:
        return self.record.etag


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        files: Sequence[BackupFile],
        *,
        resolver: LinkResolver,
        session: aiohttp.ClientSession,
        reporter: Reporter,
        journal: Journal,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = config
        self.resolver = resolver
        self.session = session
        self.reporter = reporter
        self.journal = journal
        self.layout = journal.layout
        self.clock = clock
        self.stats = RunStats()
        self.limiter = RateLimiter(config.limit_rate) if config.limit_rate else None
        self.jobs: dict[str, FileJob] = {}
        self.outcomes: dict[str, FileOutcome] = {}
        self._files = list(files)
        self._cond = asyncio.Condition()
        self._flush_now = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._writers: concurrent.futures.ThreadPoolExecutor | None = None
        self.sched: Scheduler | None = None

    # ------------------------------------------------------------------ setup

    def _prepare(self) -> list[FileJob]:
        jobs = []
        for bf in self._files:
            final = self.layout.final(bf.name)
            record, why = self.journal.load(self.cfg.backup_id, bf.name, bf.size_kb)
            fresh = FileRecord(
                self.cfg.backup_id, bf.name, bf.size_kb, database_name=bf.database_name
            )
            if record is not None and record.complete:
                if final.exists() and final.stat().st_size == record.size:
                    self._skip(bf, record)
                    continue
                record, why = None, "finished earlier, but the file is missing or altered"
            if record is not None and self.journal.moved_into_place(record):
                if self._adopt(bf, record, final):
                    continue
                record, why = None, None
            if why:
                self.reporter.event(
                    "warning", f"{bf.name}: {why}; restarting this file", file=bf.name
                )
                self.journal.remove(bf.name)
            plan = PlanFile(bf.name, bf.size_kb * 1024)
            job = FileJob(bf, plan, self.layout.part(bf.name), final, record or fresh)
            if record is not None and record.size is not None:
                plan.size = record.size
                plan.needs_probe = False
                job.done = RangeSet(record.done)
            jobs.append(job)
        return jobs

    def _skip(self, bf: BackupFile, rec: FileRecord) -> None:
        self.outcomes[bf.name] = FileOutcome(
            bf.name,
            bf.database_name,
            ok=True,
            skipped=True,
            size=rec.size,
            sha256=rec.sha256,
            md5=rec.md5,
            crc64=rec.crc64,
            etag=rec.etag,
            last_modified=rec.last_modified,
        )
        self.reporter.file_skipped(bf.name, "already downloaded and verified")

    def _adopt(self, bf: BackupFile, rec: FileRecord, final: Path) -> bool:
        """An earlier run moved the file into place but stopped before recording it
        complete: hash what is there (this one time a second read is needed) and record it
        if it matches the CRC-64 recorded before the rename (or, for a record without one,
        the MD5 its ETag gives). With neither to check it against, it is fetched again."""
        sha = hashlib.sha256() if self.cfg.sha256 else None
        md5 = _md5() if (self.cfg.check_md5 and is_plain_md5_etag(rec.etag)) else None
        if rec.crc64 is None and md5 is None:
            return False
        crc = Crc64()
        with open(final, "rb") as fh:
            while block := fh.read(HASH_SPAN):
                crc.update(block)
                for h in (sha, md5):
                    if h is not None:
                        h.update(block)
        crc_differs = rec.crc64 is not None and crc.value != rec.crc64
        md5_differs = (
            md5 is not None and rec.etag and md5.hexdigest() != rec.etag.strip('"').lower()
        )
        if crc_differs or md5_differs:
            log.warning("%s: file in place does not match its object; fetching again", bf.name)
            os.unlink(final)
            self.journal.remove(bf.name)
            return False
        rec.complete = True
        rec.done = [(0, rec.size)] if rec.size else []
        rec.sha256 = sha.hexdigest() if sha is not None else None
        rec.md5 = md5.hexdigest() if md5 is not None else None
        rec.crc64 = crc.value
        rec.finished_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.journal.save(rec)
        self._skip(bf, rec)
        return True

    def _check_space(self, jobs: list[FileJob]) -> None:
        """Fail in the first second, not after hours: the whole selection must fit."""
        if not jobs:
            return
        need = sum(max(0, j.bf.size_kb * 1024 - storage.allocated(j.part)) for j in jobs)
        free = storage.free_bytes(self.layout.state)
        if free < need:
            raise StorageError(
                f"not enough free space in {self.cfg.out_dir}: {need} bytes needed, "
                f"{free} available"
            )

    # ------------------------------------------------------------------ run

    async def run(self) -> list[FileOutcome]:
        jobs = self._prepare()
        self._check_space(jobs)
        for job in jobs:
            self.jobs[job.name] = job
            # A file may end up served by every connection once the others are done.
            job.chunk = self.cfg.chunk_size or default_chunk_size(
                job.plan.size_hint, max(self.cfg.per_file, self.cfg.connections)
            )
            if not job.plan.needs_probe:
                assert job.plan.size is not None
                storage.create_part(job.part)
        self.sched = Scheduler(
            [j.plan for j in jobs],
            Limits(self.cfg.jobs, self.cfg.per_file, self.cfg.connections),
        )
        if jobs:
            self._writers = concurrent.futures.ThreadPoolExecutor(
                WRITER_THREADS, thread_name_prefix="rds-backup-write"
            )
            try:
                async with asyncio.TaskGroup() as tg:
                    self._tg = tg
                    for job in jobs:
                        if not job.plan.needs_probe:
                            self._resume(job)
                            if not job.plan.pending:
                                # All on disk already (stopped before the move into place):
                                # no range will end to trigger the finish, so do it here.
                                tg.create_task(self._settle_and_notify(job))
                    workers = [tg.create_task(self._worker()) for _ in range(self.cfg.connections)]
                    helpers = [
                        tg.create_task(self._flusher()),
                        tg.create_task(self._ticker()),
                        tg.create_task(self._governor()),
                    ]
                    await asyncio.gather(*workers)
                    for h in helpers:
                        h.cancel()
            finally:
                self._tg = None
                try:
                    await asyncio.shield(self._flush_all())
                finally:
                    self._writers.shutdown(wait=False)  # idle: every write was awaited
        return [self.outcomes[bf.name] for bf in self._files if bf.name in self.outcomes]

    def _resume(self, job: FileJob) -> None:
        assert self.sched is not None and job.plan.size is not None
        size = job.plan.size
        self.reporter.file_started(job.name, size, already=job.done.covered())
        job.started = self.clock()
        self._setup_hashers(job)
        missing = list(split(job.done.missing(size), job.chunk))
        self.sched.plan(job.plan, missing)
        log.info("%s: resuming, %d of %d bytes already on disk", job.name, job.done.covered(), size)

    async def _settle_and_notify(self, job: FileJob) -> None:
        await self._settle(job)
        await self._notify()

    async def _notify(self) -> None:
        """Wake as many idle workers as may find a range now (all of them once the run is
        over): waking every worker on each change costs more than the work itself when
        most of the budget sits idle."""
        async with self._cond:
            sched = self.sched
            if sched is None or sched.finished():
                self._cond.notify_all()
            else:
                self._cond.notify(min(sched.soft_cap, self.cfg.connections) - sched.busy)

    async def _worker(self) -> None:
        assert self.sched is not None
        sched = self.sched
        while True:
            async with self._cond:
                while True:
                    slot = sched.next()
                    if slot is not None or sched.finished():
                        break
                    await self._cond.wait()
            if slot is None:
                return
            job = self.jobs[slot.file.name]
            try:
                await self._run_slot(job, slot)
            except RdsBackupError as exc:
                self._fail(job, exc)
            except OSError as exc:
                self._fail(job, storage.disk_error(exc, job.name))
            finally:
                sched.release(slot)
            if not job.plan.slots and self._tg is not None:
                # Verifying and moving a finished file into place waits on fsync: done
                # aside, so this connection goes straight on to its next range.
                self._tg.create_task(self._settle_and_notify(job))
            await self._notify()
            await asyncio.sleep(0)  # never hog the loop, whatever the slot did

    # ------------------------------------------------------------------ one range

    def _stale(self, job: FileJob, slot: Slot) -> bool:
        return slot.epoch != job.plan.epoch or job.plan.state in (
            FileState.DRAINING,
            FileState.FAILED,
        )

    async def _run_slot(self, job: FileJob, slot: Slot) -> None:
        attempts = 0
        refused_generation: int | None = None
        while not self._stale(job, slot):
            if slot.end is not None and (
                slot.pos >= slot.end or job.done.contains(slot.pos, slot.end)
            ):
                slot.pos = slot.end  # nothing of it to put back in the queue
                return
            link = await self.resolver.fresh(job.name)
            pos_before = slot.pos
            end = slot.end
            if slot.probe:
                end = job.chunk
            headers = request_headers(slot.pos, end, job.etag)
            try:
                async with self.session.get(
                    URL(link.url, encoded=True), headers=headers, allow_redirects=False
                ) as resp:
                    ans = classify(
                        resp.status,
                        resp.headers,
                        start=slot.pos,
                        end=end,
                        expect_etag=job.etag,
                        expect_total=job.plan.size,
                    )
                    self.resolver.observe_server_date(ans.date)
                    if ans.kind in (Kind.PARTIAL, Kind.WHOLE):
                        refused_generation = None
                        probe = slot.probe
                        if not self._accept(job, slot, ans):
                            return
                        if probe:
                            await self._notify()  # its other ranges are queued now
                        await self._pump(job, slot, resp, ans)
                        if (
                            slot.end is not None
                            and slot.pos < slot.end
                            and not self._stale(job, slot)
                        ):
                            raise aiohttp.ClientPayloadError("body ended early")
                        return
                    body = await resp.content.read(4096) if ans.kind is Kind.REFUSED else b""
            except aiohttp.ClientSSLError as exc:
                raise _tls_error(job.name, link.url, exc) from exc
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                if slot.pos > pos_before:
                    attempts = 0  # it moved forward: only stalls in a row count
                attempts += 1
                self.stats.retries += 1
                what = type(exc).__name__
                if attempts > self.cfg.retries:
                    raise TransferError(
                        f"{job.name}: giving up after {attempts} attempts ({what})", file=job.name
                    ) from exc
                self.reporter.event(
                    "retry",
                    f"{job.name}: {what} at byte {slot.pos}; retry {attempts}/{self.cfg.retries}",
                    file=job.name,
                    attempt=attempts,
                )
                await asyncio.sleep(self._backoff(attempts, None))
                continue
            # A non-body answer.
            if ans.kind is Kind.EMPTY and slot.probe:
                self._learn(job, 0, ans)
                return
            if ans.kind is Kind.CHANGED:
                self._restart(job, ans.detail or "the object changed")
                return
            if ans.kind is Kind.REFUSED:
                code = error_code(body) or "AccessDenied"
                self.reporter.event(
                    "link_refused",
                    f"{job.name}: object store refused the link ({ans.status} {code})",
                    file=job.name,
                    status=ans.status,
                    request_id=ans.request_id,
                )
                if refused_generation is not None and link.generation > refused_generation:
                    raise LinkRefusedError(
                        f"{job.name}: the object store refuses even a freshly resolved link "
                        f"({code})",
                        file=job.name,
                        status=ans.status,
                        request_id=ans.request_id,
                    )
                refused_generation = link.generation
                await self._renew(job, link)
                continue
            if ans.kind is Kind.GONE:
                raise FileGoneError(
                    f"{job.name}: {ans.detail}",
                    file=job.name,
                    status=ans.status,
                    request_id=ans.request_id,
                )
            attempts += 1
            self.stats.retries += 1
            if attempts > self.cfg.retries:
                raise TransferError(
                    f"{job.name}: {ans.detail}; giving up after {attempts} attempts",
                    file=job.name,
                    status=ans.status,
                    request_id=ans.request_id,
                )
            self.reporter.event(
                "retry",
                f"{job.name}: {ans.detail}; retry {attempts}/{self.cfg.retries}",
                file=job.name,
                status=ans.status,
                attempt=attempts,
            )
            await asyncio.sleep(self._backoff(attempts, ans.retry_after))

    async def _renew(self, job: FileJob, link: Link) -> None:
        try:
            await self.resolver.refused(job.name, link)
        except (FileGoneError, LinkRefusedError):
            raise
        except RdsBackupError as exc:
            raise LinkRefusedError(
                f"{job.name}: link refused and re-resolving failed: {exc}", file=job.name
            ) from exc

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.cfg.backoff_max, self.cfg.backoff_base * 2 ** (attempt - 1))
        delay = random.uniform(0, cap)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cfg.backoff_max * 3))
        return delay

    def _accept(self, job: FileJob, slot: Slot, ans: Answer) -> bool:
        """Check a body-carrying answer against what we know; False: drop the slot."""
        assert ans.total is not None
        if ans.crc64 is not None and ans.whole:
            # Trusted only from an answer that is the whole object: esdk-obs-python checks
            # it for whole-object downloads only (a ranged answer's may not describe it).
            job.record.crc64 = ans.crc64
        if slot.probe:
            self._learn(job, ans.total, ans)
            if job.plan.state is FileState.FAILED or job.plan.state is FileState.DRAINING:
                return False
            slot.probe = False
            if ans.kind is Kind.WHOLE:
                self._go_sequential(job, slot)
            else:
                slot.end = min(job.chunk, ans.total)
            return True
        if ans.kind is Kind.WHOLE:
            if not job.plan.sequential:
                self.reporter.event(
                    "warning",
                    f"{job.name}: the server ignores Range; fetching this file as one stream",
                    file=job.name,
                )
                self._go_sequential(job, slot)
            return True
        return True

    def _go_sequential(self, job: FileJob, slot: Slot) -> None:
        """The server answers ranged GETs with the whole object: one stream for this file,
        from the first missing byte to the end (bytes already on disk are rewritten with the
        same content: the ETag is checked on every answer)."""
        plan = job.plan
        size = plan.size
        assert size is not None
        plan.sequential = True
        missing = job.done.missing(size)
        first = missing[0][0] if missing else size
        plan.pending.clear()
        slot.pos = min(slot.pos, first)
        slot.start = slot.pos
        slot.end = size

    def _learn(self, job: FileJob, total: int, ans: Answer) -> None:
        """The first answer for a file: its size and identity."""
        assert self.sched is not None
        plan = job.plan
        if not kb_size_matches(total, job.bf.size_kb):
            self._fail(
                job,
                VerificationError(
                    f"{job.name}: the object has {total} bytes but the API reports "
                    f"{job.bf.size_kb} KB",
                    file=job.name,
                ),
            )
            return
        plan.size = total
        plan.needs_probe = False
        job.record.size = total
        job.record.etag = ans.etag
        job.record.last_modified = ans.last_modified
        storage.create_part(job.part)
        if self.cfg.preallocate and total:
            try:
                storage.preallocate(job.part, total)
            except OSError as exc:
                self._fail(job, storage.disk_error(exc, job.name, total))
                return
        if job.started is None:
            job.started = self.clock()
            self.reporter.file_started(job.name, total)
        else:
            self.reporter.file_size_known(job.name, total)
        self._setup_hashers(job)
        first = min(job.chunk, total)
        self.sched.plan(plan, list(split([(first, total)], job.chunk)))
        self._flush_now.set()

    async def _pump(
        self, job: FileJob, slot: Slot, resp: aiohttp.ClientResponse, ans: Answer
    ) -> None:
        """Stream the body into the part file at the slot's offset.

        Memory per connection is bounded by construction: aiohttp buffers at most twice its
        read_bufsize, and this loop copies what it reads into one reusable buffer of
        WRITE_SIZE bytes, written out when it is full, before a read would overflow it, or
        once WRITE_AGE seconds have passed (so a slow link still journals its progress).
        """
        assert ans.start is not None
        skip = slot.pos - ans.start  # a 200 answer starts at byte 0
        pos = slot.pos
        buf = bytearray(WRITE_SIZE)
        view = memoryview(buf)
        buffered = 0
        piece: Piece | None = None
        read = resp.content.read
        clock = asyncio.get_running_loop().time
        last_write = clock()

        async def write_out() -> bool:
            """Write what the buffer holds; False if the slot went stale (nothing written)."""
            nonlocal piece, pos, buffered, last_write
            if self._stale(job, slot):
                return False
            piece = await self._write(job, fh, pos, view[:buffered], piece)
            pos += buffered
            slot.pos = pos
            buffered = 0
            last_write = clock()
            return True

        # Unbuffered: a write that returned is in the kernel, so the hasher's pread and the
        # journal's fsync see it (a buffered writer would hold small writes back).
        async with aiofiles.open(job.part, "r+b", buffering=0, executor=self._writers) as fh:
            await fh.seek(pos)
            try:
                while True:
                    data = await read(READ_SIZE)
                    if not data:
                        break
                    n = len(data)
                    start = 0
                    if skip:
                        if n <= skip:
                            skip -= n
                            continue
                        start, skip = skip, 0
                    self.stats.bytes_fetched += n - start
                    job.fetched += n - start
                    if self.limiter is not None:
                        await self.limiter.take(n - start)
                    if buffered + (n - start) > WRITE_SIZE and not await write_out():
                        return
                    limit = slot.end
                    stop = False
                    if limit is not None and pos + buffered + (n - start) >= limit:
                        n = start + max(0, limit - pos - buffered)
                        stop = True
                    buf[buffered : buffered + n - start] = memoryview(data)[start:n]
                    buffered += n - start
                    full = buffered >= WRITE_SIZE or clock() - last_write >= WRITE_AGE
                    if (full or stop) and not await write_out():
                        return
                    if stop or self._stale(job, slot):
                        break
            except (aiohttp.ClientError, TimeoutError, ConnectionError):
                # The bytes that did arrive are good: keep them, refetch only the rest.
                if buffered and not self._stale(job, slot):
                    await self._write(job, fh, pos, view[:buffered], piece)
                    slot.pos = pos + buffered
                raise
            if buffered and not self._stale(job, slot):
                await self._write(job, fh, pos, view[:buffered], piece)
                slot.pos = pos + buffered

    async def _write(
        self, job: FileJob, fh: Any, pos: int, data: memoryview, piece: Piece | None
    ) -> Piece | None:
        """Write ``data`` at ``pos`` (the handle is already there); returns the CRC piece
        the bytes went into, for the caller's next write."""
        n = len(data)
        rest = data
        try:
            while rest:
                written = await fh.write(rest)
                rest = rest[written:]
        except OSError as exc:
            need = (job.plan.size or 0) - job.done.covered()
            raise storage.disk_error(exc, job.name, need) from exc
        if job.pieces is not None:
            # Checksummed here, from memory: CRC-64 runs at memory speed and nothing is read
            # back from the file for it.
            piece = job.pieces.wrote(piece, pos, data)
        new = job.done.add(pos, pos + n)  # a split's overlap is not counted twice
        job.dirty += new
        # Journal at least once per chunk of new bytes: a kill then costs at most about a
        # chunk per connection (the bytes in flight), however fast the link. A file that
        # is now complete is recorded by its finish instead.
        if job.dirty >= min(FLUSH_BYTES, job.chunk) and job.done.covered() < (job.plan.size or 0):
            self._flush_now.set()
        self.reporter.advance(job.name, new)
        if job.pieces is None:
            job.hash_wake.set()  # read back what is now contiguous (pieces wait for the end)
        return piece

    # ------------------------------------------------------------------ hashing

    def _setup_hashers(self, job: FileJob) -> None:
        assert self._tg is not None
        if job.hash_task is not None:
            job.hash_task.cancel()
        job.sha256 = hashlib.sha256() if self.cfg.sha256 else None
        job.crc64 = Crc64()
        job.md5 = _md5() if (self.cfg.check_md5 and is_plain_md5_etag(job.etag)) else None
        job.pieces = PieceLog() if job.sha256 is None and job.md5 is None else None
        job.hashed = 0
        job.hash_wake = asyncio.Event()
        job.hash_wake.set()
        job.hash_settled = asyncio.Event()
        job.hash_task = self._tg.create_task(self._hasher(job, job.plan.epoch))

    async def _hasher(self, job: FileJob, epoch: int) -> None:
        loop = asyncio.get_running_loop()
        fd: int | None = None
        try:
            while job.plan.epoch == epoch and job.plan.state is not FileState.FAILED:
                await job.hash_wake.wait()
                job.hash_wake.clear()
                target = job.done.prefix()
                if target <= job.hashed:
                    continue
                hashers = [h for h in (job.sha256, job.md5, job.crc64) if h is not None]
                try:
                    while job.hashed < target and job.plan.epoch == epoch:
                        limit = target
                        if job.pieces is not None:
                            piece = job.pieces.take(job.hashed)
                            if piece is not None:
                                job.crc64.append(piece.crc, piece.end - piece.start)
                                job.hashed = piece.end
                                # A combine costs a CRC pass over as many zero bytes as the
                                # piece is long (~1 ms per 64 MiB): let others run between.
                                await asyncio.sleep(0)
                                continue
                            # Bytes no piece describes: read them back, up to the next piece.
                            nearest = job.pieces.next_start(job.hashed)
                            if nearest is not None:
                                limit = min(limit, nearest)
                        n = min(HASH_SPAN, limit - job.hashed)
                        if fd is None:
                            fd = os.open(job.part, os.O_RDONLY)
                        got = await loop.run_in_executor(
                            None, _hash_span, fd, job.hashed, n, hashers
                        )
                        if got <= 0:
                            raise OSError(errno.EIO, "part file shorter than the journal says")
                        job.hashed += got
                except OSError as exc:
                    # Not raised into the TaskGroup (that would end the whole run): the
                    # file's finalize sees the hasher gone and fails this file only.
                    job.hash_error = f"{exc.strerror or exc}"
                    return
                if job.plan.size is not None and job.hashed >= job.plan.size:
                    job.hash_settled.set()
        finally:
            if fd is not None:
                os.close(fd)
            job.hash_settled.set()  # ended (failed, cancelled): finalize must not wait on

    # ------------------------------------------------------------------ file state changes

    def _fail(self, job: FileJob, exc: RdsBackupError) -> None:
        if job.plan.state in (FileState.FAILED, FileState.DONE):
            return
        job.error = job.error or exc
        job.action = "fail"
        job.plan.state = FileState.DRAINING
        job.plan.pending.clear()

    def _restart(self, job: FileJob, reason: str) -> None:
        if job.plan.state in (FileState.DRAINING, FileState.FAILED, FileState.DONE):
            return
        if job.restarts >= MAX_RESTARTS:
            self._fail(
                job,
                ObjectChangedError(
                    f"{job.name}: the object keeps changing ({reason}); giving up", file=job.name
                ),
            )
            return
        job.restarts += 1
        self.stats.restarts += 1
        job.action = "restart"
        job.reason = reason
        job.plan.state = FileState.DRAINING
        job.plan.pending.clear()

    async def _settle(self, job: FileJob) -> None:
        """After a slot ends: carry out a pending restart/failure, or finish the file."""
        plan = job.plan
        assert self.sched is not None
        if plan.slots:
            return
        if plan.state is FileState.DRAINING:
            if job.action == "restart":
                self._do_restart(job)
            else:
                await self._finish_failed(job)
            return
        if (
            plan.state is FileState.ACTIVE
            and plan.size is not None
            and job.done.covered() >= plan.size
        ):
            plan.pending.clear()  # whatever is queued is on disk already
            plan.state = FileState.FINISHING
            try:
                try:
                    await self._finalize(job)
                except OSError as exc:
                    raise storage.disk_error(exc, job.name) from exc
            except RdsBackupError as exc:
                plan.state = FileState.DRAINING
                job.error = exc
                await self._finish_failed(job)

    def _do_restart(self, job: FileJob) -> None:
        assert self.sched is not None
        self.reporter.event(
            "warning", f"{job.name}: {job.reason}; restarting the file", file=job.name
        )
        self.reporter.advance(job.name, -job.done.covered())
        plan = job.plan
        plan.epoch += 1
        plan.size = None
        plan.sequential = False
        plan.needs_probe = True
        job.done = RangeSet()
        job.dirty = 0
        job.record = FileRecord(
            self.cfg.backup_id, job.name, job.bf.size_kb, database_name=job.bf.database_name
        )
        if job.hash_task is not None:
            job.hash_task.cancel()
            job.hash_task = None
        self.journal.remove(job.name)
        job.action = None
        self.sched.reprobe(plan)

    async def _finish_failed(self, job: FileJob) -> None:
        job.plan.state = FileState.FAILED
        if job.hash_task is not None:
            job.hash_task.cancel()
        err = job.error or TransferError(f"{job.name}: failed", file=job.name)
        if isinstance(err, VerificationError):
            # Bytes that do not verify are never kept for a later resume. Under the save
            # lock: a flush caught in its fsync would write the record back afterwards.
            async with job.save_lock:
                await asyncio.to_thread(self.journal.remove, job.name)
        else:
            await self._flush(job)
        self.reporter.file_finished(job.name, ok=False, detail=str(err))
        self._outcome(job, ok=False, detail=str(err), error=err)

    def _outcome(
        self,
        job: FileJob,
        *,
        ok: bool,
        detail: str | None = None,
        error: RdsBackupError | None = None,
    ) -> None:
        secs = self.clock() - job.started if job.started is not None else 0.0
        self.outcomes[job.name] = FileOutcome(
            job.name,
            job.bf.database_name,
            ok=ok,
            size=job.plan.size,
            sha256=job.record.sha256,
            md5=job.record.md5,
            crc64=job.record.crc64 if job.record.complete else None,
            etag=job.record.etag,
            last_modified=job.record.last_modified,
            seconds=secs,
            fetched=job.fetched,
            detail=detail,
            error=error,
        )

    async def _finalize(self, job: FileJob) -> None:
        size = job.plan.size
        assert size is not None
        if size == 0:
            storage.create_part(job.part)
            storage.truncate(job.part, 0)
        job.hash_wake.set()
        settled = job.hash_settled
        while job.hashed < size:
            if job.hash_task is None or job.hash_task.done():
                raise StorageError(
                    f"{job.name}: could not read the part file back to hash it "
                    f"({job.hash_error or 'hasher stopped'})",
                    file=job.name,
                )
            await settled.wait()
            settled.clear()
        sha = job.sha256.hexdigest() if job.sha256 is not None else None
        md5 = job.md5.hexdigest() if job.md5 is not None else None
        expected_crc = job.record.crc64
        if expected_crc is not None and job.crc64.value != expected_crc:
            raise VerificationError(
                f"{job.name}: CRC-64 of the bytes received is {job.crc64.value} but "
                f"{expected_crc} was expected (as the object store reported it, or as it "
                "was recorded when these bytes were first written)",
                file=job.name,
            )
        if md5 is not None and job.etag and md5 != job.etag.strip('"').lower():
            raise VerificationError(
                f"{job.name}: MD5 of the bytes received is {md5} but the object's ETag is "
                f"{job.etag} (for a multipart upload the ETag is not an MD5: "
                "--no-md5-check skips this check)",
                file=job.name,
            )
        rec = job.record
        try:
            # Every byte on disk, then recorded with its checksums, then renamed: a run
            # stopped after the rename finds a record to check the file in place against.
            await asyncio.to_thread(storage.fsync_path, job.part)
            async with job.save_lock:  # after any flush under way, which would undo this
                rec.done = [(0, size)] if size else []
                rec.sha256 = sha
                rec.md5 = md5
                rec.crc64 = job.crc64.value
                await asyncio.to_thread(self.journal.save, rec)
            await asyncio.to_thread(storage.move_into_place, job.part, job.final)
        except OSError as exc:
            raise storage.disk_error(exc, job.name) from exc
        rec.complete = True
        rec.finished_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        async with job.save_lock:
            await asyncio.to_thread(self.journal.save, rec)
        job.plan.state = FileState.DONE
        if job.hash_task is not None:
            job.hash_task.cancel()
        self.reporter.file_finished(job.name, ok=True)
        self._outcome(job, ok=True)
        log.debug("%s: complete, %d bytes, crc64 %d", job.name, size, job.crc64.value)

    # ------------------------------------------------------------------ journal & ticks

    async def _flush(self, job: FileJob) -> None:
        """fsync the part file, then record what is on disk (in that order)."""
        async with job.save_lock:
            if job.plan.size is None or job.record.complete:
                return
            if job.plan.state in (FileState.DONE, FileState.FINISHING):
                return  # being verified and moved into place: that writes its record
            if not job.dirty and job.record.done == job.done.intervals():
                return
            # Snapshot first: every byte it names was written before the fsync below starts.
            if not job.part.exists():
                return  # discarded (or not created): nothing on disk to record
            snapshot = job.done.intervals()
            record = job.record
            epoch = job.plan.epoch
            job.dirty = 0
            try:
                await asyncio.to_thread(storage.fsync_path, job.part)
                if record is not job.record or epoch != job.plan.epoch:
                    return  # the file restarted meanwhile: this record is obsolete
                if job.plan.state in (FileState.FINISHING, FileState.DONE):
                    return  # its finish records it
                record.done = snapshot
                await asyncio.to_thread(self.journal.save, record)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.warning("%s: could not update the journal: %s", job.name, exc.strerror)

    async def _flush_all(self) -> None:
        for job in list(self.jobs.values()):
            if job.plan.state not in (FileState.DONE,):
                await self._flush(job)

    async def _flusher(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel() that
            # ends this task when the event fires at the same moment, and the run hangs.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_SECONDS):
                    await self._flush_now.wait()
            self._flush_now.clear()
            for job in list(self.jobs.values()):
                if job.dirty:
                    await self._flush(job)

    async def _governor(self) -> None:
        """Use as many connections as pay, up to the budget.

        On a fast path (loopback, a LAN) the CPU is the limit and every extra connection
        only costs: the run starts with ``per_file`` connections (at least ``jobs``). While
        every allowed connection is busy and each carries less than SLOW_CONNECTION (a
        per-connection cap, as object storage over a real network has), twice as many are
        allowed, every GOVERNOR_PERIOD, up to ``connections``.
        """
        assert self.sched is not None
        sched = self.sched
        budget = self.cfg.connections
        if not self.cfg.adaptive:
            return
        sched.soft_cap = min(budget, max(self.cfg.per_file, self.cfg.jobs))
        last = self.stats.bytes_fetched
        while sched.soft_cap < budget:
            await asyncio.sleep(GOVERNOR_PERIOD)
            fetched, last = self.stats.bytes_fetched - last, self.stats.bytes_fetched
            per_connection = fetched / GOVERNOR_PERIOD / max(1, sched.busy)
            if sched.busy >= sched.soft_cap and per_connection < SLOW_CONNECTION:
                sched.soft_cap = min(budget, sched.soft_cap * 2)
                log.debug(
                    "%.1f MiB/s per connection: allowing %d connections",
                    per_connection / 2**20,
                    sched.soft_cap,
                )
                await self._notify()

    async def _ticker(self) -> None:
        tick = getattr(self.reporter, "tick", None)
        if tick is None:
            return
        while True:
            await asyncio.sleep(1.0)
            tick()


def _hash_span(fd: int, offset: int, n: int, hashers: list[Any]) -> int:
    data = os.pread(fd, n, offset)
    for h in hashers:
        h.update(data)
    return len(data)


def _md5() -> Any:
    # MD5 here checks integrity against the object's ETag; it protects nothing secret.
    return hashlib.md5(usedforsecurity=False)


def _tls_error(name: str, url: str, exc: aiohttp.ClientSSLError) -> TransferError:
    """Words for a TLS failure on a download link: not retried, never silently bypassed.

    A virtual-hosted link to a bucket with dots in its name (``rdsbucket.x.1.obs.<region>...``)
    cannot match the object store's wildcard certificate (Huawei's RDS guide tells users of
    wget to turn verification off for exactly this reason).
    """
    host = URL(url, encoded=True).host or "?"
    bucket = host.split(".obs.", 1)[0] if ".obs." in host else ""
    hint = (
        f" (the bucket name {bucket!r} has dots, which wildcard certificates do not match)"
        if "." in bucket
        else ""
    )
    return TransferError(
        f"{name}: TLS certificate check failed for {host}{hint}: {exc.__class__.__name__}; "
        "--ca-bundle trusts a private CA, --insecure-links skips the check for download "
        "links only (logged)",
        file=name,
    )
