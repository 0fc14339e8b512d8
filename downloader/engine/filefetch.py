"""The download's fetcher: a range's bytes go into the file's part file, and a file's
first answer creates (and preallocates) it and starts its checksums."""

from __future__ import annotations

from downloader.disk import storage
from downloader.engine.context import RunContext
from downloader.engine.fetcher import RangeFetcher
from downloader.engine.filejob import FileJob
from downloader.engine.scheduler import Slot
from downloader.engine.sinks import PartFileSink
from downloader.errors import VerificationError
from downloader.ranges import kb_size_matches, split
from downloader.wire.answer import Answer


class FileFetcher(RangeFetcher[FileJob]):
    ctx: RunContext

    def _sink(self, job: FileJob, slot: Slot) -> PartFileSink:
        ctx = self.ctx

        def landed(pos: int, n: int) -> None:
            new = ctx.writer.wrote(job.log, pos, n, job.chunk)
            ctx.reporter.advance(job.name, new)
            if job.hasher is not None:
                job.hasher.landed()

        return PartFileSink(
            slot,
            job.part,
            lambda: job.hasher,
            landed,
            executor=ctx.executor,
            name=job.name,
            needed=lambda: (job.plan.size or 0) - job.done.covered(),
        )

    def _learn(self, job: FileJob, total: int, ans: Answer) -> None:
        """The first answer for a file: its size and identity."""
        ctx = self.ctx
        if not kb_size_matches(total, job.bf.size_kb):
            job.fail(
                ctx.sched,
                VerificationError(
                    f"{job.name}: the object has {total} bytes but the API reports "
                    f"{job.bf.size_kb} KB",
                    file=job.name,
                ),
            )
            return
        job.record.size = total
        job.record.etag = ans.etag
        job.record.last_modified = ans.last_modified
        storage.create_part(job.part, new=True)
        first = min(job.chunk, total)
        ctx.sched.plan(job.plan, total, list(split([(first, total)], job.chunk)))
        if ctx.cfg.preallocate and total:
            try:
                storage.preallocate(job.part, total)
            except OSError as exc:
                job.fail(ctx.sched, storage.disk_error(exc, job.name, total))
                return
        if job.started is None:
            job.started = ctx.clock()
            ctx.reporter.file_started(job.name, total)
        else:
            ctx.reporter.file_size_known(job.name, total)
        ctx.start_hasher(job)
