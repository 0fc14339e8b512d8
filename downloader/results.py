"""What a run reports: one outcome per file and the run's counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from downloader.errors import RdsBackupError, StorageError, VerificationError

# How well a file's bytes were verified. SERVER_CHECKSUM: compared with a checksum the object
# store computed (an MD5 ETag, or the CRC-64 of an answer that was the whole object).
# SIZE_ONLY: its size and identity (ETag on every range) were checked, but nothing the store
# computed from the bytes (multipart ETags, ranged answers): corruption in transit that keeps
# the size would go unseen.
SERVER_CHECKSUM = "server-checksum"
SIZE_ONLY = "size-only"
INTEGRITY_LEVELS = (SERVER_CHECKSUM, SIZE_ONLY)


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
    integrity: str | None = None  # SERVER_CHECKSUM or SIZE_ONLY once it verified
    seconds: float = 0.0
    fetched: int = 0
    detail: str | None = None
    error: RdsBackupError | None = None


@dataclass(slots=True)
class RunStats:
    retries: int = 0
    restarts: int = 0
    bytes_fetched: int = 0


def failed_exit_code(failed: Sequence[FileOutcome]) -> int:
    """A run's exit code from its failed files: 0 when none failed, 6 when any could not be
    written, 4 when every failure is a verification failure, else 1."""
    if not failed:
        return 0
    # Any file the folder could not take: exit 1 would promise that running again
    # fetches the rest, which cannot happen until the disk (or its permissions) is fixed.
    if any(isinstance(o.error, StorageError) for o in failed):
        return StorageError.exit_code
    if all(isinstance(o.error, VerificationError) for o in failed):
        return VerificationError.exit_code
    return 1
