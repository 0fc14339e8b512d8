"""One backup file to a consumer, in order, fetched in parallel: ``rds-backup cat``.

The same wire as a download (the scheduler's ranges and splits, the fetcher's retries,
link renewal, If-Match, the governor), a different sink: ranges land in a bounded reorder
window (:mod:`downloader.engine.window`) and one writer hands the bytes to the consumer strictly
in order, computing the stream's CRC-64 (and its MD5, where the ETag is one) as it goes.
Nothing lands on disk. A changed object cannot be restarted (the consumer has its bytes):
it fails the stream, as does a checksum that does not match at the end.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from downloader.content import checker_for
from downloader.disk.hashing import Digests, etag_md5
from downloader.engine.fetcher import RangeFetcher, Wire
from downloader.engine.governor import govern
from downloader.engine.resolver import LinkResolver
from downloader.engine.scheduler import Limits, PlanFile, Scheduler, Slot
from downloader.engine.sinks import SlotSink
from downloader.engine.window import Window
from downloader.errors import (
    ConsumerGoneError,
    ObjectChangedError,
    RdsBackupError,
    StorageError,
    TransferError,
    UsageError,
    VerificationError,
)
from downloader.models import BackupFile
from downloader.progress import Reporter
from downloader.ranges import MIB, RangeSet, kb_size_matches, split
from downloader.results import SERVER_CHECKSUM, SIZE_ONLY, ContentVerdict, RunStats
from downloader.wire.answer import Answer
from downloader.wire.curlget import fetch_range
from downloader.wire.curlmulti import CurlLoop
from downloader.wire.ratelimit import RateLimiter
from downloader.wire.retry import Backoff
from downloader.wire.transfer import STREAM_WRITE_SIZE, Policy, Transfer


@dataclass(frozen=True, slots=True)
class StreamConfig:
    offset: int = 0
    split: int = 8  # connections to start with
    connections: int = 32  # the most the governor may open
    chunk_size: int | None = None
    window: int = 64 * MIB
    retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    limit_rate: int | None = None
    check_md5: bool = True
    adaptive: bool = True

    def chunk(self) -> int:
        """Ranges small enough that every connection fits in the window twice over."""
        if self.chunk_size:
            return min(self.chunk_size, self.window)
        return max(256 * 1024, min(16 * MIB, self.window // (2 * self.connections)))


@dataclass(slots=True)
class StreamResult:
    name: str
    offset: int
    size: int  # the object's size
    written: int  # bytes handed to the consumer
    seconds: float
    crc64: int  # of the bytes written
    integrity: str  # SERVER_CHECKSUM or SIZE_ONLY
    retries: int
    peak_window: int
    content: ContentVerdict | None = None  # its own structure's verdict (None: --offset)


@dataclass(eq=False)
class StreamJob:
    """The one file of a stream, as the fetcher sees it."""

    bf: BackupFile
    plan: PlanFile
    window: Window
    chunk: int
    done: RangeSet = field(default_factory=RangeSet)
    etag: str | None = None
    fetched: int = 0
    crc64: int | None = None  # the store's, for the whole object
    error: RdsBackupError | None = None

    @property
    def name(self) -> str:
        return self.bf.name

    def fail(self, sched: Scheduler, exc: RdsBackupError) -> None:
        if sched.fail(self.plan):
            self.error = self.error or exc

    def restart(self, sched: Scheduler, stats: RunStats, reason: str) -> None:
        # The consumer has bytes of the old object already: there is no starting over.
        self.fail(
            sched,
            ObjectChangedError(
                f"{self.name}: the object changed during the stream ({reason}); "
                "discard what was received and run again",
                file=self.name,
            ),
        )

    def reported_crc64(self, crc: int) -> None:
        self.crc64 = crc


class WindowSink(SlotSink):
    """One range's bytes into the window (waiting for room: the consumer sets the pace)."""

    def __init__(self, job: StreamJob, slot: Slot, reporter: Reporter) -> None:
        super().__init__(slot)
        self.job = job
        self.reporter = reporter

    async def write(self, pos: int, data: memoryview) -> None:
        n = len(data)
        await self.job.window.room(pos + n)
        new = await self.job.window.put(pos, data)
        self.job.done.add(pos, pos + n)
        self.slot.pos = pos + n
        if new:
            self.reporter.advance(self.job.name, new)

    async def __aenter__(self) -> WindowSink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class StreamFetcher(RangeFetcher[StreamJob]):
    def _sink(self, job: StreamJob, slot: Slot) -> WindowSink:
        return WindowSink(job, slot, self.ctx.reporter)

    def _learn(self, job: StreamJob, total: int, ans: Answer) -> None:
        sched = self.ctx.sched
        offset = job.plan.first
        if not kb_size_matches(total, job.bf.size_kb):
            job.fail(
                sched,
                VerificationError(
                    f"{job.name}: the object has {total} bytes but the API reports "
                    f"{job.bf.size_kb} KB",
                    file=job.name,
                ),
            )
            return
        if offset > total:
            job.fail(
                sched, UsageError(f"--offset {offset} is past the end of {job.name} ({total})")
            )
            return
        job.etag = ans.etag
        first = min(offset + job.chunk, total) if ans.has_body else offset
        sched.plan(job.plan, total, list(split([(first, total)], job.chunk)))
        self.ctx.reporter.file_started(job.name, total - offset)


