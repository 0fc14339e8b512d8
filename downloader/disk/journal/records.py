"""The resume journal's records: one small, versioned JSON record per file. Pure.

A record says which byte ranges of the part file are on disk and which object they came
from (size, ETag, Last-Modified), keyed on the backup's identity (backup id, file name, KB
size), never on the link. Records are written atomically (temporary name, fsync, rename),
and only after the part file itself has been fsynced, so a range the journal calls done is
on disk after any crash. A record that cannot be read, is of another version or disagrees
with the part file is not trusted: the file restarts.

How often: :class:`~downloader.disk.journal.writer.JournalWriter` flushes a file's record
once its oldest unrecorded byte is a second old and whenever the file has taken one chunk (at
most ``FLUSH_BYTES``) since its last flush, plus at every file's end and at shutdown; the
"complete" records of finished files go in batches. Chunks are 4-64 MiB by default, so a
2 GiB file costs a few dozen fsyncs, a small file two record writes, and a kill loses at
most about one chunk (or one second) per connection. :mod:`~downloader.disk.journal.store`
reads and writes the records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from downloader.models import sendable_etag
from downloader.ranges import Interval, RangeSet
from downloader.results import INTEGRITY_LEVELS, ContentVerdict

VERSION = 1
FLUSH_SECONDS = 1.0
FLUSH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileStamp:
    """The finished file in place, as ``stat`` saw it when its bytes were last known exact.

    A rerun whose ``stat`` agrees skips the file without reading it; any difference (a write
    in place moves ctime even when mtime is put back, a copy over it changes the inode) has
    its bytes hashed again before they are trusted.
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStamp:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def to_json(self) -> dict[str, int]:
        return {
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
            "ino": self.ino,
        }


@dataclass(slots=True)
class FileRecord:
    backup_id: str
    name: str
    size_kb: int
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    done: list[Interval] = field(default_factory=list)
    complete: bool = False
    sha256: str | None = None
    md5: str | None = None
    # The object's CRC-64: as the store reported it (whole answers), then as computed from
    # the bytes once they all are on disk (recorded before the move into place).
    crc64: int | None = None
    database_name: str | None = None
    finished_at: str | None = None
    # SERVER_CHECKSUM or SIZE_ONLY, set with the checksums at the finish. Before that,
    # SERVER_CHECKSUM says crc64 is the store's (what the bytes will be compared with).
    # None: not known (a record written before this field existed): size-only.
    integrity: str | None = None
    # Once complete and in place: its stat then. None (a record written before this field
    # existed, or never in place): unknown, so the next run hashes the file once.
    in_place: FileStamp | None = None
    # What the file's own structure said once all its bytes were read (None: not checked,
    # or a record written before this field existed).
    content: ContentVerdict | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "backup_id": self.backup_id,
            "name": self.name,
            "size_kb": self.size_kb,
            "size": self.size,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "done": [[s, e] for s, e in self.done],
            "complete": self.complete,
            "sha256": self.sha256,
            "md5": self.md5,
            "crc64": self.crc64,
            "database_name": self.database_name,
            "finished_at": self.finished_at,
            "integrity": self.integrity,
            "in_place": self.in_place.to_json() if self.in_place is not None else None,
            "content": self.content.to_json() if self.content is not None else None,
        }


class JournalError(ValueError):
    """A record that must not be trusted; the message says why."""


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    v = obj.get(key)
    if v is None or isinstance(v, str):
        return v
    raise JournalError(f"{key} is not a string")


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    v = obj.get(key)
    if v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64):
        return v
    raise JournalError(f"{key} is not a 64-bit integer")


def _opt_etag(obj: dict[str, Any]) -> str | None:
    v = _opt_str(obj, "etag")
    if v is None or sendable_etag(v):
        return v
    raise JournalError("etag holds a control character (it could not be sent as If-Match)")


def _opt_integrity(obj: dict[str, Any]) -> str | None:
    v = _opt_str(obj, "integrity")
    if v is None or v in INTEGRITY_LEVELS:
        return v
    raise JournalError("integrity is not a known level")


def _opt_stamp(obj: dict[str, Any]) -> FileStamp | None:
    v = obj.get("in_place")
    if v is None:
        return None
    fields = ("size", "mtime_ns", "ctime_ns", "ino")
    if not isinstance(v, dict) or not all(
        isinstance(v.get(k), int) and not isinstance(v.get(k), bool) and abs(v[k]) < 2**64
        for k in fields
    ):
        raise JournalError("in_place is not a stat of size, mtime_ns, ctime_ns and ino")
    return FileStamp(*(int(v[k]) for k in fields))


def _opt_content(obj: dict[str, Any]) -> ContentVerdict | None:
    v = obj.get("content")
    if v is None:
        return None
    verdict = ContentVerdict.from_json(v)
    if verdict is None:
        raise JournalError("content is not a content verdict")
    return verdict


def record_from_json(obj: object) -> FileRecord:
    if not isinstance(obj, dict):
        raise JournalError("not an object")
    if obj.get("version") != VERSION:
        raise JournalError(f"version {obj.get('version')!r}, expected {VERSION}")
    for key in ("backup_id", "name"):
        if not isinstance(obj.get(key), str):
            raise JournalError(f"{key} missing")
    size_kb = obj.get("size_kb")
    size = obj.get("size")
    if not isinstance(size_kb, int) or isinstance(size_kb, bool) or size_kb < 0:
        raise JournalError("size_kb invalid")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise JournalError("size invalid")
    raw_done = obj.get("done")
    if not isinstance(raw_done, list):
        raise JournalError("done invalid")
    done = RangeSet()
    for item in raw_done:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)
            or not 0 <= item[0] < item[1]
            or (size is not None and item[1] > size)
        ):
            raise JournalError(f"bad range {item!r}")
        done.add(item[0], item[1])
    complete = obj.get("complete")
    if not isinstance(complete, bool):
        raise JournalError("complete invalid")
    if done.covered() and size is None:
        raise JournalError("ranges without a size")
    return FileRecord(
        backup_id=obj["backup_id"],
        name=obj["name"],
        size_kb=size_kb,
        size=size,
        etag=_opt_etag(obj),
        last_modified=_opt_str(obj, "last_modified"),
        done=done.intervals(),
        complete=complete,
        sha256=_opt_str(obj, "sha256"),
        md5=_opt_str(obj, "md5"),
        crc64=_opt_int(obj, "crc64"),
        database_name=_opt_str(obj, "database_name"),
        finished_at=_opt_str(obj, "finished_at"),
        integrity=_opt_integrity(obj),
        in_place=_opt_stamp(obj),
        content=_opt_content(obj),
    )
