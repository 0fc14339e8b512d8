"""The end of a file's turn: once its last range in flight ends, carry out what its state
says: start it over, give it up, or verify it and move it into place.

Finishing order (what makes a stop at any point safe): every byte hashed and checked
against what the store reported; the part file fsynced; the record saved with the
checksums; the rename into place; the record marked complete (written with the journal's
next batch). A run stopped after the rename finds a record to check the file in place
against (:mod:`downloader.engine.resume`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

from downloader.disk import storage
from downloader.disk.hashing import Digests
from downloader.disk.journal.records import FileRecord, FileStamp
from downloader.engine.context import RunContext
from downloader.engine.filejob import FileJob
from downloader.engine.heal import Healer
from downloader.engine.lifecycle import FileState
from downloader.errors import (
    ContentDamagedError,
    RdsBackupError,
    TransferError,
    VerificationError,
)
from downloader.results import SERVER_CHECKSUM, SIZE_ONLY, ContentVerdict, FileOutcome

log = logging.getLogger("rds_backup.engine")


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Finisher:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    async def settle(self, job: FileJob) -> None:
        """After a slot ends: carry out a pending restart or failure, or finish the file."""
        plan = job.plan
        if plan.slots:
            return
        if plan.state is FileState.RESTARTING:
            self._restart(job)
        elif plan.state is FileState.FAILING:
            await self._failed(job)
        elif (
            plan.state.running
            and plan.size is not None
            and job.done.covered() >= plan.size
            and self.ctx.sched.complete(plan)
        ):
            job.log.finishing = True
            try:
                try:
                    await self._finalize(job)
                except OSError as exc:
                    raise storage.disk_error(exc, job.name) from exc
            except RdsBackupError as exc:
                job.error = exc
                job.log.finishing = False
                await self._failed(job)

    def _restart(self, job: FileJob) -> None:
        ctx = self.ctx
        ctx.reporter.event(
            "warning", f"{job.name}: {job.reason}; restarting the file", file=job.name
        )
        ctx.reporter.advance(job.name, -job.done.covered())
        if job.hasher is not None:
            job.hasher.stop()
            job.hasher = None
        job.log.reset(job.fresh_record(ctx.cfg.backup_id))
        ctx.journal.remove(job.name)
        ctx.sched.drained(job.plan)

    async def _failed(self, job: FileJob) -> None:
        ctx = self.ctx
        if job.plan.state is FileState.FINISHING:
            ctx.sched.fail(job.plan)  # it did not verify, or could not be moved into place
        else:
            ctx.sched.drained(job.plan)
        if job.hasher is not None:
            job.hasher.stop()
        err = job.error or TransferError(f"{job.name}: failed", file=job.name)
        if isinstance(err, VerificationError):
            # Bytes that do not verify are never kept for a later resume.
            await ctx.writer.discard(job.log)
        else:
            await ctx.writer.flush(job.log)
        ctx.reporter.file_finished(job.name, ok=False, detail=str(err))
        self._outcome(job, ok=False, detail=str(err), error=err)

    def _outcome(
        self,
        job: FileJob,
        *,
        ok: bool,
        detail: str | None = None,
        error: RdsBackupError | None = None,
    ) -> None:
        secs = self.ctx.clock() - job.started if job.started is not None else 0.0
        rec = job.record
        self.ctx.outcomes[job.name] = FileOutcome(
            job.name,
            job.bf.database_name,
            ok=ok,
            size=job.plan.size,
            sha256=rec.sha256,
            md5=rec.md5,
            crc64=rec.crc64 if rec.complete else None,
            etag=rec.etag,
            last_modified=rec.last_modified,
            integrity=(rec.integrity or SIZE_ONLY) if ok else None,
            content=rec.content if ok else job.content,
            seconds=secs,
            fetched=job.fetched,
            detail=detail,
            error=error,
        )

    async def _finalize(self, job: FileJob) -> None:
        size = job.plan.size
        assert size is not None and job.hasher is not None
        if size == 0:
            storage.create_part(job.part, new=False)
            storage.truncate(job.part, 0)
        digests = await job.hasher.result()
        verdict = job.hasher.verdict()
        differed, rounds = False, 0
        if verdict is not None and verdict.damaged:
            healed = await Healer(self.ctx, job).heal(verdict, digests)
            verdict, digests = healed.verdict, healed.digests
            differed, rounds = healed.differed, healed.rounds
        job.content = verdict
        integrity = _check(job, digests)
        if verdict is not None and verdict.damaged:
            await self._damaged(job, verdict, differed=differed, rounds=rounds)
        sha, md5, crc = digests.sha256_hex(), digests.md5_hex(), digests.crc64.value
        writer = self.ctx.writer

        def checksummed(rec: FileRecord) -> None:
            rec.done = [(0, size)] if size else []
            rec.sha256 = sha
            rec.md5 = md5
            rec.crc64 = crc
            rec.integrity = integrity
            rec.content = verdict

        try:
            # Every byte on disk, then recorded with its checksums, then renamed.
            await asyncio.to_thread(storage.fsync_path, job.part)
            await writer.save(job.log, checksummed)
            await asyncio.to_thread(
                storage.move_into_place, job.part, job.final, self.ctx.journal.layout.root
            )
            # Its stat after the rename (which moves ctime): a rerun that sees the same one
            # skips the file unread, and hashes it again if anything differs.
            placed = FileStamp.of(os.stat(job.final, follow_symlinks=False))
        except OSError as exc:
            raise storage.disk_error(exc, job.name) from exc

        def completed(rec: FileRecord) -> None:
            rec.complete = True
            rec.finished_at = utc_stamp()
            rec.in_place = placed

        # Written with the next batch: a stop before it finds the record above, with every
        # byte and the checksums, and checks the file in place against it.
        writer.complete(job.log, completed)
        self.ctx.sched.done(job.plan)
        job.hasher.stop()
        self.ctx.reporter.file_finished(job.name, ok=True)
        self._outcome(job, ok=True)
        log.debug("%s: complete, %d bytes, crc64 %d", job.name, size, crc)

    async def _damaged(
        self, job: FileJob, verdict: ContentVerdict, *, differed: bool, rounds: int
    ) -> None:
        """Its content stays damaged: fail the file (exit 4). When the store served the
        same damaged bytes again, the source is damaged: its bytes are put apart (never
        under the file's name); a rerun fetches it anew, in case the store's copy is fixed."""
        first = verdict.damage[0]
        if differed or not rounds:
            # Other bytes came and none passed (the transfer, not the store), or the damage
            # spread too wide to fetch again: nothing says the source is damaged.
            why = "still after fetching those bytes again" if rounds else "too wide to fetch again"
            raise VerificationError(
                f"{job.name}: content damaged ({verdict.detail()}), {why}; run again to "
                "fetch the file anew",
                file=job.name,
            )
        kept = job.final.with_name(job.final.name + ".damaged")
        try:
            await asyncio.to_thread(
                storage.move_into_place, job.part, kept, self.ctx.journal.layout.root
            )
        except OSError as exc:
            raise storage.disk_error(exc, job.name) from exc
        inside = f", member {first.member!r}" if first.member else ""
        raise ContentDamagedError(
            f"{job.name}: the backup's source is damaged ({verdict.format}{inside}, "
            f"offset {first.start}: {first.what}); the object store served the same bytes "
            f"again, so the backup itself is damaged and cannot be restored as it is: "
            f"another backup is needed. Its bytes are kept apart as {kept.name}",
            file=job.name,
            member=first.member,
            offset=first.start,
            kept_as=kept.name,
        )


def _check(job: FileJob, digests: Digests) -> str:
    """The bytes against what the store reported (or what was recorded when they were first
    written): the CRC-64, and the MD5 a plain ETag names. Returns how well they verified:
    SERVER_CHECKSUM if a checksum the store computed was among them, else SIZE_ONLY."""
    # The record's crc64 is the store's while its integrity says so (set when a whole-object
    # answer reported it); once checksummed, the level it recorded then.
    server = job.record.integrity == SERVER_CHECKSUM
    expected_crc = job.record.crc64
    crc = digests.crc64.value
    if expected_crc is not None and crc != expected_crc:
        raise VerificationError(
            f"{job.name}: CRC-64 of the bytes received is {crc} but "
            f"{expected_crc} was expected (as the object store reported it, or as it "
            "was recorded when these bytes were first written)",
            file=job.name,
        )
    md5 = digests.md5_hex()
    if md5 is not None and job.etag and md5 != job.etag.strip('"').lower():
        raise VerificationError(
            f"{job.name}: MD5 of the bytes received is {md5} but the object's ETag is "
            f"{job.etag} (for a multipart upload the ETag is not an MD5: "
            "--no-md5-check skips this check)",
            file=job.name,
        )
    server = server or (md5 is not None and bool(job.etag))
    return SERVER_CHECKSUM if server else SIZE_ONLY