async def stream_file(
    bf: BackupFile,
    cfg: StreamConfig,
    *,
    out_fd: int,
    resolver: LinkResolver,
    session: CurlLoop,
    reporter: Reporter,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    transfer: Transfer = fetch_range,
) -> StreamResult:
    """Write ``bf``'s bytes from ``cfg.offset`` to the end into ``out_fd``, in order."""
    started = clock()
    chunk = cfg.chunk()
    plan = PlanFile(bf.name, bf.size_kb * 1024, first=cfg.offset)
    job = StreamJob(bf, plan, Window(cfg.offset, cfg.window), chunk)
    if cfg.offset:
        job.done.add(0, cfg.offset)  # never asked for, never written
    budget = max(cfg.connections, cfg.split)
    sched = Scheduler([plan], Limits(1, budget, budget))
    stats = RunStats()
    cond = asyncio.Condition()

    async def notify() -> None:
        async with cond:
            cond.notify_all()

    wire = Wire(
        sched,
        session,
        resolver,
        reporter,
        stats,
        notify,
        cfg.retries,
        Backoff(cfg.backoff_base, cfg.backoff_max, cfg.backoff_max * 3),
        sleep,
    )
    limiter = RateLimiter(cfg.limit_rate) if cfg.limit_rate else None
    # Bytes go from the connection's buffer straight into the window's ring: a smaller
    # buffer than a download's keeps what is in flight outside the window small.
    fetcher = StreamFetcher(wire, Policy(write_size=STREAM_WRITE_SIZE, limiter=limiter), transfer)
    digests = Digests.for_file(sha256=False, md5=False)
    md5_wanted = cfg.check_md5 and cfg.offset == 0
    written = 0
    # A stream from byte 0 is checked as it is written (from --offset, its structure
    # cannot be followed). Its size is the listing's until the first answer tells.
    checker = checker_for(bf.name, None) if cfg.offset == 0 else None

    async def worker() -> None:
        while True:
            async with cond:
                while True:
                    if sched.finished():
                        return
                    head = plan.pending[0] if plan.pending else None
                    slot = None
                    if head is None or job.window.admits(head[1]):
                        slot = sched.next()
                    if slot is not None:
                        break
                    await cond.wait()
            try:
                await fetcher.run(job, slot)
            except RdsBackupError as exc:
                job.fail(sched, exc)
            finally:
                sched.release(slot)
            _settle(sched, job)
            await notify()

    async def drain() -> None:
        nonlocal written, digests
        loop = asyncio.get_running_loop()
        while (data := await job.window.take()) is not None:
            if written == 0 and md5_wanted and etag_md5(job.etag) is not None:
                digests = Digests.for_file(sha256=False, md5=True)
            digests.update(data)
            if checker is not None:
                checker.feed(data)
            await loop.run_in_executor(None, _write_all, out_fd, data, bf.name, written)
            written += len(data)
            await job.window.release()
            await notify()  # the window has room: admit more ranges

    reporter.run_started(
        backup_id="stream", files=[(bf.name, bf.size_kb * 1024)], total_bytes=bf.size_kb * 1024
    )
    try:
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(drain())
            if cfg.adaptive:
                sched.allow(cfg.split)
            workers = [tg.create_task(worker()) for _ in range(budget)]
            gov = (
                tg.create_task(
                    govern(
                        sched,
                        stats,
                        budget=budget,
                        sleep=sleep,
                        notify=notify,
                        clock=clock,
                        cpu=time.thread_time,
                    )
                )
                if cfg.adaptive
                else None
            )
            await asyncio.gather(*workers)
            if gov is not None:
                gov.cancel()
            await job.window.close(drop=job.error is not None)
            await writer
    except BaseExceptionGroup as group:
        await job.window.close(drop=True)
        ours = _first_of_ours(group)
        if ours is None:
            raise
        raise ours from None
    if job.error is not None:
        reporter.file_finished(bf.name, ok=False, detail=str(job.error))
        raise job.error
    size = plan.size or 0
    if written != size - cfg.offset:
        raise TransferError(
            f"{bf.name}: {written} bytes were streamed but {size - cfg.offset} were due; "
            "discard what was received",
            file=bf.name,
        )
    integrity = _check(job, digests, whole=cfg.offset == 0)
    verdict = checker.finish() if checker is not None else None
    if verdict is not None and verdict.damaged:
        # Written already: nothing can be put right in the consumer's copy.
        raise VerificationError(
            f"{bf.name}: content damaged ({verdict.detail()}); the consumer must discard "
            "what it received (download the file instead: a download fetches damaged "
            "bytes again and tells a transit error from a damaged source)",
            file=bf.name,
        )
    reporter.file_finished(bf.name, ok=True)
    return StreamResult(
        bf.name,
        cfg.offset,
        size,
        written,
        clock() - started,
        digests.crc64.value,
        integrity,
        stats.retries,
        job.window.peak,
        verdict,
    )


