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
from downloader.engine.lifecycle import FileState
from downloader.errors import RdsBackupError, TransferError, VerificationError
from downloader.results import SERVER_CHECKSUM, SIZE_ONLY, FileOutcome

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
        integrity = _check(job, digests)
        sha, md5, crc = digests.sha256_hex(), digests.md5_hex(), digests.crc64.value
        writer = self.ctx.writer

        def checksummed(rec: FileRecord) -> None:
            rec.done = [(0, size)] if size else []
            rec.sha256 = sha
            rec.md5 = md5
            rec.crc64 = crc
            rec.integrity = integrity

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
