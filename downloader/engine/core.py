"""One download run: triage -> a TaskGroup of connection workers -> settle each file.

The engine receives the files to fetch (already resolved and selected), a resolver that
keeps their links fresh, the run's connections (a libcurl multi) and a reporter, and
orchestrates the parts:
:mod:`~downloader.engine.resume` decides what each file needs; the
:class:`~downloader.scheduler.Scheduler` hands each idle connection its next range;
:class:`~downloader.fetcher.RangeFetcher` carries a range to its end;
:class:`~downloader.finish.Finisher` settles a file once its last range ends; the
:class:`~downloader.journal.writer.JournalWriter` keeps the journal truthful; the governor
opens connections only as far as they pay.

The path of one byte: resolve (link) -> schedule (slot) -> transfer (ranged GET) -> sink
(part file) -> hash (CRC-64 piece) -> journal (record) -> finish (verify, rename) ->
manifest (:mod:`~downloader.download`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Sequence

from downloader.disk import storage
from downloader.disk.journal.store import Journal
from downloader.disk.journal.writer import JournalWriter
from downloader.engine.context import EngineConfig, RunContext
from downloader.engine.filefetch import FileFetcher
from downloader.engine.filejob import FileJob
from downloader.engine.finish import Finisher
from downloader.engine.governor import govern
from downloader.engine.resolver import LinkResolver
from downloader.engine.resume import check_space, triage
from downloader.engine.scheduler import Limits, Scheduler
from downloader.errors import RdsBackupError
from downloader.models import BackupFile
from downloader.progress import Reporter
from downloader.ranges import default_chunk_size, split
from downloader.results import FileOutcome, RunStats
from downloader.wire.curlget import fetch_range
from downloader.wire.curlmulti import CurlLoop
from downloader.wire.ratelimit import RateLimiter
from downloader.wire.transfer import Policy, Transfer

# Part-file writes go through threads of their own, apart from fsyncs and journal saves.
# Few: concurrent writes to one file queue on its inode lock, and in a VM a writer that
# loses its CPU while holding it leaves the others spinning in the kernel.
WRITER_THREADS = 2

__all__ = ["Engine", "EngineConfig", "FileOutcome", "RunStats"]


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        files: Sequence[BackupFile],
        *,
        resolver: LinkResolver,
        session: CurlLoop,
        reporter: Reporter,
        journal: Journal,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transfer: Transfer = fetch_range,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        """``clock``, ``sleep`` (backoff and the governor's period), ``transfer`` (one
        ranged GET into a sink) and ``cpu`` (the event loop thread's CPU time, which the
        governor weighs) are the seams for tests of the state machine: a fake clock, a
        scripted object store and a scripted CPU stand in for time, the network and load."""
        self.cfg = config
        self.resolver = resolver
        self.session = session
        self.reporter = reporter
        self.journal = journal
        self.clock = clock
        self._sleep = sleep
        self._transfer = transfer
        self._cpu = cpu
        self.stats = RunStats()
        self._files = list(files)
        self._cond = asyncio.Condition()
        self._jobs: dict[str, FileJob] = {}
        self._sched: Scheduler | None = None

    async def run(self) -> list[FileOutcome]:
        cfg = self.cfg
        found = await triage(
            self._files,
            self.journal,
            self.reporter,
            backup_id=cfg.backup_id,
            sha256=cfg.sha256,
            check_md5=cfg.check_md5,
            recheck=cfg.recheck,
        )
        outcomes = {o.name: o for o in found.skipped}
        jobs = found.jobs
        check_space(jobs, self.journal)
        for job in jobs:
            self._jobs[job.name] = job
            # A file may end up served by every connection once the others are done.
            job.chunk = cfg.chunk_size or default_chunk_size(
                job.plan.size_hint, max(cfg.per_file, cfg.connections)
            )
            if job.plan.size is not None:
                storage.create_part(job.part, new=False)
        sched = self._sched = Scheduler(
            [j.plan for j in jobs], Limits(cfg.jobs, cfg.per_file, cfg.connections)
        )
        if jobs:
            await self._run(jobs, sched, outcomes)
        return [outcomes[bf.name] for bf in self._files if bf.name in outcomes]

    async def _run(
        self, jobs: list[FileJob], sched: Scheduler, outcomes: dict[str, FileOutcome]
    ) -> None:
        cfg = self.cfg
        writer = JournalWriter(self.journal)
        executor = concurrent.futures.ThreadPoolExecutor(
            WRITER_THREADS, thread_name_prefix="rds-backup-write"
        )
        # The session's own bucket when it has one (shared by every run on it), else ours.
        limiter = getattr(self.session, "limiter", None) or (
            RateLimiter(cfg.limit_rate) if cfg.limit_rate else None
        )
        try:
            async with asyncio.TaskGroup() as tg:
                ctx = RunContext(
                    sched=sched,
                    session=self.session,
                    resolver=self.resolver,
                    reporter=self.reporter,
                    stats=self.stats,
                    notify=self._notify,
                    retries=cfg.retries,
                    backoff=cfg.backoff,
                    sleep=self._sleep,
                    cfg=cfg,
                    journal=self.journal,
                    writer=writer,
                    tg=tg,
                    executor=executor,
                    clock=self.clock,
                    outcomes=outcomes,
                )
                fetcher = FileFetcher(ctx, Policy(limiter=limiter), self._transfer)
                finisher = Finisher(ctx)
                for job in jobs:
                    if job.plan.size is not None:
                        self._resume(ctx, job)
                        if not job.plan.pending:
                            # All on disk already (stopped before the move into place):
                            # no range will end to trigger the finish, so do it here.
                            tg.create_task(self._settle(finisher, job))
                if cfg.adaptive:
                    # Before any worker runs: the governor adds connections as they pay.
                    sched.allow(max(cfg.per_file, cfg.jobs))
                workers = [
                    tg.create_task(self._worker(sched, fetcher, finisher, tg))
                    for _ in range(cfg.connections)
                ]
                helpers = [
                    tg.create_task(writer.run(lambda: [j.log for j in self._jobs.values()])),
                    tg.create_task(self._ticker()),
                ]
                if cfg.adaptive:
                    helpers.append(
                        tg.create_task(
                            govern(
                                sched,
                                self.stats,
                                budget=cfg.connections,
                                sleep=self._sleep,
                                notify=self._notify,
                                clock=self.clock,
                                cpu=self._cpu,
                            )
                        )
                    )
                await asyncio.gather(*workers)
                for h in helpers:
                    h.cancel()
        finally:
            try:
                await asyncio.shield(writer.flush_all(j.log for j in jobs))
            finally:
                executor.shutdown(wait=False)  # idle: every write was awaited

    def _resume(self, ctx: RunContext, job: FileJob) -> None:
        size = job.plan.size
        assert size is not None
        self.reporter.file_started(job.name, size, already=job.done.covered())
        job.started = self.clock()
        missing = list(split(job.done.missing(size), job.chunk))
        ctx.sched.plan(job.plan, size, missing)
        ctx.start_hasher(job)
        # The reporter says it resumes (file_started with ``already``): one line, not two.

    async def _settle(self, finisher: Finisher, job: FileJob) -> None:
        await finisher.settle(job)
        await self._notify()

    async def _notify(self) -> None:
        """Wake as many idle workers as may find a range now (all of them once the run is
        over): waking every worker on each change costs more than the work itself when
        most of the budget sits idle."""
        async with self._cond:
            sched = self._sched
            if sched is None or sched.finished():
                self._cond.notify_all()
            else:
                self._cond.notify(min(sched.soft_cap, self.cfg.connections) - sched.busy)

    async def _worker(
        self, sched: Scheduler, fetcher: FileFetcher, finisher: Finisher, tg: asyncio.TaskGroup
    ) -> None:
        while True:
            async with self._cond:
                while True:
                    slot = sched.next()
                    if slot is not None or sched.finished():
                        break
                    await self._cond.wait()
            if slot is None:
                return
            job = self._jobs[slot.file.name]
            try:
                await fetcher.run(job, slot)
            except RdsBackupError as exc:
                job.fail(sched, exc)
            except OSError as exc:
                job.fail(sched, storage.disk_error(exc, job.name))
            finally:
                sched.release(slot)
            if not job.plan.slots:
                # Verifying and moving a finished file into place waits on fsync: done
                # aside, so this connection goes straight on to its next range.
                tg.create_task(self._settle(finisher, job))
            await self._notify()
            await asyncio.sleep(0)  # never hog the loop, whatever the slot did

    async def _ticker(self) -> None:
        tick = getattr(self.reporter, "tick", None)
        if tick is None:
            return
        while True:
            await asyncio.sleep(1.0)
            tick()