def _first_of_ours(group: BaseExceptionGroup[BaseException]) -> RdsBackupError | None:
    """The error to report from a task group that failed: ours (a consumer gone, a disk
    error...), unless something else (a cancel, a bug) is in it too."""
    leaves: list[BaseException] = []
    todo: list[BaseException] = [group]
    while todo:
        exc = todo.pop()
        if isinstance(exc, BaseExceptionGroup):
            todo.extend(exc.exceptions)
        else:
            leaves.append(exc)
    if all(isinstance(e, RdsBackupError) for e in leaves):
        first = leaves[0]
        assert isinstance(first, RdsBackupError)
        return first
    return None


def _settle(sched: Scheduler, job: StreamJob) -> None:
    """After a slot ends: carry out a failure, or mark the file complete."""
    plan = job.plan
    if plan.slots:
        return
    if plan.state.draining:
        sched.drained(plan)
    elif plan.state.running and plan.size is not None and job.done.covered() >= plan.size:
        sched.complete(plan)
        sched.done(plan)


def _check(job: StreamJob, digests: Digests, *, whole: bool) -> str:
    """Compare the stream with a checksum the store computed, where there is one."""
    discard = "the stream was corrupt in transit: the consumer must discard what it received"
    if whole and job.crc64 is not None:
        if digests.crc64.value != job.crc64:
            raise VerificationError(f"{job.name}: CRC-64 mismatch; {discard}", file=job.name)
        return SERVER_CHECKSUM
    want_md5 = etag_md5(job.etag)
    if digests.md5 is not None and want_md5 is not None:
        if digests.md5_hex() != want_md5:
            raise VerificationError(
                f"{job.name}: MD5 does not match the ETag; {discard}", file=job.name
            )
        return SERVER_CHECKSUM
    return SIZE_ONLY


# Errors of standard output that say the file behind it cannot take the bytes.
STDOUT_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


def _write_all(fd: int, data: memoryview, name: str, at: int) -> None:
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view)
            view = view[n:]
            at += n  # what the consumer was handed, to the byte (a pipe takes part of it)
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise ConsumerGoneError(
                f"the consumer closed the pipe after {at} bytes of {name}"
            ) from exc
        if exc.errno not in STDOUT_DISK_ERRORS:
            raise
        # Standard output is a file (``>> part``) that cannot take the bytes: a full or
        # read-only disk is fixed there, not by running again as it is.
        raise StorageError(
            f"cannot write {name} to standard output after {at} bytes: {exc.strerror or exc}",
            file=name,
            errno=exc.errno,
        ) from exc
