"""Resume triage: what each selected file needs before any byte is fetched.

A file finished earlier and still in place is skipped, unread while its stat is the one
recorded at its finish; when that changed (or with ``--recheck``) it is hashed again, and
fetched again if it no longer matches. One an earlier run moved into place but did not
record complete is checked in place (read once more); one with a usable record resumes
from the bytes it names; anything else starts from byte 0 (a record that cannot be trusted
is removed, with a warning). Then the whole selection must fit on the disk: fail in the
first second, not after hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from downloader.disk import storage
from downloader.disk.hashing import Digests, etag_md5, hash_file
from downloader.disk.journal.records import FileRecord, FileStamp
from downloader.disk.journal.store import Journal
from downloader.disk.journal.writer import FileLog
from downloader.engine.filejob import FileJob
from downloader.engine.finish import utc_stamp
from downloader.engine.scheduler import PlanFile
from downloader.errors import StorageError
from downloader.models import BackupFile
from downloader.progress import Reporter
from downloader.ranges import RangeSet
from downloader.results import SIZE_ONLY, FileOutcome
from downloader.text.fmt import format_size

log = logging.getLogger("rds_backup.engine")


@dataclass(slots=True)
class Triage:
    jobs: list[FileJob] = field(default_factory=list)  # to fetch, in the listing's order
    skipped: list[FileOutcome] = field(default_factory=list)  # complete already


async def triage(
    files: Sequence[BackupFile],
    journal: Journal,
    reporter: Reporter,
    *,
    backup_id: str,
    sha256: bool,
    check_md5: bool,
    recheck: bool = False,
) -> Triage:
    """``recheck``: hash every finished file again, not only those whose stat changed."""
    layout = journal.layout
    out = Triage()
    for bf in files:
        final = layout.final(bf.name)
        record, why = journal.load(backup_id, bf.name, bf.size_kb)
        if record is not None and record.complete:
            why = await _still_exact(bf, record, journal, recheck=recheck)
            if why is None:
                out.skipped.append(_skip(bf, record, reporter))
                continue
            record = None
        if record is not None and journal.moved_into_place(record):
            if _adopt(bf, record, journal, sha256=sha256, check_md5=check_md5):
                out.skipped.append(_skip(bf, record, reporter))
                continue
            record, why = None, None
        if why:
            reporter.event("warning", f"{bf.name}: {why}; restarting this file", file=bf.name)
            journal.remove(bf.name)
        fresh = FileRecord(backup_id, bf.name, bf.size_kb, database_name=bf.database_name)
        flog = FileLog(bf.name, layout.part(bf.name), record or fresh)
        plan = PlanFile(bf.name, bf.size_kb * 1024)
        if record is not None and record.size is not None:
            plan.size = record.size
            flog.done = RangeSet(record.done)
        out.jobs.append(FileJob(bf, plan, flog, final))
    return out


def check_space(jobs: Sequence[FileJob], journal: Journal) -> None:
    """The whole selection must fit (counting what part files already hold)."""
    if not jobs:
        return
    need = sum(max(0, j.bf.size_kb * 1024 - storage.allocated(j.part)) for j in jobs)
    free = storage.free_bytes(journal.layout.state)
    if free < need:
        raise StorageError(
            f"not enough free space in {journal.layout.root}: {format_size(need)} needed, "
            f"{format_size(free)} available"
        )


def _skip(bf: BackupFile, rec: FileRecord, reporter: Reporter) -> FileOutcome:
    reporter.file_skipped(bf.name, "already downloaded and verified", size=rec.size)
    return FileOutcome(
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
        # As well as it verified when it was fetched (re-reading it here checks the disk,
        # not the transfer).
        integrity=rec.integrity or SIZE_ONLY,
        content=rec.content,
    )


async def _still_exact(
    bf: BackupFile, rec: FileRecord, journal: Journal, *, recheck: bool
) -> str | None:
    """A finished file in place: None while it is still exact, else why it is fetched again.

    Its stat as recorded at the finish (size, mtime, ctime, inode) unchanged: trusted unread,
    so a rerun costs nothing. Changed (a write in place moves ctime even when mtime is put
    back), not recorded (an older run's record), or ``recheck``: its bytes are hashed
    against the checksums recorded when they were verified; if they still match, the new
    stat is recorded, and if not, the file is removed and fetched again.
    """
    final = journal.layout.final(bf.name)
    try:
        st = os.stat(final, follow_symlinks=False)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != rec.size:
        return "finished earlier, but the file is missing or altered"
    now = FileStamp.of(st)
    if now == rec.in_place and not recheck:
        return None
    if rec.crc64 is None:
        return "finished earlier, but it may have changed and no checksum was recorded for it"
    try:
        digests = await _hash_in_thread(
            final, sha256=rec.sha256 is not None, md5=rec.md5 is not None
        )
    except OSError as exc:
        return f"finished earlier, but it cannot be read back ({exc.strerror or exc})"
    differ = [
        what
        for what, got, want in (
            ("CRC-64", digests.crc64.value, rec.crc64),
            ("SHA-256", digests.sha256_hex(), rec.sha256),
            ("MD5", digests.md5_hex(), rec.md5),
        )
        if want is not None and got != want
    ]
    if differ:
        # Known-bad bytes never keep the final name, even if the fetch that replaces
        # them fails.
        with contextlib.suppress(OSError):
            os.unlink(final)
        verb = "matches" if len(differ) == 1 else "match"
        return (
            f"changed on disk since it was downloaded (its {' and '.join(differ)} no longer {verb})"
        )
    if rec.in_place is not None and now != rec.in_place:
        log.info("%s: changed on disk (stat), but its bytes still match", bf.name)
    if now != rec.in_place:
        rec.in_place = now
        journal.save(rec)
    return None


class _Stopped(Exception):
    """A hash abandoned because the run was cancelled."""


async def _hash_in_thread(path: Path, *, sha256: bool, md5: bool) -> Digests:
    """:func:`hash_file` off the event loop, so a signal still stops the run at once (a
    recheck may read a whole backup); a cancel ends the read at its next block."""
    stop = threading.Event()

    def step(_n: int) -> None:
        if stop.is_set():
            raise _Stopped

    try:
        return await asyncio.to_thread(
            hash_file, path, sha256=sha256, md5=md5, progress=step, block=1024 * 1024
        )
    except asyncio.CancelledError:
        stop.set()
        raise


def _adopt(
    bf: BackupFile, rec: FileRecord, journal: Journal, *, sha256: bool, check_md5: bool
) -> bool:
    """An earlier run moved the file into place but stopped before recording it complete:
    record it if it matches the CRC-64 recorded before the rename (or, for a record without
    one, the MD5 its ETag gives). With neither to check it against, it is fetched again."""
    final = journal.layout.final(bf.name)
    want_md5 = etag_md5(rec.etag) if check_md5 else None
    if rec.crc64 is None and want_md5 is None:
        return False
    digests = hash_file(final, sha256=sha256, md5=want_md5 is not None, block=1024 * 1024)
    crc_differs = rec.crc64 is not None and digests.crc64.value != rec.crc64
    md5_differs = want_md5 is not None and digests.md5_hex() != want_md5
    if crc_differs or md5_differs:
        log.warning("%s: file in place does not match its object; fetching again", bf.name)
        os.unlink(final)
        journal.remove(bf.name)
        return False
    rec.complete = True
    rec.done = [(0, rec.size)] if rec.size else []
    rec.sha256 = digests.sha256_hex()
    rec.md5 = digests.md5_hex()
    rec.crc64 = digests.crc64.value
    rec.finished_at = utc_stamp()
    rec.in_place = FileStamp.of(os.stat(final, follow_symlinks=False))
    journal.save(rec)
    return True
