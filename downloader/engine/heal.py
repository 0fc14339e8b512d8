"""Healing what the transfer broke: a file whose own structure failed its check
(:mod:`downloader.content`) has the damaged byte ranges fetched again, pinned to the same
object (If-Match), at most :data:`FETCHES` times.

Each range fetched again is compared with the part file as it streams in
(:class:`CompareSink`): bytes that differ replace those on disk. If any did, the file is
read back once (its checksums and its content check again, from disk); a check that now
passes was a transit error, healed. If none did, twice, the object store serves the same
damaged bytes: the source is damaged. Memory is one answer's write buffer; the bytes
fetched again are bounded by :data:`LIMIT` (damage spread wider is not re-fetched).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import TracebackType

from downloader.content import checker_for
from downloader.disk import storage
from downloader.disk.hashing import Digests, hash_file
from downloader.engine.context import RunContext
from downloader.engine.filejob import FileJob
from downloader.errors import NetworkError, TransferError
from downloader.ranges import RangeSet
from downloader.results import ContentVerdict
from downloader.wire.answer import Answer, Kind
from downloader.wire.curlget import fetch_range
from downloader.wire.transfer import Policy, Want

log = logging.getLogger("rds_backup.engine")

FETCHES = 2
LIMIT = 256 * 1024 * 1024  # bytes fetched again per round, at most


@dataclass(frozen=True, slots=True)
class Healed:
    """What healing came to: the verdict and checksums of the bytes now on disk, and
    whether any fetched byte differed from them (False: the store served the same)."""

    verdict: ContentVerdict
    digests: Digests
    differed: bool
    rounds: int


class CompareSink:
    """One range fetched again: each piece compared with the part file, and written over
    it where it differs (a sink on the wire's seam, :class:`downloader.wire.sink.Sink`)."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        self.fd = fd
        self._pos = start
        self.end = end
        self.replaced = 0  # bytes that differed

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def live(self) -> bool:
        return True

    def reach(self) -> int | None:
        return self.end

    async def write(self, pos: int, data: memoryview) -> None:
        self.replaced += await asyncio.to_thread(self._compare, pos, bytes(data))
        self._pos = pos + len(data)

    def _compare(self, pos: int, data: bytes) -> int:
        if os.pread(self.fd, len(data), pos) == data:
            return 0
        os.pwrite(self.fd, data, pos)
        return len(data)

    async def __aenter__(self) -> CompareSink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def suspects(verdict: ContentVerdict, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges to fetch again (merged), or None when they are too many bytes."""
    ranges = RangeSet()
    for d in verdict.damage:
        start = max(0, min(d.start, size - 1))
        # A range that names no bytes (an end chunk missing at the end of the file): the
        # last bytes before it, where a cut or a flipped header would be.
        end = min(size, max(d.end, start + 1)) if d.end > d.start else min(size, start + 4096)
        if d.end <= d.start:
            start = max(0, end - 4096)
        ranges.add(start, end)
    spans = ranges.intervals()
    if sum(e - s for s, e in spans) > LIMIT:
        return None
    return spans


class Healer:
    def __init__(self, ctx: RunContext, job: FileJob) -> None:
        self.ctx = ctx
        self.job = job

    async def heal(self, verdict: ContentVerdict, digests: Digests) -> Healed:
        """Fetch the damaged ranges again (at most :data:`FETCHES` rounds) until the
        content check passes; returns what is on disk then."""
        job = self.job
        size = job.plan.size
        assert size is not None
        differed = False
        healed = 0
        rounds = 0
        for _ in range(FETCHES):
            spans = suspects(verdict, size)
            if not spans:
                break
            rounds += 1
            replaced = await self._refetch(spans)
            self.ctx.reporter.event(
                "warning",
                f"{job.name}: content damaged ({verdict.detail()}); fetched "
                f"{sum(e - s for s, e in spans)} bytes again: "
                + (f"{replaced} differed, replaced" if replaced else "the same bytes"),
                file=job.name,
            )
            if not replaced:
                continue
            differed = True
            healed += len(spans)
            digests, verdict = await asyncio.to_thread(self._reread, digests)
            if not verdict.damaged:
                break
        return Healed(replace(verdict, healed=healed), digests, differed, rounds)

    def _reread(self, before: Digests) -> tuple[Digests, ContentVerdict]:
        """The part file read back once after a repair: its checksums and content."""
        job = self.job
        checker = checker_for(job.name, job.plan.size)
        digests = hash_file(
            job.part,
            sha256=before.sha256 is not None,
            md5=before.md5 is not None,
            content=checker,
            block=1024 * 1024,
        )
        return digests, checker.finish()

    async def _refetch(self, spans: Sequence[tuple[int, int]]) -> int:
        fd = await asyncio.to_thread(storage.open_private, self.job.part, os.O_RDWR)
        try:
            replaced = 0
            for start, end in spans:
                replaced += await self._one(fd, start, end)
            await asyncio.to_thread(os.fsync, fd)
            return replaced
        finally:
            os.close(fd)

    async def _one(self, fd: int, start: int, end: int) -> int:
        """One range, retried on network failures like any range; the object must be the
        one the file came from (If-Match)."""
        ctx, job = self.ctx, self.job
        sink = CompareSink(fd, start, end)
        attempts = 0
        while sink.pos < end:
            link = await ctx.resolver.fresh(job.name)
            want = Want(sink.pos, end, job.etag, job.plan.size)

            async def on_answer(ans: Answer) -> bool:
                return ans.has_body and ans.kind is Kind.PARTIAL

            try:
                ans = await fetch_range(ctx.session, link.url, want, sink, Policy(), on_answer)
            except NetworkError as exc:
                attempts += 1
                if attempts > ctx.retries:
                    raise TransferError(
                        f"{job.name}: could not fetch damaged bytes again ({exc.what})",
                        file=job.name,
                    ) from exc
                await ctx.sleep(ctx.backoff.delay(attempts, None))
                continue
            if ans.kind is Kind.PARTIAL:
                continue
            if ans.kind is Kind.CHANGED:
                raise TransferError(
                    f"{job.name}: the object changed while its damaged bytes were fetched "
                    "again; run again to fetch it anew",
                    file=job.name,
                )
            attempts += 1
            if attempts > ctx.retries or ans.kind in (Kind.GONE, Kind.BAD, Kind.WHOLE):
                raise TransferError(
                    f"{job.name}: could not fetch damaged bytes again ({ans.detail or ans.kind})",
                    file=job.name,
                )
            if ans.kind is Kind.REFUSED:
                await ctx.resolver.refused(job.name, link)
            else:
                await ctx.sleep(ctx.backoff.delay(attempts, ans.retry_after))
        return sink.replaced
