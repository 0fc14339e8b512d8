"""Carries one range to its end, across attempts: a fresh link, one GET
(:func:`downloader.wire.transfer.fetch_range`), and what each answer means for the file.

A body answer is checked against what the file knows (the first one teaches its size and
identity); a 403 renews the link (the link that renewal handed over, refused before it ever
delivered a byte, fails the file); a 412
or a changed ETag restarts the file; 404 fails it; 429/5xx and network failures are
retried with backoff (:mod:`downloader.wire.retry`), counting only failures in a row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from downloader.engine.resolver import Link, LinkResolver
from downloader.engine.scheduler import PlanFile, Scheduler, Slot
from downloader.errors import (
    FileGoneError,
    LinkRefusedError,
    NetworkError,
    NetworkTimeout,
    RdsBackupError,
    TlsFailed,
    TransferError,
)
from downloader.progress import Reporter
from downloader.ranges import RangeSet
from downloader.results import RunStats
from downloader.wire.answer import Answer, Kind
from downloader.wire.curlget import fetch_range
from downloader.wire.curlmulti import CurlLoop
from downloader.wire.linkcheck import link_problem
from downloader.wire.retry import Backoff
from downloader.wire.sink import Sink
from downloader.wire.transfer import Policy, Transfer, Want

log = logging.getLogger("rds_backup.engine")


class RangeJob(Protocol):
    """What the fetcher needs of the file a range belongs to (a download's file job, or a
    stream's)."""

    @property
    def name(self) -> str: ...
    @property
    def plan(self) -> PlanFile: ...
    @property
    def done(self) -> RangeSet: ...
    @property
    def etag(self) -> str | None: ...

    chunk: int
    fetched: int

    def fail(self, sched: Scheduler, exc: RdsBackupError) -> None: ...
    def restart(self, sched: Scheduler, stats: RunStats, reason: str) -> None: ...
    def reported_crc64(self, crc: int) -> None: ...


J = TypeVar("J", bound=RangeJob)


@dataclass(eq=False)
class Wire:
    """What every range of a run shares on the way in."""

    sched: Scheduler
    session: CurlLoop  # the run's connections
    resolver: LinkResolver
    reporter: Reporter
    stats: RunStats
    notify: Callable[[], Awaitable[None]]  # wake idle connections: there may be work
    retries: int
    backoff: Backoff
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


class RangeFetcher(Generic[J]):
    """Subclasses say where the bytes go (:meth:`_sink`) and what a file's first answer
    means for it (:meth:`_learn`)."""

    def __init__(self, ctx: Wire, policy: Policy, transfer: Transfer = fetch_range) -> None:
        self.ctx = ctx
        self.policy = policy
        self.transfer = transfer
        # An answer's headers are due within the stall timeout of the request leaving: a
        # store that sends one header line every few seconds keeps every read alive, so
        # the per-read timeout alone would wait for ever.
        session = ctx.session
        self.headers_within = (
            session.settings.stall_timeout if isinstance(session, CurlLoop) else None
        )

    async def run(self, job: J, slot: Slot) -> None:
        """Fetch the slot's bytes (until it is done, stale, or its file fails)."""
        ctx = self.ctx
        attempts = 0
        # The generation a renewal of ours handed over and no answer has proven valid yet:
        # only a 403 on that link (or a newer one) means "refused even when fresh". A link
        # that delivered bytes was valid; if it dies later it is renewed again.
        unproven: int | None = None
        due = _HeadersDue(self.headers_within)
        policy = replace(self.policy, received=lambda n: self._received(job, n), sent=due.sent)
        while not slot.stale:
            if slot.end is not None and (
                slot.pos >= slot.end or job.done.contains(slot.pos, slot.end)
            ):
                slot.pos = slot.end  # nothing of it to put back in the queue
                return
            link = await ctx.resolver.fresh(job.name)
            unusable = link_problem(link.url)
            if unusable is not None:
                raise TransferError(
                    f"{job.name}: the download link cannot be used: {unusable}", file=job.name
                )
            pos_before = slot.pos
            end = slot.start + job.chunk if slot.probe else slot.end
            want = Want(slot.pos, end, job.etag, job.plan.size)

            async def on_answer(
                ans: Answer, job: J = job, slot: Slot = slot, link: Link = link
            ) -> bool:
                nonlocal unproven
                due.answered()
                ctx.resolver.observe_server_date(ans.date)
                if not ans.has_body:
                    return False
                if unproven is not None and link.generation >= unproven:
                    unproven = None  # the store accepted this link: it was valid
                probe = slot.probe
                if not self._accept(job, slot, ans):
                    return False
                if probe:
                    await ctx.notify()  # its other ranges are queued now
                return True

            try:
                async with self._sink(job, slot) as sink, due.attempt():
                    ans = await self.transfer(ctx.session, link.url, want, sink, policy, on_answer)
            except TlsFailed as exc:
                raise _tls_error(job.name, link.url, exc) from exc
            except NetworkError as exc:
                if slot.pos > pos_before:
                    attempts = 0  # it moved forward: only stalls in a row count
                attempts += 1
                await self._again(
                    job,
                    attempts,
                    f"{exc.what} at byte {slot.pos}",
                    give_up=f"giving up after {attempts} attempts ({exc.what})",
                    cause=exc,
                )
                continue
            if ans.has_body:
                return
            if slot.probe and (
                ans.kind is Kind.EMPTY
                or (ans.kind is Kind.PAST_END and slot.start > 0 and ans.total is not None)
            ):
                # Nothing at or after the probe's start (a stream asked past the end).
                self._learn(job, ans.total or 0, ans)
                return
            if ans.kind is Kind.CHANGED:
                job.restart(ctx.sched, ctx.stats, ans.detail or "the object changed")
                return
            if ans.kind is Kind.REFUSED:
                code = ans.code or "AccessDenied"
                ctx.reporter.event(
                    "link_refused",
                    f"{job.name}: object store refused the link ({ans.status} {code})",
                    file=job.name,
                    status=ans.status,
                    request_id=ans.request_id,
                )
                if unproven is not None and link.generation >= unproven:
                    raise LinkRefusedError(
                        f"{job.name}: the object store refuses even a freshly resolved link "
                        f"({code})",
                        file=job.name,
                        status=ans.status,
                        request_id=ans.request_id,
                    )
                unproven = await self._renew(job, link)
                continue
            if ans.kind is Kind.GONE:
                raise FileGoneError(
                    f"{job.name}: {ans.detail}",
                    file=job.name,
                    status=ans.status,
                    request_id=ans.request_id,
                )
            attempts += 1
            await self._again(
                job,
                attempts,
                ans.detail,
                give_up=f"{ans.detail}; giving up after {attempts} attempts",
                answer=ans,
            )

    async def _again(
        self,
        job: J,
        attempts: int,
        why: str,
        *,
        give_up: str,
        answer: Answer | None = None,
        cause: BaseException | None = None,
    ) -> None:
        """Failed attempt number ``attempts`` in a row: wait before the next one, or give
        the file up once the retry budget is spent."""
        ctx = self.ctx
        ctx.stats.retries += 1
        status = answer.status if answer is not None else None
        if attempts > ctx.retries:
            request_id = answer.request_id if answer is not None else None
            raise TransferError(
                f"{job.name}: {give_up}", file=job.name, status=status, request_id=request_id
            ) from cause
        fields: dict[str, object] = {"file": job.name}
        if status is not None:
            fields["status"] = status
        ctx.reporter.event(
            "retry",
            f"{job.name}: {why}; retry {attempts}/{ctx.retries}",
            **fields,
            attempt=attempts,
        )
        retry_after = answer.retry_after if answer is not None else None
        await ctx.sleep(ctx.backoff.delay(attempts, retry_after))

    def _received(self, job: J, n: int) -> None:
        self.ctx.stats.bytes_fetched += n
        job.fetched += n

    async def _renew(self, job: J, link: Link) -> int | None:
        """Renew after ``link`` was refused; the generation of the new link when it was
        resolved after this refusal (None: another renewal had already replaced ``link``,
        possibly long ago, so a refusal of that one proves nothing yet)."""
        before = self.ctx.resolver.generation
        try:
            new = await self.ctx.resolver.refused(job.name, link)
            return new.generation if new.generation > before else None
        except (FileGoneError, LinkRefusedError):
            raise
        except RdsBackupError as exc:
            raise LinkRefusedError(
                f"{job.name}: link refused and re-resolving failed: {exc}", file=job.name
            ) from exc

    def _accept(self, job: J, slot: Slot, ans: Answer) -> bool:
        """Check a body-carrying answer against what we know; False: drop the slot."""
        sched = self.ctx.sched
        assert ans.total is not None
        if ans.crc64 is not None and ans.whole:
            # Trusted only from an answer that is the whole object: esdk-obs-python checks
            # it for whole-object downloads only (a ranged answer's may not describe it).
            job.reported_crc64(ans.crc64)
        if slot.probe:
            self._learn(job, ans.total, ans)
            if not job.plan.state.running:
                return False  # it failed (wrong size, no room)
            if ans.kind is Kind.WHOLE:
                sched.go_sequential(slot, self._first_missing(job))
            else:
                sched.probed(slot, min(slot.start + job.chunk, ans.total))
            return True
        if ans.kind is Kind.WHOLE and not job.plan.sequential:
            self.ctx.reporter.event(
                "warning",
                f"{job.name}: the server ignores Range; fetching this file as one stream",
                file=job.name,
            )
            # Bytes already on disk are rewritten with the same content: the ETag is
            # checked on every answer.
            sched.go_sequential(slot, self._first_missing(job))
        return True

    @staticmethod
    def _first_missing(job: J) -> int:
        size = job.plan.size
        assert size is not None
        missing = job.done.missing(size)
        return missing[0][0] if missing else size

    def _sink(self, job: J, slot: Slot) -> AbstractAsyncContextManager[Sink]:
        """Where this slot's bytes go."""
        raise NotImplementedError

    def _learn(self, job: J, total: int, ans: Answer) -> None:
        """The first answer for a file: its size and identity. It plans the file's ranges
        (``Scheduler.plan``), or fails it."""
        raise NotImplementedError


class _HeadersDue:
    """The deadline of one attempt's answer headers: armed when the transport says the
    request left (after any wait for a pooled connection), disarmed by the answer. Its
    expiry is a :class:`~downloader.errors.NetworkTimeout`, retried like a stall."""

    def __init__(self, within: float | None) -> None:
        self.within = within
        self._timeout: asyncio.Timeout | None = None

    def sent(self) -> None:
        if self._timeout is not None and self.within is not None:
            self._timeout.reschedule(asyncio.get_running_loop().time() + self.within)

    def answered(self) -> None:
        if self._timeout is not None:
            self._timeout.reschedule(None)

    @asynccontextmanager
    async def attempt(self) -> AsyncIterator[None]:
        timeout = asyncio.timeout(None)
        self._timeout = timeout
        try:
            async with timeout:
                yield
        except TimeoutError as exc:
            if not timeout.expired():
                raise
            raise NetworkTimeout(
                f"object store: no complete answer headers within {self.within:g} s",
                what="answer headers too slow",
            ) from exc
        finally:
            self._timeout = None


def _tls_error(name: str, url: str, exc: TlsFailed) -> TransferError:
    """Words for a TLS failure on a download link: not retried, never silently bypassed.

    A virtual-hosted link to a bucket with dots in its name (``rdsbucket.x.1.obs.<region>...``)
    cannot match the object store's wildcard certificate (Huawei's RDS guide tells users of
    wget to turn verification off for exactly this reason).
    """
    host = urlsplit(url).hostname or "?"
    bucket = host.split(".obs.", 1)[0] if ".obs." in host else ""
    hint = (
        f" (the bucket name {bucket!r} has dots, which wildcard certificates do not match)"
        if "." in bucket
        else ""
    )
    return TransferError(
        f"{name}: TLS certificate check failed for {host}{hint}: {exc.what}; "
        "--ca-bundle trusts a private CA, --insecure-links skips the check for download "
        "links only (logged)",
        file=name,
    )
